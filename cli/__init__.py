"""The command-line clients of the library: typer apps whose commands parse their options into the library's
configs, call one runner (``toysuper.runners``, ``realmodels.experiments``) and print its result."""
