"""The process pool the toolkit used before its Ray execution layer (cli/parallel.py up to commit ff00b4d,
verbatim below this note), kept only as the baseline of benchmarks/ray_density.py.

Resumable parallel map over named jobs: each result is one JSON file, written atomically by the process
that computed it, and a job whose file exists is skipped."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runio.atomic import read_json, write_json


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one thread per process: N workers use N cores, no oversubscription


def _compute_and_write(fn: Callable[[Any], Any], arg: Any, path: Path) -> None:
    write_json(path, fn(arg))


@dataclass(frozen=True)
class MapReport:
    results: dict[str, Any]  # every job's result, read back from its file
    computed: int  # jobs computed by this call
    skipped: int  # jobs found finished and skipped


def resumable_map(jobs: Sequence[tuple[str, Any]], fn: Callable[[Any], Any], directory: Path, *, workers: int = 1,
                  on_done: Callable[[int, int, str], None] | None = None) -> MapReport:
    """Compute ``fn(arg)`` into ``directory/<name>.json`` for every job without a file.

    ``fn`` must be a module-level (picklable) function. ``workers`` > 1 uses that many spawned processes
    with one torch thread each; 1 runs here (also with one torch thread, so results do not depend on it).
    ``on_done(done, total, name)`` is called after each job (skipped ones count as done up front)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = {name: directory / f"{name}.json" for name, _ in jobs}
    if len(path) != len(jobs):
        raise ValueError("job names must be unique")
    todo = [(name, arg) for name, arg in jobs if not path[name].exists()]
    for name, _ in todo:  # temp files of jobs killed mid-write (atomic_path names them .<file>.<random><suffix>)
        for stale in directory.glob(f".{name}.json.*"):
            stale.unlink(missing_ok=True)
    done = len(jobs) - len(todo)
    if on_done is not None:
        on_done(done, len(jobs), "")
    if workers <= 1 or len(todo) <= 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for name, arg in todo:
                _compute_and_write(fn, arg, path[name])
                done += 1
                if on_done is not None:
                    on_done(done, len(jobs), name)
        finally:
            torch.set_num_threads(threads)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                                 initializer=_init_worker) as pool:
            pending = {pool.submit(_compute_and_write, fn, arg, path[name]): name for name, arg in todo}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        name = pending.pop(future)
                        future.result()  # re-raise a worker's exception here
                        done += 1
                        if on_done is not None:
                            on_done(done, len(jobs), name)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return MapReport(results={name: read_json(p) for name, p in path.items()}, computed=len(todo),
                     skipped=len(jobs) - len(todo))
