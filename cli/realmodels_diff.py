"""``realmodels diff``: SAE model diffing — every SAE feature's mean activation and firing frequency on probe
conversations under the base and the fine-tuned model (a LoRA --adapter or a full --finetuned checkpoint), the
difference, ranked, harmful features marked (``realmodels.experiments.diff.run_diff``; ``cli.realmodels_app``
registers it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from cli.configfile import resolve_config
from cli.dataclass_options import with_options
from cli.errors import user_errors
from cli.realmodels_inputs import dataset_file
from cli.realmodels_options import (CRITERION, HARMFUL_K, MODEL_OPTIONS, RUN_OPTIONS, Adapter, Finetuned, Harmful,
                                    Harmless, harmful_pair)
from cli.realmodels_tables import console, fmt
from realmodels.analysis.configs import SelectionConfig
from realmodels.experiments.spec import ModelSpec, RunOptions


def print_diff(summary: dict, out: Path) -> None:
    """Print the features that rose most between the two checkpoints (mean activation before and after, difference and
    its standard error, change in firing rate) and, when harmful features were given, how they moved."""
    table = Table(title=f"largest changes of {summary['n_features']} SAE features ({summary['n_probes']} probes)")
    for col in ("rank", "feature", "base", "fine-tuned", "diff", "s.e.", "Δ firing", "harmful"):
        table.add_column(col, justify="right")
    for row in summary["top_increased"]:
        table.add_row(str(row["rank"]), str(row["feature"]), fmt(row["mean_base"], ".3g"),
                      fmt(row["mean_finetuned"], ".3g"), fmt(row["diff"], "+.3g"), fmt(row["se"], ".2g"),
                      fmt(row["freq_diff"], "+.2f"), "yes" if row["harmful"] else "")
    console.print(table)
    if (h := summary["harmful"]) is not None:
        top = h["in_top"]
        console.print(f"harmful features ({len(h['features'])}): mean diff {fmt(h['mean_diff'], '+.3g')} (others "
                      f"{fmt(h['mean_diff_other'], '+.3g')}); {top['count']} among the top {top['k']} movers "
                      f"(random: {top['expected']:.1f}, p {fmt(top['p_value'], '.2g')}); median rank "
                      f"{h['median_rank']:.0f} of {summary['n_features']}")
    console.print(f"run directory: [bold]{out}[/]")


@user_errors
@with_options(model=MODEL_OPTIONS.replace(exclude=("adapter",)), options=RUN_OPTIONS)
def diff(
    probe: Annotated[Path, typer.Option(help="Chat JSONL of probe conversations (activations are averaged over "
                                             "their assistant tokens).")],
    adapter: Adapter = None,
    finetuned: Finetuned = None,
    harmful: Harmful = None,
    harmless: Harmless = None,
    harmful_k: Optional[int] = HARMFUL_K,
    criterion: Optional[str] = CRITERION,
    *, model: ModelSpec, options: RunOptions,
) -> None:
    """SAE model diffing: every feature's activation on the probes under the base vs the fine-tuned model, ranked;
    harmful features (--harmful/--harmless) marked."""
    from realmodels.experiments.diff import run_diff

    probe_path = dataset_file(probe, "--probe")
    pair = (None, None)
    if harmful is not None or harmless is not None:
        pair = harmful_pair(harmful, harmless, "they define the harmful features; or give neither")
    selection = resolve_config(SelectionConfig, None, {"harmful_k": harmful_k, "criterion": criterion},
                               prefix="selection.")
    result = run_diff(probe_path, model=replace(model, adapter=adapter), finetuned=finetuned, harmful=pair[0],
                      harmless=pair[1], selection=selection, options=options)
    print_diff(result.summary, result.path)
