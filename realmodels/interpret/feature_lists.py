"""Which features get cards, fixed before any weights load: explicit indices (checked against the SAE's width,
read from its config or, for a release whose width the registry does not state, its decoder alone), and the top
movers of a finished ``realmodels amplification`` run (its amplification.csv, the top N by |measured change|,
ties to the lower index). The harmful features and the features tied to a dataset come from the existing
selection (``realmodels.analysis.pipelines``) once the model runs."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.loading.registry import REGISTRY
from realmodels.loading.saes import read_decoder, saved_sae_shape
from runio.reading import read_json_file, read_text
from theory.errors import InputError, ParamError

if TYPE_CHECKING:
    from realmodels.loading.bundle import BundleSources

AMPLIFICATION_TABLE = "amplification.csv"
MODEL_KEYS = ("checkpoint", "sae", "layer")  # what fixes the meaning of a feature index


def sae_width(sources: BundleSources) -> int:
    """d_sae of the SAE ``sources`` name: a saved SAE's cfg.json, else the registry's width for its release,
    else its decoder's row count (the decoder is read alone; no model weights)."""
    if sources.sae.path is not None:
        return saved_sae_shape(sources.sae.path)[1]
    spec = next((s for s in REGISTRY.values() if s.sae_release == sources.sae.release
                 and s.sae_id_template.format(layer=sources.layer) == sources.sae.sae_id), None)
    if spec is not None and spec.d_sae is not None:
        return spec.d_sae
    return int(read_decoder(sources.sae).shape[0])


def check_indices(indices: list[int], d_sae: int, where: str) -> list[int]:
    """``indices`` when each is in [0, d_sae); else an InputError naming the first bad one and ``where``."""
    for index in indices:
        if not 0 <= index < d_sae:
            raise ParamError(f"{where}: feature index {index} is out of range: the SAE has {d_sae} features "
                             f"(0..{d_sae - 1})")
    return list(indices)


def parse_indices(text: str, where: str) -> list[int]:
    """``"3,17"`` -> [3, 17] (blank parts ignored); anything but integers is an InputError naming ``where``."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise InputError(f"{where}: {part!r} is not a feature index (expected integers like 3,17)") from None
    if not out:
        raise InputError(f"{where}: no feature index given")
    return out


@dataclass(frozen=True)
class Movers:
    """The top movers of an amplification run: ``features`` (most moved first) and their ``measured`` change."""

    run: Path
    features: list[int]
    measured: list[float]
    n_features: int
    """Rows of its table: the width of the SAE it measured."""


def amplification_movers(run: str | Path, n: int, model_config: dict) -> Movers:
    """The top ``n`` features by |measured| of the finished amplification run directory ``run``, whose recorded
    checkpoint / SAE / layer must be those of ``model_config`` (a ``ModelChoice.to_config()``); a run that is no
    finished amplification, or another SAE's, is an InputError."""
    path = Path(run).expanduser()
    config_file, table = path / "config.json", path / AMPLIFICATION_TABLE
    if not config_file.is_file() or not table.is_file():
        raise ParamError(f"`amplification` {run}: not a finished `realmodels amplification` run directory (needs "
                         f"config.json and {AMPLIFICATION_TABLE})")
    config = read_json_file(config_file, "amplification run config")
    if not isinstance(config, dict) or config.get("command") != "amplification" or not isinstance(
            config.get("model"), dict):
        raise ParamError(f"`amplification` {run}: {config_file} is not the config of an amplification run")
    recorded = {key: config["model"].get(key) for key in MODEL_KEYS}
    ours = {key: model_config.get(key) for key in MODEL_KEYS}
    if recorded != ours:
        raise ParamError(f"`amplification` {run} measured the features of another SAE ({recorded}); this run "
                         f"reads {ours}: pass the same `checkpoint`, `sae` and `layer`")
    rows = list(csv.DictReader(read_text(table, "amplification table").splitlines()))
    try:
        moved = [(int(row["feature"]), float(row["measured"])) for row in rows]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{table} is damaged (it needs integer `feature` and numeric `measured` columns)") from None
    finite = [(f, m) for f, m in moved if math.isfinite(m)]
    top = sorted(finite, key=lambda fm: (-abs(fm[1]), fm[0]))[:n]
    return Movers(run=path.resolve(), features=[f for f, _ in top], measured=[m for _, m in top],
                  n_features=len(rows))
