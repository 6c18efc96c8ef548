"""Shared test builders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TINY_SIMULATE_ARGS = ["--features", "6", "--hidden", "2", "--instances", "2", "--steps", "200",
                      "--batch-size", "128", "--ft-steps", "5"]


def run_cli(main, args: list[str], capsys: pytest.CaptureFixture, prog: str = "toysuper") -> tuple[int, str, str]:
    """Run a console-script ``main`` in-process; return (exit code, stdout, stderr)."""
    old = sys.argv
    sys.argv = [prog, *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir()) if p.is_file()}


RAY_NAMES = ("raylet", "gcs_server")


def ray_processes() -> set[int]:
    """PIDs of this user's Ray processes (raylet, gcs_server, ray::* workers and agents, Ray's Python daemons,
    ``python -m ray.*`` servers)."""
    import os

    import psutil

    found = set()
    for proc in psutil.process_iter(["name", "cmdline", "uids"]):
        try:
            if proc.info["uids"] is None or proc.info["uids"].real != os.getuid():
                continue
            name, cmdline = proc.info["name"] or "", " ".join(proc.info["cmdline"] or ())
            if name in RAY_NAMES or name.startswith("ray::") or cmdline.startswith("ray::") or \
                    "/site-packages/ray/" in cmdline or " -m ray." in cmdline:
                found.add(proc.pid)
        except psutil.Error:
            continue
    return found


def wait_for_no_new_ray_processes(before: set[int], timeout: float = 60.0) -> set[int]:
    """Ray processes started since ``before`` that are still alive after ``timeout`` s (empty: all ended)."""
    import time

    deadline = time.monotonic() + timeout
    while (left := ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (Ray's daemons run in sessions of their own, so a process
    group kill misses them), and wait until they are gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
