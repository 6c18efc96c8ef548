"""Interventions on the residual stream at one decoder layer while the model runs (generation or training):
ablate a direction, steer along one, clamp SAE features (``hooks``)."""
