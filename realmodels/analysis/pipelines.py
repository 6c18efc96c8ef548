"""The stages of the ``geometry``, ``filter``, ``audit`` and ``amplification`` commands on a ``Session``, each stage memoised
through a ``cache(name, compute) -> dict`` callable (the CLI passes its run directory's ``cached_json``; the
default computes every time). A stage whose result is cached never touches the model, so a resumed run loads
the model (or the decoder) only if some stage still needs it. The cache holds JSON (dicts); stages hand each
other typed results (``FeatureSelection``, ``DomainGeometry``, ``AuditReport``), converted at the cache edge.

Stages: harmful-behaviour features -> the datasets' features -> the measurement (study per domain, sample
scores, the audit prediction, or the measured vs predicted amplification of a fine-tuned model)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from realmodels.analysis.audit import AuditConfig, AuditReport, audit
from realmodels.analysis.features import FeatureSelection, SelectionConfig, select_features, split_activations
from realmodels.analysis.filtering import FilterConfig, FilterResult, apply_filter, score_samples
from realmodels.analysis.geometry import (POOLED, DomainGeometry, StudyConfig, domain_geometry, domain_table,
                                          feature_table, harmful_proximity, null_pool, pooled_geometry)
from theory.filtering import score_separation

if TYPE_CHECKING:
    from realmodels.analysis.amplification import AmplificationReport
    from realmodels.data.activations import SampleActivations
    from realmodels.data.dataset import Dataset

    Data = Dataset | Path  # a dataset opened by the runner, or a chat JSONL file (the session opens it once)
    from realmodels.loading.session import Session

Cache = Callable[[str, Callable[[], dict]], dict]
Log = Callable[[str], None]


def compute_always(name: str, compute: Callable[[], dict]) -> dict:
    """The ``Cache`` that caches nothing: ``compute()`` every time (``name`` ignored)."""
    return compute()


def _quiet(message: str) -> None:
    pass


def cached_selection(session: Session, file: str, a: Data, b: Data, selection: SelectionConfig, *,
                     names: tuple[str, str], name: str, k: int | None = None, cache: Cache = compute_always,
                     log: Log = _quiet, message: str = "") -> FeatureSelection:
    """``select_features`` of dataset ``a`` against ``b`` (files, roles ``names``), cached as ``file``."""
    def compute() -> dict:
        log(message)
        return select_features(session.activations(a), session.activations(b), selection, k=k, names=names,
                               name=name).to_dict()

    return FeatureSelection.from_dict(cache(file, compute))


def harmful_selection(session: Session, harmful: Data, harmless: Data, selection: SelectionConfig, *,
                      cache: Cache = compute_always, log: Log = _quiet) -> FeatureSelection:
    """The harmful-behaviour features (harmful vs harmless responses)."""
    return cached_selection(session, "features/harmful.json", harmful, harmless, selection, k=selection.harmful_k,
                            names=("harmful", "harmless"), name="harmful", cache=cache, log=log,
                            message="identifying harmful-behaviour features (harmful vs harmless responses)")


@dataclass(frozen=True)
class GeometryOutputs:
    """Per-domain results (plus the pooled "all" row with several domains), the selections they used
    (keyed "harmful", "<domain>/inducing", "<domain>/control") and the null pool size."""

    results: list[DomainGeometry]
    selections: dict[str, FeatureSelection]
    pool_size: int

    def domain_table(self) -> pd.DataFrame:
        """One row per domain (``realmodels.analysis.geometry.domain_table``)."""
        return domain_table(self.results)

    def feature_table(self) -> pd.DataFrame:
        """One row per selected feature of every selection (``realmodels.analysis.geometry.feature_table``)."""
        return feature_table(self.results, self.selections)

    def summary(self) -> dict:
        """The JSON summary: the harmful features, the null pool size, the domain rows, the held-out checks and the size
        of each selection."""
        return {
            "harmful_features": self.selections["harmful"].indices, "null_pool_size": self.pool_size,
            "domains": self.domain_table().to_dict(orient="records"),
            "heldout": {name: s.heldout for name, s in self.selections.items() if s.heldout is not None},
            "n_features": {name: len(s.indices) for name, s in self.selections.items()},
        }


def geometry_pipeline(session: Session, *, harmful: Data, harmless: Data, domains: list[tuple[str, Data, Data]],
                      selection: SelectionConfig, study: StudyConfig, cache: Cache = compute_always,
                      log: Log = _quiet) -> GeometryOutputs:
    """``domains``: (name, inducing file, control file). Inducing features are tied to the inducing data
    against its control and control features to the control against the inducing data."""
    selections = {"harmful": harmful_selection(session, harmful, harmless, selection, cache=cache, log=log)}
    for name, inducing, control in domains:
        for label, other, a, b in (("inducing", "control", inducing, control), ("control", "inducing", control, inducing)):
            selections[f"{name}/{label}"] = cached_selection(
                session, f"features/{name}-{label}.json", a, b, selection, names=(f"{name}/{label}", f"{name}/{other}"),
                name=f"{name}/{label}", cache=cache, log=log,
                message=f"domain {name}: features of the {label} dataset")
    harm = selections["harmful"].indices
    pool = null_pool(sorted({i for s in selections.values() for i in s.active}), harm)
    proximity = {}

    def prox():
        if not proximity:
            log("proximity of every SAE feature to the harmful set")
            proximity["value"] = harmful_proximity(session.decoder, harm, study)
        return proximity["value"]

    results = []
    for name, _, _ in domains:
        results.append(DomainGeometry(**cache(f"geometry/{name}.json", lambda name=name: domain_geometry(
            name, prox(), selections[f"{name}/inducing"].indices, selections[f"{name}/control"].indices,
            pool, study).to_dict())))
    if len(domains) > 1:
        results.append(DomainGeometry(**cache(f"geometry/{POOLED}.json",
                                              lambda: pooled_geometry(results, prox(), pool, study).to_dict())))
    return GeometryOutputs(results=results, selections=selections, pool_size=int(pool.size))


@dataclass(frozen=True)
class FilterOutputs:
    """A filtering run's results: the ``FilterResult`` (per-sample scores, ``removed`` flags), the toxic features the
    scores used, the score's validity check (harmful vs harmless AUC), the method and the removal fraction."""
    result: FilterResult
    toxic: list[int]
    validity: dict
    method: str
    fraction: float

    def summary(self) -> dict:
        """The JSON summary: counts removed and kept, mean score of each, the toxic features and the score's validity
        statistics."""
        removed = self.result.scores["removed"].to_numpy()
        s = self.result.scores["score"].to_numpy()
        return {
            "method": self.method, "n_samples": int(removed.size), "n_removed": int(removed.sum()),
            "n_kept": int((~removed).sum()), "fraction": self.fraction, "toxic_features": self.toxic,
            "mean_score_removed": float(s[removed].mean()) if removed.any() else None,
            "mean_score_kept": float(s[~removed].mean()) if (~removed).any() else None,
            "score_validity": {key: self.validity[key] for key in ("auc", "mannwhitney_p", "cliffs_delta", "mean_a",
                                                                   "mean_b", "held_out")},
        }


def filter_pipeline(session: Session, *, data: Data, harmful: Data, harmless: Data, selection: SelectionConfig,
                    config: FilterConfig, cache: Cache = compute_always, log: Log = _quiet) -> FilterOutputs:
    """Toxic features, training-sample scores and the removal; plus a check that the scores separate
    (held-out, with a selection split) harmful from harmless responses."""
    toxic = harmful_selection(session, harmful, harmless, selection, cache=cache, log=log).indices
    lines = list(session.dataset(data).lines)

    def score(acts: SampleActivations) -> torch.Tensor:
        decoder = session.decoder if config.representation == "residual" else None
        return score_samples(acts, decoder, toxic, config)

    def train_scores() -> dict:
        log("scoring the training samples")
        train = session.activations(data)
        return {"scores": score(train).tolist(), "n_tokens": train.n_tokens.tolist()}

    def validity() -> dict:
        parts = [split_activations(session.activations(path), selection, role)
                 for path, role in ((harmful, "harmful"), (harmless, "harmless"))]
        evaluate = [held if held is not None else full for full, held in parts]
        return {**score_separation(score(evaluate[0]), score(evaluate[1]), seed=config.seed),
                "held_out": selection.selection_fraction is not None}

    scored = cache("stages/train_scores.json", train_scores)
    result = apply_filter(lines, torch.tensor(scored["scores"], dtype=torch.float64), config,
                          n_tokens=torch.tensor(scored["n_tokens"]))
    return FilterOutputs(result=result, toxic=toxic, validity=cache("stages/score_validity.json", validity),
                         method="random" if config.random else "geometric", fraction=config.fraction)


def audit_pipeline(session: Session, *, data: Data, control: Data, harmful: Data, harmless: Data,
                   selection: SelectionConfig, config: AuditConfig, cache: Cache = compute_always,
                   log: Log = _quiet) -> AuditReport:
    """Harmful features, the dataset's features (against ``control``) and the geometric risk report."""
    harm = harmful_selection(session, harmful, harmless, selection, cache=cache, log=log)
    ds = cached_selection(session, "features/dataset.json", data, control, selection, names=("dataset", "control"),
                          name="dataset", cache=cache, log=log,
                          message="identifying the dataset's features (dataset vs control)")

    def report() -> dict:
        log("predicting amplification from the SAE decoder geometry")
        pool = null_pool(sorted(set(ds.active) | set(harm.active)), harm.indices)
        return audit(session.decoder, ds.indices, ds.mean_diff, harm.indices, pool, config).to_dict()

    return AuditReport(**cache("audit.json", report))


def amplification_pipeline(session: Session, *, probe: Data, data: Data, control: Data, harmful: Data,
                           harmless: Data, selection: SelectionConfig, finetuned: Session | None = None,
                           cache: Cache = compute_always, log: Log = _quiet) -> AmplificationReport:
    """Harmful features and the training data's features (against ``control``), both on the base model's
    activations (the session's model is base + an unmerged adapter; or, with the ``finetuned`` session of a full
    checkpoint, the session's model is the base model), then every SAE feature's measured and predicted change on
    the ``probe`` conversations (``realmodels.analysis.amplification``)."""
    from realmodels.analysis.amplification import (AmplificationMeasurement, BaseModelActivations,
                                                   amplification_report, measure_amplification)

    base = BaseModelActivations(session)
    harm = harmful_selection(base, harmful, harmless, selection, cache=cache, log=log)
    ds = cached_selection(base, "features/dataset.json", data, control, selection, names=("dataset", "control"),
                          name="dataset", cache=cache, log=log,
                          message="identifying the training data's features (training data vs control, base model)")

    def measure() -> dict:
        log("measuring every feature's change on the probes, and its first-order prediction (JVP)")
        dataset = session.dataset(probe)
        chats = dataset.tokenized(session.tokenizer, session.max_length)
        return measure_amplification(session.bundle, chats, finetuned=None if finetuned is None else
                                     finetuned.bundle.model, batch_size=session.batch_size,
                                     progress=session.progress, description=dataset.path.name).to_dict()

    measurement = AmplificationMeasurement.from_dict(cache("stages/measurement.json", measure))
    return amplification_report(session.decoder, measurement, ds.indices, ds.mean_diff, harm.indices,
                                change="adapter" if finetuned is None else "checkpoint")
