"""Measurements on a real checkpoint, each a thin adapter over ``theory/``.

- ``features``: SAE features tied to a dataset against a control (``FeatureSelection``), with held-out checks;
- ``geometry``: the geometry study (inducing vs control features against the harmful set, per domain);
- ``filtering``: training-sample scores against the toxic features and the removal (or a random baseline);
- ``audit``: the pre-fine-tuning prediction of which harmful features a dataset would amplify;
- ``pipelines``: the stages of the ``geometry``, ``filter`` and ``audit`` commands, each cached, on a ``Session``;
- ``plotting``: their figures."""
