"""``python -m tests.docs.shortened PROG ARGS``: the console script PROG (realmodels | toysuper) run with ARGS and,
appended, the flags that shorten that command for a test (later flags win): fewer steps, samples, conversations and
held-out units, never another model or other data. tests/docs/test_bash_blocks.py puts wrappers named ``realmodels``
and ``toysuper`` that call this first on PATH, so a docs block runs under bash as written."""

from __future__ import annotations

import os
import sys

STATS = ["--n-permutations", "200", "--n-bootstrap", "200", "--n-null", "100"]
SHORTER = {  # (prog, first word or two) -> appended flags
    ("realmodels", "english"): ["--n-per-set", "6"],
    ("realmodels", "sae train"): ["--d-sae", "256", "--k", "16", "--steps", "40", "--sae-batch-size", "64",
                                  "--n-conversations", "16", "--heldout", "0.02"],
    ("realmodels", "lm-study"): ["--max-steps", "2", "--n-samples", "1", "--geometry-domain", "health",
                                 "--domain", "health"],
    ("realmodels", "geometry"): STATS,
    ("realmodels", "finetune"): ["--max-steps", "2", "--train-batch-size", "2", "--grad-accum", "1"],
    ("realmodels", "mitigate"): ["--max-steps", "2", "--question", "career_salary", "--samples-per-paraphrase", "1",
                                 "--max-new-tokens", "8", "--random-seeds", "0"],
    ("toysuper", "density"): ["--config", os.environ.get("DOCS_TINY_DENSITY", "")],
}


def extra_flags(prog: str, args: list[str]) -> list[str]:
    for words in (" ".join(args[:2]), " ".join(args[:1])):
        if (prog, words) in SHORTER:
            return SHORTER[(prog, words)]
    return []


def refuse_connections() -> None:
    """Every socket connection fails (an offline run must not need one)."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in this test")

    socket.socket.connect = refuse
    socket.create_connection = refuse


def main() -> None:
    prog, args = sys.argv[1], sys.argv[2:]
    if os.environ.get("DOCS_NO_NETWORK"):
        refuse_connections()
    if prog == "realmodels":
        from cli.realmodels_app import main as run
    else:
        from cli.toysuper_app import main as run
    quiet = ["--no-progress"] if prog == "realmodels" and args[0] not in ("english", "organism") else []
    sys.argv = [prog, *args, *extra_flags(prog, args), *quiet]
    run()


if __name__ == "__main__":
    main()
