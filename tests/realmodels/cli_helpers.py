"""Shared helpers of the ``realmodels`` CLI tests: run a command in-process, snapshot a run directory, and
assert that a bad input is one line, exit 2, with no run directory left behind."""

from __future__ import annotations

from pathlib import Path

from cli.realmodels_app import main
from tests.helpers import assert_one_line_error, run_cli

FAST = ["--n-permutations", "200", "--n-bootstrap", "200", "--n-null", "100", "--no-progress"]


def rm(capsys, args) -> tuple[int, str, str]:
    """``realmodels ARGS`` in-process: (exit code, stdout, stderr)."""
    return run_cli(main, args, capsys, prog="realmodels")


def files(root: Path) -> dict[str, bytes]:
    """Every file's bytes (figures included: save_figure writes them byte-reproducibly)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def assert_bad(capsys, tmp_path: Path, args, match: str) -> str:
    """``args`` (without --out) fail with one line containing ``match`` and create no run directory; the
    error line is returned."""
    out = tmp_path / "never"
    code, _, err = rm(capsys, [*args, "--out", out])
    assert_one_line_error(code, err)
    assert match in err, err
    assert not out.exists(), "a run directory was created for bad input"
    return err
