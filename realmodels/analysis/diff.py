"""SAE model diffing on a real model: every SAE feature's mean activation and firing frequency on the same probe
conversations under the base and the fine-tuned model, the difference, ranked (``theory.model_diff``); the
harmful-behaviour features marked when known. Wang et al. (2025) found a "toxic persona" latent this way.

Inputs are the activation passes' ``SampleActivations`` (``realmodels.data.activations``): per probe, the SAE code
averaged over its assistant tokens. So ``mean_*`` is the mean over probes of that per-probe mean, and ``freq_*``
the fraction of probes on which the feature fires on at least one assistant token (the per-probe mean > 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from theory.model_diff import feature_diff, top_overlap

if TYPE_CHECKING:
    from realmodels.data.activations import SampleActivations

TOP = 10  # movers listed in each direction in the summary
COLUMNS = ("rank", "feature", "mean_base", "mean_finetuned", "diff", "se", "freq_base", "freq_finetuned",
           "freq_diff", "harmful")
NOTES = (
    "mean_* are means over the probes of each probe's mean activation over its assistant tokens; diff = "
    "mean_finetuned − mean_base, se its paired standard error over probes",
    "freq_* are the fractions of probes on which the feature fires on at least one assistant token",
    "rank 1 is the largest increase; harmful.in_top counts harmful features among the top |harmful| movers against "
    "the count a random ranking gives (expected) with its hypergeometric p-value",
)


@dataclass(frozen=True)
class DiffReport:
    """The diff.csv ``table`` (one row per SAE feature, ranked) and the ``summary`` (summary.json)."""

    table: object
    """The table (a pandas DataFrame)."""
    summary: dict


def diff_report(before: SampleActivations, after: SampleActivations,
                harmful_indices: list[int] | None = None) -> DiffReport:
    """The ranked per-feature diff (module docstring) of the probes' activations ``before`` (base model) and
    ``after`` (fine-tuned), the same probes in the same order; ``harmful_indices`` marked (None: not known)."""
    import pandas as pd

    from runio.atomic import nan_to_none

    diff = feature_diff(before.dense_features(), after.dense_features())
    ranking = diff.ranking()
    n = int(ranking.numel())
    harmful = set(harmful_indices or ())
    table = pd.DataFrame({
        "feature": range(n), "mean_base": diff.mean_before.numpy(), "mean_finetuned": diff.mean_after.numpy(),
        "diff": diff.diff.numpy(), "se": diff.se.numpy(), "freq_base": diff.freq_before.numpy(),
        "freq_finetuned": diff.freq_after.numpy(), "freq_diff": (diff.freq_after - diff.freq_before).numpy(),
        "harmful": [j in harmful for j in range(n)]})
    table = table.iloc[ranking.numpy()].reset_index(drop=True)
    table.insert(0, "rank", range(1, n + 1))
    table = table[list(COLUMNS)]
    shown = ["rank", "feature", "mean_base", "mean_finetuned", "diff", "se", "freq_diff", "harmful"]
    summary = {
        "n_probes": len(before), "n_features": n,
        "mean_abs_diff": float(diff.diff.abs().mean()),
        "n_increased": int((diff.diff > 0).sum()), "n_decreased": int((diff.diff < 0).sum()),
        "top_increased": table.head(TOP)[shown].to_dict("records"),
        "top_decreased": table.tail(TOP).iloc[::-1][shown].to_dict("records"),
        "harmful": None, "notes": list(NOTES)}
    if harmful_indices is not None:
        rows = table["harmful"]
        overlap = top_overlap(ranking, sorted(harmful), len(harmful))
        summary["harmful"] = {
            "features": sorted(harmful), "mean_diff": float(table.loc[rows, "diff"].mean()),
            "mean_diff_other": float(table.loc[~rows, "diff"].mean()),
            "ranks": table.loc[rows, "rank"].tolist(), "median_rank": float(table.loc[rows, "rank"].median()),
            "in_top": {"k": overlap.k, "count": overlap.count, "expected": overlap.expected,
                       "p_value": overlap.p_value}}
    return DiffReport(table=table, summary=nan_to_none(summary))
