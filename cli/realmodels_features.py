"""``realmodels features``: a card per SAE feature — logit lens, top-activating snippets, activation histogram,
Neuronpedia link — and one self-contained HTML report (``realmodels.experiments.features.run_feature_cards``;
``cli.realmodels_app`` registers it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from cli.configfile import config_option, resolve_config
from cli.dataclass_options import with_options
from cli.errors import user_errors
from cli.realmodels_inputs import dataset_file
from cli.realmodels_options import CRITERION, HARMFUL_K, MODEL_OPTIONS, RUN_OPTIONS, K
from cli.realmodels_tables import console, fmt
from realmodels.analysis.configs import SelectionConfig
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.interpret.config import FeatureCardsConfig
from realmodels.interpret.feature_lists import parse_indices
from theory.errors import InputError

FEATURES = "Features (any combination; a feature in several lists gets one card)"


def _cards(key: str, *decls: str):
    return config_option(FeatureCardsConfig, key, None, *decls)


def print_cards(summary: dict, out: Path) -> None:
    """Print one row per feature card (logit-lens promoted and suppressed tokens, the top snippet's token, the maximum
    activation) and the path of ``report.html``."""
    table = Table(title=f"{summary['n_cards']} feature cards")
    for col in ("feature", "promoted (logit lens)", "suppressed", "top snippet's token", "max activation"):
        table.add_column(col, justify="right" if col in ("feature", "max activation") else "left")
    for card in summary["cards"]:
        table.add_row(str(card["feature"]), escape(" ".join(map(repr, card["promoted"]))),
                      escape(" ".join(map(repr, card["suppressed"]))),
                      escape(repr(card["top_example"])) if card["top_example"] is not None else "-",
                      fmt(card["max_activation"], ".3g") if card["max_activation"] is not None else "-")
    console.print(table)
    console.print(f"report: [bold]{out / 'report.html'}[/] (self-contained; open it in a browser)")


@user_errors
@with_options(model=MODEL_OPTIONS, options=RUN_OPTIONS)
def features(
    feature: Annotated[Optional[list[int]], typer.Option(
        "--feature", rich_help_panel=FEATURES, help="SAE feature index (repeatable).")] = None,
    features_: Annotated[Optional[str], typer.Option(
        "--features", rich_help_panel=FEATURES, help="Comma-separated SAE feature indices, e.g. 3,17.")] = None,
    harmful: Annotated[Optional[Path], typer.Option(
        rich_help_panel=FEATURES, help="Chat JSONL of harmful responses: cards for the harmful-behaviour features "
                                       "(vs --harmless).")] = None,
    harmless: Annotated[Optional[Path], typer.Option(
        rich_help_panel=FEATURES, help="Chat JSONL of harmless responses (the control of --harmful, and of --tied "
                                       "without --control).")] = None,
    tied: Annotated[Optional[Path], typer.Option(
        rich_help_panel=FEATURES, help="Chat JSONL: cards for the features tied to it (vs --control).")] = None,
    control: Annotated[Optional[Path], typer.Option(
        rich_help_panel=FEATURES, help="Chat JSONL --tied is contrasted with (default: --harmless).")] = None,
    amplification: Annotated[Optional[Path], typer.Option(
        rich_help_panel=FEATURES, help="A finished `realmodels amplification` run directory: cards for its top "
                                       "movers (--top-movers, by |measured change|).")] = None,
    data: Annotated[Optional[list[Path]], typer.Option(
        help="Chat JSONL whose assistant tokens give the snippets and histograms (repeatable; default: the "
             "datasets of --harmful/--harmless/--tied/--control).")] = None,
    k: Optional[int] = K,
    harmful_k: Optional[int] = HARMFUL_K,
    criterion: Optional[str] = CRITERION,
    top_tokens: Optional[int] = _cards("top_tokens"),
    examples: Optional[int] = _cards("examples"),
    context: Optional[int] = _cards("context"),
    bins: Optional[int] = _cards("bins"),
    top_movers: Optional[int] = _cards("top_movers"),
    *, model: ModelSpec, options: RunOptions,
) -> None:
    """Feature cards (logit lens, top snippets, histogram, Neuronpedia link) and a self-contained HTML report."""
    from realmodels.experiments.features import run_feature_cards

    indices = [*(feature or []), *(parse_indices(features_, "--features") if features_ is not None else [])]
    if harmful is not None and harmless is None:
        raise InputError("--harmful needs --harmless (the harmful features are harmful vs harmless responses)")
    paths = {name: dataset_file(path, f"--{name}") if path is not None else None
             for name, path in (("harmful", harmful), ("harmless", harmless), ("tied", tied), ("control", control))}
    if amplification is not None and not Path(amplification).expanduser().is_dir():
        raise InputError(f"--amplification {amplification} is not a directory (a `realmodels amplification` run)")
    reads = [dataset_file(path, "--data") for path in data or []]
    selection = resolve_config(SelectionConfig, None, {"k": k, "harmful_k": harmful_k, "criterion": criterion},
                               prefix="selection.")
    cards = resolve_config(FeatureCardsConfig, None, {"top_tokens": top_tokens, "examples": examples,
                                                      "context": context, "bins": bins, "top_movers": top_movers})
    result = run_feature_cards(reads, features=indices, amplification=amplification, config=cards,
                               selection=selection, model=model, options=options, **paths)
    print_cards(result.summary, result.path)
