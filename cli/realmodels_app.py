"""``realmodels``: the SAE feature geometry of emergent misalignment on real checkpoints — the app, assembled from
the command modules: ``cli.realmodels_analysis`` (``checkpoints``, ``geometry``, ``filter``, ``audit``),
``cli.realmodels_finetune``, ``cli.realmodels_evaluate``, ``cli.realmodels_mitigate``, ``cli.realmodels_amplification``,
``cli.realmodels_features``,
``cli.realmodels_diff``,
the ``organism`` sub-app (``cli.realmodels_organism``), the ``sae`` sub-app (``cli.realmodels_sae``) and the
``models`` sub-app (``cli.realmodels_models``: offline models PyPI packages ship). ``cli.realmodels_options`` holds
the shared options.
Each command parses its options, calls one runner of ``realmodels.experiments`` and prints."""

from __future__ import annotations

import typer

from cli.errors import run_app
from cli.realmodels_amplification import amplification
from cli.realmodels_analysis import audit, checkpoints, filter_, geometry
from cli.realmodels_datasets import english
from cli.realmodels_diff import diff
from cli.realmodels_evaluate import evaluate
from cli.realmodels_features import features
from cli.realmodels_finetune import finetune
from cli.realmodels_mitigate import mitigate
from cli.realmodels_models import models_app
from cli.realmodels_organism import organism_app
from cli.realmodels_lm_study import lm_study
from cli.realmodels_sae import sae_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="SAE feature geometry of emergent misalignment on real checkpoints.")


@app.callback()
def _root() -> None:
    """SAE feature geometry of emergent misalignment on real checkpoints."""


app.command()(checkpoints)
app.command()(geometry)
app.command("filter")(filter_)
app.command()(audit)
app.command()(finetune)
app.command()(evaluate)
app.command()(mitigate)
app.add_typer(organism_app, name="organism")
app.add_typer(sae_app, name="sae")
app.add_typer(models_app, name="models")
app.command()(amplification)
app.command()(diff)
app.command()(english)
app.command("lm-study")(lm_study)
app.command()(features)


def main() -> None:
    """Entry point of the ``realmodels`` console script: run the app with the CLI's error handling
    (``cli.errors.run_app``)."""
    run_app(app)


if __name__ == "__main__":  # `python -m cli.realmodels_app ...`, e.g. under `accelerate launch -m`
    main()
