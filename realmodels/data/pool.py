"""Ray actors computing a dataset's activations shard by shard (``realmodels.data.shards``): a ``ShardRunner``
(``ActivationPool``; behind ``--workers N`` / ``--ray-address`` / ``--num-gpus-per-worker`` of the analysis
commands, whose typer options are in ``cli``).

Why Ray actors and not Ray Data ``map_batches`` with an actor pool: the unit of work is a shard whose identity
must outlive a kill (one file per shard, written by the worker that computed it; a rerun computes only the
missing ones), and whose batches must be exactly the single-process pass's, which is what makes the merged cache
equal to the single-process one (``realmodels.data.shards``). Ray Data re-blocks its input and streams rows to
its own sinks, so keeping our batch composition and per-shard files would mean fighting it, and it needs pyarrow
on every node. Here each actor loads the model + SAE once — as soon as the pool starts, while this process
tokenises the dataset (``start``) — and the driver hands out one shard at a time to whichever actor is free, so
long and short shards balance.

Where: no address — a local Ray started when the first dataset's cache is missing, with ``workers × threads`` CPUs
(``runio.jobs`` starts and joins Ray the same way), shut down by ``close`` (the command's end, also on an error or
Ctrl-C); a ``ray_address`` — that cluster, ``workers`` actors. Each actor takes ``threads`` CPUs (torch threads) and
``num_gpus_per_worker`` GPUs (Ray gives each its own CUDA_VISIBLE_DEVICES; without a ``device_map`` a GPU worker
places its model with "auto" on them). The shards are written under the cache directory, so on a cluster it must
be on a filesystem every node mounts at the same path. A shard that fails: no new shard starts, the running ones
finish and keep their files, then a ``runio.jobs.JobError`` names the shard and the kind of what it raised (its
traceback in ``<shard>.error.txt`` beside it). Ray is imported only when a shard has to be computed."""

from __future__ import annotations

import math
import os
import traceback
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from runio.atomic import write_text
from runio.jobs import JobError, check_address, check_threads, check_workers, connect, error_kind, one_line
from runio.redact import redact
from theory.errors import ParamError

if TYPE_CHECKING:
    from realmodels.data.shards import ShardJob, WorkerSpec

def check_gpus(n: float) -> None:
    """ParamError (naming ``num_gpus_per_worker``) unless ``n`` is a finite number >= 0 (no Ray import)."""
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n < 0:
        raise ParamError(f"`num_gpus_per_worker` must be a number >= 0, got {n}")


class ShardActor:
    """What each Ray actor is: a ``ShardWorker`` loaded at the first shard, with ``threads`` torch threads; a
    failure comes back as ``{"error": one line, "traceback": text, "kind": error_kind}`` (None: the shard's file is
    written)."""

    def __init__(self, spec: WorkerSpec, threads: int):
        self.spec, self.threads, self.worker = spec, threads, None

    def load(self) -> None:
        """Load the model now (ahead of the first shard); a failure is left for ``compute`` to report."""
        try:
            self._worker()
        except Exception:  # noqa: BLE001 - compute retries and reports it, naming the shard
            pass

    def _worker(self):
        import torch

        from realmodels.data.shards import ShardWorker

        torch.set_num_threads(self.threads)
        if self.worker is None:
            self.worker = ShardWorker(self.spec)
        return self.worker

    def compute(self, job: ShardJob) -> dict | None:
        """Compute ``job`` on this actor's worker (loaded on first use); None on success, else a dict with the one-line
        error, its traceback and its kind for the driver to report."""
        try:
            self._worker().compute(job)
        except Exception as exc:  # noqa: BLE001 - reported by the driver, naming the shard
            return {"error": one_line(exc), "traceback": traceback.format_exc(), "kind": error_kind(exc)}
        return None


class ActivationPool:
    """A ``ShardRunner`` on Ray actors (module docstring); Ray and the actors start at the first call and stay
    up for the session's other datasets until ``close``."""

    def __init__(self, workers: int = 1, ray_address: str | None = None, num_gpus_per_worker: float = 0.0,
                 threads: int = 1):
        check_workers(workers)
        check_address(ray_address)
        check_gpus(num_gpus_per_worker)
        check_threads(threads)
        self.workers, self.address, self.num_gpus = workers, ray_address, float(num_gpus_per_worker)
        self.threads = threads
        self._kind: str | None = None  # how Ray was joined (runio.jobs.connect), once it is
        self._actors: list[Any] = []
        self._spec: WorkerSpec | None = None

    def start(self, spec: WorkerSpec) -> None:
        """Start Ray and the actors for ``spec`` and have them load the model, without waiting."""
        for actor in self._start(spec):
            actor.load.remote()

    def __call__(self, spec: WorkerSpec, jobs: list[ShardJob], on_done: Callable[[ShardJob], None]) -> None:
        if not jobs:
            return
        import ray

        idle, queue = deque(self._start(spec)), deque(jobs)
        pending: dict[Any, tuple[Any, ShardJob]] = {}
        failure: tuple[ShardJob, dict] | None = None
        while queue or pending:
            while queue and idle and failure is None:
                actor, job = idle.popleft(), queue.popleft()
                pending[actor.compute.remote(job)] = (actor, job)
            if not pending:
                break
            [ref], _ = ray.wait(list(pending), num_returns=1)
            actor, job = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the actor died (killed, out of memory)
                outcome = {"error": one_line(exc), "traceback": str(exc), "kind": "bug"}
            if outcome is None:
                on_done(job)
            elif failure is None:
                failure = (job, outcome)
            idle.append(actor)
        if failure is not None:
            job, outcome = failure
            path = Path(job.path)
            error_file, text = path.with_name(f"{job.name}.error.txt"), redact(outcome["traceback"])
            write_text(error_file, text)
            raise JobError(job.name, outcome["error"], text, error_file, path.parent, outcome["kind"],
                           what="activation shard")

    def _start(self, spec: WorkerSpec) -> list[Any]:
        """The actors for ``spec`` (started on the first call; Ray joined or started then)."""
        if self._actors and spec == self._spec:
            return self._actors  # loaded already, or loading
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats prompt or upload
        import ray

        self._kill_actors()
        if self._kind is None:
            self._kind = connect(self.workers, self.address, self.threads)
        if self.num_gpus > 0 and ray.cluster_resources().get("GPU", 0) < self.num_gpus:
            gpus = ray.cluster_resources().get("GPU", 0)
            raise ParamError(f"`num_gpus_per_worker` {self.num_gpus:g}: the Ray cluster has {gpus:g} GPU(s)")
        worker_spec = replace(spec, device_map="auto") if self.num_gpus > 0 and spec.device_map is None else spec
        actor_class = ray.remote(num_cpus=self.threads, num_gpus=self.num_gpus, max_restarts=0)(ShardActor)
        self._actors = [actor_class.remote(worker_spec, self.threads) for _ in range(self.workers)]
        self._spec = spec
        return self._actors

    def _kill_actors(self) -> None:
        if self._actors:
            import ray

            for actor in self._actors:
                ray.kill(actor)
        self._actors, self._spec = [], None

    def close(self) -> None:
        """Stop the actors, and the local Ray (or disconnect from the cluster); nothing if none started."""
        if self._kind is None:
            return
        import ray

        try:
            if self._kind != "local":  # a local Ray stops whole
                self._kill_actors()
        finally:
            self._actors, self._spec = [], None
            if self._kind != "caller":
                ray.shutdown()
            self._kind = None
