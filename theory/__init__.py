"""theory: the maths of emergent misalignment through superposition geometry (no I/O).

Modules: ``amplification`` (general tangent-kernel prediction), ``tied_model`` (exact form for the
toy model of superposition), ``geometry`` (cosines, chunked neighbours, set proximity, feature
dimensionality), ``agreement`` (prediction vs measurement), ``stats`` (proximity tests), ``filtering``
(sample scoring and removal), ``selection`` (features tied to a dataset against a control),
``misalignment`` (harmful rise, EM rate, task gain, reduction % with CIs), ``regularise`` (gradient
projection off the harmful directions, growth penalty), ``errors`` (the user-input exception).

The names below are exported lazily (PEP 562), so ``import theory.errors`` or ``theory.configs`` imports
neither torch nor scipy: the CLIs validate their input before paying for those imports."""

from importlib import import_module

_EXPORTS = {  # name -> submodule that defines it
    "Agreement": "agreement", "agreement": "agreement", "InputError": "errors",
    "Removal": "filtering", "random_removal": "filtering", "remove_top_fraction": "filtering",
    "sample_scores": "filtering",
    "Neighbours": "geometry", "SetProximity": "geometry", "cosine_similarity": "geometry",
    "feature_dimensionality": "geometry", "max_overlap": "geometry", "row_norms": "geometry",
    "set_proximity": "geometry", "top_k_neighbours": "geometry", "unit_rows": "geometry",
    "contrast_scores": "selection", "top_k_features": "selection", "validate_selection": "selection",
    "Correlation": "stats", "Interval": "stats", "NullComparison": "stats", "ProximityComparison": "stats",
    "bootstrap_mean_ci": "stats", "compare_proximity": "stats", "correlation_with_ci": "stats",
    "random_set_null": "stats",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'theory' has no attribute {name!r}")
    value = getattr(import_module(f"theory.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
