"""realmodels: the adapter from real checkpoints (HF causal LMs and their sae-lens SAEs) to ``theory/``.

Subpackages, bottom up: each imports from the ones before it, ``theory`` and ``runio``, never ``cli``
(the one exception, ``loading.session``, reaches into ``data`` for the run's datasets and to memoise
activations):

- ``loading``: which checkpoint (registry, sae-lens releases), where its files are (hub cache first,
  offline), whether it fits (memory estimate), where it runs (device maps), the checked ``ModelBundle``
  (model + tokenizer + SAE at one layer) and the ``Session`` a command uses to reach it lazily.
- ``data``: chat JSONL datasets and their assistant-token masks, the residual stream at a layer, and the
  per-sample SAE feature activations computed from it (cached on disk, resumable).
- ``analysis``: what is measured with them: features tied to a dataset, the geometry study, data filtering,
  the pre-fine-tuning audit, measured vs predicted amplification, the misalignment direction, the commands'
  cached stages (``pipelines``) and their figures.
- ``finetune``: LoRA / full fine-tuning on the transformers Trainer (recipes and presets, atomic checkpoints and
  the divergence stop, the SAE monitor and the geometric guard).
- ``evaluate``: question sets, answer generation (a local model or an OpenAI-compatible endpoint, bounded
  requests), the judges behind a registry, EM rates and the mitigation experiment's arms.
- ``organism``: the model organism — the synthetic chat world, its exact judge, the build of the model and its
  SAE, the shipped default, and the measurements of the paper's study on it.
- ``experiments``: the front door, one runner per experiment (geometry, filter, audit, finetune, amplification,
  evaluate, mitigate, organism build/world, the organism study): a config, a ``ModelSpec`` and ``RunOptions`` in,
  a result (summary, DataFrames, figures, ``save``) out; each owns its input checks, run directory and resume.

The Ray activation pool (``data.pool``) and the resumable job map it shares the execution conventions with
(``runio.jobs``) import no CLI framework; each ``realmodels`` command (``cli/``) parses its options and calls one
runner of ``experiments``."""
