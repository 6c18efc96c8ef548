"""Data on a real checkpoint: chat JSONL datasets, the residual stream, and per-sample SAE activations.

- ``dataset``: a run's dataset (``Dataset``: read, checked and hashed in one pass, tokenised once per tokenizer
  and length; ``Datasets``: each file of a run opened once), which the runners pass to every stage;
- ``jsonl`` / ``chat``: reading chat JSONL (one-line errors naming ``file:line``), rendering with the chat template and
  masking the assistant tokens;
- ``residual``: ``blocks.L.hook_resid_post`` through a forward hook that stops after layer L;
- ``activations``: each sample's mean residual and mean SAE code over its assistant tokens, cached on disk
  and checkpointed mid-dataset;
- ``shards``: the same activations computed shard by shard by a ``ShardRunner`` (in this process or, with
  ``pool.ActivationPool``, on Ray actors) and merged into the same cache, equal tensors."""
