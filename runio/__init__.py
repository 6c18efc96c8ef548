"""runio: run files and execution that are not maths, shared by ``cli``, ``toysuper`` and ``realmodels`` (below
them, above nothing but ``theory.errors``; no typer, click or ``cli`` import): ``atomic`` (atomic writes of text,
JSON, CSV, figures, torch payloads), ``rundir`` (run directories bound to one config, resumable), ``console``
(the stdout console the runners log to, progress bars), ``redact``
(secrets out of messages and logs), ``reading`` and ``jobs`` (the execution layer: a resumable map of named jobs,
in this process or on Ray; ``JobError`` says what a job raised)."""
