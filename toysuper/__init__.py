"""The toy world: Anthropic's toy model of superposition x̂ = ReLU(WᵀWx + b) as an adapter of ``theory/``.

The core, one concept per module:
- ``config``    ModelConfig, TrainConfig, FinetuneConfig (the one fine-tuning config), SimulateConfig
- ``data``      sparse-uniform inputs and the narrow task set of ``simulate``
- ``model``     ToyModel: the tied-weights model and its loss
- ``train``     pre-training (closed-form gradients, fused Adam(W) kernels: TRAIN_OPTIMIZERS)
- ``finetune``  narrow fine-tuning (registries OBJECTIVES and OPTIMIZERS)
- ``measure``   measured vs first-order predicted amplification
- ``simulate``  the ``toysuper simulate`` experiment
- ``plotting``  its figure
- ``runners``   every toy experiment as a function to call from Python (``run_simulate``, ``run_inducing``,
                ``run_mitigate``, ``run_density``, ``run_geometry``, ``run_figures``; the ``toysuper`` commands
                call them), each returning a ``runs.ToyRun``
- ``runs``      their run directory: the config resolved first, the trained model reused, resume, ToyRun

``toysuper.em`` is the emergent-misalignment study built on the core (harmful features, tasks, mitigations,
the studies and their figures). Nothing here imports ``cli``; shipped study defaults are ``configs/*.toml``."""
