"""Interpreting SAE features: a card per feature (``cards``) from its logit lens through the model's final norm
and unembedding (``unembed``), its top-activating snippets and activation histogram over chat datasets
(``examples``) and its Neuronpedia page (``neuronpedia``); which features get cards (``feature_lists``); the
self-contained HTML report (``report``); the options (``config``). The runner is
``realmodels.experiments.features.run_feature_cards``."""
