"""theory: the maths of emergent misalignment through superposition geometry (no I/O).

Modules: ``amplification`` (general tangent-kernel prediction), ``tied_model`` (exact form for the
toy model of superposition), ``geometry`` (cosines, chunked neighbours, set proximity, feature
dimensionality), ``agreement`` (prediction vs measurement), ``stats`` (proximity tests), ``filtering``
(sample scoring and removal), ``selection`` (features tied to a dataset against a control),
``misalignment`` (harmful rise, EM rate, task gain, reduction % with CIs), ``regularise`` (gradient
projection off the harmful directions, growth penalty), ``errors`` (the user-input exception)."""

from theory.agreement import Agreement, agreement
from theory.errors import InputError
from theory.filtering import Removal, random_removal, remove_top_fraction, sample_scores
from theory.geometry import (Neighbours, SetProximity, cosine_similarity, feature_dimensionality, max_overlap,
                             row_norms, set_proximity, top_k_neighbours, unit_rows)
from theory.selection import contrast_scores, top_k_features, validate_selection
from theory.stats import (Correlation, Interval, NullComparison, ProximityComparison, bootstrap_mean_ci,
                          compare_proximity, correlation_with_ci, random_set_null)

__all__ = [
    "Agreement", "agreement", "InputError", "Removal", "random_removal", "remove_top_fraction", "sample_scores",
    "Neighbours", "SetProximity", "cosine_similarity", "feature_dimensionality", "max_overlap", "row_norms",
    "set_proximity",
    "top_k_neighbours", "unit_rows", "Correlation", "Interval", "NullComparison", "ProximityComparison",
    "bootstrap_mean_ci", "compare_proximity", "correlation_with_ci", "random_set_null",
    "contrast_scores", "top_k_features", "validate_selection",
]
