"""Fine-tuning real checkpoints on chat data with the field's engine (transformers ``Trainer`` + peft), and
watching or restraining the SAE features it moves while it trains.

- ``config``: the recipes (``FinetuneConfig`` and the presets em-betley, em-rank1, full), ``MonitorConfig``,
  ``GuardConfig`` — torch-free, checked before anything loads;
- ``data``: assistant-only labels, padding;
- ``lora``: the adapters (peft) and their check against the architecture (on the meta device);
- ``train``: the ``Trainer`` run: checkpoints, resume, ``train_log.csv``, progress;
- ``monitor``: the training-time SAE monitor and its alarm (``monitor.csv``);
- ``guard``: the geometric guard (a penalty on the harmful features' rise, a projection off their span)."""
