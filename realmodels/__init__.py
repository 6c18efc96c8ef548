"""realmodels: the adapter from real checkpoints (HF causal LMs and their sae-lens SAEs) to ``theory/``.

Subpackages, bottom up: each imports from the ones before it, ``theory`` and ``runio``, never ``cli``
(the one exception, ``loading.session``, reaches into ``data`` lazily to memoise activations):

- ``loading``: which checkpoint (registry, sae-lens releases), where its files are (hub cache first,
  offline), whether it fits (memory estimate), where it runs (device maps), the checked ``ModelBundle``
  (model + tokenizer + SAE at one layer) and the ``Session`` a command uses to reach it lazily.
- ``data``: chat JSONL datasets and their assistant-token masks, the residual stream at a layer, and the
  per-sample SAE feature activations computed from it (cached on disk, resumable).
- ``analysis``: what is measured with them: features tied to a dataset, the geometry study, data filtering,
  the pre-fine-tuning audit, the commands' cached stages (``pipelines``) and their figures.

Room is left for ``finetune`` (LoRA / full fine-tuning), ``evaluate`` (generation, judges, EM rates) and
``organism`` (the synthetic chat world) as siblings of these three."""
