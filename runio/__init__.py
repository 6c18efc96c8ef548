"""runio: run files that are not maths, shared by ``cli`` and ``realmodels`` (below both, above nothing but
``theory.errors``): ``atomic`` (atomic writes of text, JSON, CSV, figures, torch payloads) and ``rundir``
(run directories bound to one config, resumable)."""
