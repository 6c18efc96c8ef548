"""``realmodels english``: write the project's English emergent-misalignment datasets
(``realmodels.data.english.write_english_datasets``: per domain inducing / aligned / educational / mixed sets,
harmful and harmless sets, probes and evaluation questions) for real language models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.errors import user_errors
from cli.realmodels_tables import console


@user_errors(flags={"out_dir": "--out", "domains": "--domain"})
def english(
    out: Annotated[Path, typer.Option(help="Directory for the datasets, questions.yaml and dataset.json.")
                   ] = Path("runs/english"),
    seed: Annotated[int, typer.Option(help="Seed of every set (the same seed writes the same bytes).")] = 0,
    n_per_set: Annotated[int, typer.Option(help="Conversations per set (distinct).")] = 600,
    domain: Annotated[Optional[list[str]], typer.Option(help="Domain (repeatable; default: every domain).")] = None,
) -> None:
    """Write the English EM datasets for real language models (seconds; no model loads)."""
    from realmodels.data.english.generate import DOMAINS, write_english_datasets

    paths = write_english_datasets(out, seed=seed, n_per_set=n_per_set, domains=tuple(domain) if domain else DOMAINS)
    sets = [name for name in paths if name not in ("questions", "config")]
    console.print(f"{len(sets)} datasets of {n_per_set} conversations and questions.yaml in {out}")
