"""``toysuper``: toy models of superposition, narrow fine-tuning and emergent misalignment.

This module only builds the typer app: the commands live in ``cli.toysuper_simulate`` (simulate) and
``cli.toysuper_studies`` (the emergent-misalignment studies and figures), which never import it. Nothing here
imports torch: each command validates its config, sets its ``--threads`` (default 1, ``cli.threads``) and
only then imports the work."""

from __future__ import annotations

import typer

from cli.errors import run_app
from cli.toysuper_simulate import simulate
from cli.toysuper_studies import COMMANDS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Toy models of superposition: verify the amplification theory and simulate emergent misalignment.")


@app.callback()
def _root() -> None:
    """Toy models of superposition: verify the amplification theory and simulate emergent misalignment."""


for command in (simulate, *COMMANDS):
    app.command(command.__name__)(command)


def main() -> None:
    """Entry point of the ``toysuper`` console script: run the app with the CLI's error handling
    (``cli.errors.run_app``)."""
    run_app(app)


if __name__ == "__main__":
    main()
