"""The one execution layer: a resumable map of named jobs on Ray, from one laptop to a cluster (a library: the
CLI's ``--workers`` / ``--ray-address`` options are in ``cli.jobs_options``).

``resumable_map(jobs, fn, directory)`` computes ``fn(arg)`` into ``directory/<name>.json`` for every job
without a file. Each result is written atomically (``runio.atomic.write_json``) by the worker that computed
it, so a killed run loses nothing finished and never leaves half a file (only a hidden temp file, removed on
the next run); a rerun skips every job whose file exists. Every worker runs ``threads`` torch threads (default
one), so N workers use N cores; a job's result does not depend on the number of workers or where it ran.

Where jobs run:
- ``workers == 1`` and no ``ray_address`` (or at most one job left): in this process, without Ray (no start-up cost:
  tests and one-worker runs stay fast, and ``fn`` can be any callable).
- otherwise, no ``ray_address``: a local Ray started for this call and shut down when it returns or fails (no Ray
  process outlives a command). This process is one of the ``workers`` (a thread here runs jobs from the start,
  so Ray's seconds of start-up overlap with work) and Ray gets ``(workers - 1) × threads`` CPUs.
- ``ray_address`` (``auto``: the cluster of ``ray start`` on this machine; ``ray://HOST:PORT``: Ray Client;
  ``HOST:PORT``: a head's GCS): joins that cluster, runs at most ``workers`` jobs at once, and only
  disconnects at the end. Workers write under ``directory``, so it must be on a filesystem every node
  mounts at the same path (the driver reads the results back from there), and the project must be
  installed on every node (``fn`` travels by reference to its module).

``fn`` must be a module-level function (Ray pickles it by reference). A job that raises stops new jobs from
starting; those already running finish and keep their results; then a ``JobError`` names the job and says
what it raised (``kind``: "input" for an ``InputError``, "os" for an ``OSError``, "bug" for anything else, a
worker that died included), and its traceback is in ``<name>.error.txt`` beside the results (and in the
exception's notes). The CLI renders the "input" and "os" kinds as one line (exit 2) and lets a bug raise.
Errors, tracebacks and everything a job prints in a Ray worker (whose output lands in Ray's session logs) are
redacted (``runio.redact``: no API key or ``Bearer`` token). Joining a cluster is bounded in time
(``CONNECT_TIMEOUT_S``): an address where nothing answers is an ``InputError``. Ray is imported only when it is
needed. Errors about an argument are ``ParamError``s naming the parameter in backticks (``workers``, ``ray_address``,
``threads``); a CLI renders them as its flags (``cli.errors``)."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from runio.atomic import read_json, write_json, write_text
from runio.redact import RedactingStream, install_log_redaction, redact
from theory.errors import InputError, ParamError

_HOST_PORT = r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:(?P<port>\d{1,5})"
CONNECT_TIMEOUT_S = 30.0  # joining a cluster: ray.init with an address where nothing answers would wait for minutes
PROBE_TIMEOUT_S = 5.0  # the TCP check of a HOST:PORT before anything is written
MAX_THREADS = 1024  # more than any machine's cores; torch refuses counts past int32
MAX_WORKERS = 1024  # workers (Ray actors or processes) one command may ask for


def check_workers(n: int) -> None:
    """ParamError (naming ``workers``) unless ``n`` is an integer in [1, MAX_WORKERS]."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParamError(f"`workers` must be an integer >= 1, got {n}")
    if n > MAX_WORKERS:
        raise ParamError(f"`workers` must be at most {MAX_WORKERS}, got {n}")


def check_threads(n: int) -> None:
    """ParamError (naming ``threads``) unless ``n`` is an integer in [1, MAX_THREADS] (no torch import)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_THREADS:
        raise ParamError(f"`threads` must be an integer >= 1, got {n} (at most {MAX_THREADS})")


def check_address(address: str | None) -> None:
    """ParamError (naming ``ray_address``) unless ``address`` is None, ``auto``, ``ray://HOST:PORT`` or
    ``HOST:PORT`` with a port in 1..65535 (no Ray import, no network)."""
    if address is None or address == "auto":
        return
    match = re.fullmatch(f"(ray://)?{_HOST_PORT}", address) if isinstance(address, str) else None
    if match is None:
        raise ParamError(f"`ray_address` must be auto, ray://HOST:PORT or HOST:PORT, got {address!r}")
    if not 1 <= int(match["port"]) <= 65535:
        raise ParamError(f"`ray_address` {address}: the port must be in 1..65535")


def check_reachable(address: str | None, timeout: float = PROBE_TIMEOUT_S) -> None:
    """``check_address``, then for ``HOST:PORT`` and ``ray://HOST:PORT`` a ParamError unless something accepts a
    TCP connection there within ``timeout`` s (call it before writing anything)."""
    import socket

    check_address(address)
    if address is None or address == "auto":
        return
    host, port = address.removeprefix("ray://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ParamError(f"could not join the Ray cluster at `ray_address` {address}: {reason} (start one with "
                         "`ray start --head`)") from None


JOB_ERROR_KINDS = ("input", "os", "bug")


def error_kind(exc: BaseException) -> str:
    """What a job's exception is: "input" (an InputError), "os" (an OSError) or "bug" (anything else)."""
    return "input" if isinstance(exc, InputError) else "os" if isinstance(exc, OSError) else "bug"


class JobError(Exception):
    """A job raised (or its worker died): one line naming the job, what it raised and the file holding its
    traceback (also added as a note, so a traceback of this exception shows it). ``kind``: ``error_kind`` of
    what the job raised. Not an InputError: whether it is the user's error depends on ``kind``."""

    def __init__(self, name: str, error: str, traceback_text: str, error_file: Path, kept: Path, kind: str,
                 what: str = "job"):
        if kind not in JOB_ERROR_KINDS:
            raise ValueError(f"kind must be one of {JOB_ERROR_KINDS}, got {kind!r}")
        self.name, self.kind, self.error_file = name, kind, error_file
        super().__init__(f"{what} {name} failed: {error} (traceback: {error_file}; the other finished results are "
                         f"kept in {kept}: a rerun resumes from them)")
        self.add_note(f"the {what}'s traceback ({error_file}):\n{traceback_text.rstrip()}")


@dataclass(frozen=True)
class MapReport:
    """What ``resumable_map`` did: every job's result (read back from its file, in the order of the jobs), the number of
    jobs computed by this call and the number found finished and skipped."""
    results: dict[str, Any]
    """Every job's result, read back from its file, in the order of the jobs."""
    computed: int
    """Jobs computed by this call."""
    skipped: int
    """Jobs found finished and skipped."""


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, redacted, prefixed by its type unless it is an InputError."""
    text = str(exc).strip().splitlines()
    message = redact(text[0]) if text else ""
    if isinstance(exc, InputError):
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def run_job(fn: Callable[[Any], Any], arg: Any, path: str, threads: int) -> dict | None:
    """Compute ``fn(arg)`` with ``threads`` torch threads and write it to ``path``: None, or the error
    ({"error": one line, "traceback": text, "kind": ``error_kind``}) when ``fn`` raised. What every worker runs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        write_json(Path(path), fn(arg))
    except Exception as exc:  # noqa: BLE001 - reported by the driver, naming the job
        return {"error": one_line(exc), "traceback": redact(traceback.format_exc()), "kind": error_kind(exc)}
    finally:
        torch.set_num_threads(before)
    return None


def run_job_on_ray(fn: Callable[[Any], Any], arg: Any, path: str, threads: int) -> dict | None:
    """``run_job`` in a Ray worker: what the job prints or logs goes to Ray's session logs, so it is redacted."""
    import contextlib

    install_log_redaction()
    try:
        with contextlib.redirect_stdout(RedactingStream(sys.stdout)), \
                contextlib.redirect_stderr(RedactingStream(sys.stderr)):
            return run_job(fn, arg, path, threads)
    finally:  # the worker's log files get what the job printed before Ray may stop the worker
        sys.stdout.flush()
        sys.stderr.flush()


def resumable_map(jobs: Sequence[tuple[str, Any]], fn: Callable[[Any], Any], directory: Path, *, workers: int = 1,
                  ray_address: str | None = None, threads: int = 1,
                  on_done: Callable[[int, int, str], None] | None = None) -> MapReport:
    """Compute ``fn(arg)`` into ``directory/<name>.json`` for every ``(name, arg)`` job without a file (module
    docstring: where jobs run, what a failure leaves). ``on_done(done, total, name)`` is called after each job
    (the skipped ones count as done up front, with name "")."""
    check_workers(workers)
    check_address(ray_address)
    check_threads(threads)
    address = ray_address
    directory = Path(directory).resolve()  # workers may run elsewhere (another cwd, another node)
    directory.mkdir(parents=True, exist_ok=True)
    path = {name: directory / f"{name}.json" for name, _ in jobs}
    if len(path) != len(jobs):
        raise ValueError("job names must be unique")
    todo = [(name, arg) for name, arg in jobs if not path[name].exists()]
    for name, _ in todo:  # temp files of jobs killed mid-write (atomic_path names them .<file>.<random><suffix>)
        for stale in directory.glob(f".{name}.json.*"):
            stale.unlink(missing_ok=True)
        (directory / f"{name}.error.txt").unlink(missing_ok=True)
    done = len(jobs) - len(todo)
    if on_done is not None:
        on_done(done, len(jobs), "")

    def finished(name: str, outcome: dict | None) -> None:
        nonlocal done
        if outcome is not None:
            error_file, text = directory / f"{name}.error.txt", redact(outcome["traceback"])
            write_text(error_file, text)
            raise JobError(name, redact(outcome["error"]), text, error_file, directory, outcome["kind"])
        done += 1
        if on_done is not None:
            on_done(done, len(jobs), name)

    if address is None and (workers == 1 or len(todo) <= 1):
        for name, arg in todo:
            finished(name, run_job(fn, arg, str(path[name]), threads))
    elif todo:
        _ray_map(todo, fn, path, workers=workers, address=address, threads=threads, finished=finished)
    missing = [name for name in path if not path[name].is_file()]
    if missing:  # only on a cluster whose workers wrote somewhere the driver does not see
        raise InputError(f"job {missing[0]} finished but {path[missing[0]]} is not there: on a Ray cluster the "
                         "results' directory must be on a filesystem every node shares, at the same path")
    return MapReport(results={name: read_json(p) for name, p in path.items()}, computed=len(todo),
                     skipped=len(jobs) - len(todo))


def connect(workers: int, address: str | None, threads: int) -> str:
    """ray.init: "local" (a Ray started here, ours to shut down), "cluster" (joined at ``address``: disconnect
    at the end) or "caller" (Ray was already initialised by the caller: leave it as it is)."""
    import ray

    if ray.is_initialized():
        return "caller"
    if address is None:
        # "local": a Ray of our own, even where `ray start` or RAY_ADDRESS would make ray.init join that one
        ray.init(address="local", num_cpus=workers * threads, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        return "local"
    outcome: list[BaseException | None] = []

    def join() -> None:  # ray.init waits for minutes where nothing answers: bounded by a thread
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome.append(exc)

    if threading.current_thread() is threading.main_thread():  # what ray.init does on the main thread only
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))

    def not_the_thread_warning(record: logging.LogRecord) -> bool:  # ...and warns about on another thread
        return "SIGTERM handler is not set" not in record.getMessage()

    worker_log = logging.getLogger("ray._private.worker")
    worker_log.addFilter(not_the_thread_warning)
    try:
        joining = threading.Thread(target=join, name="ray-connect", daemon=True)
        joining.start()
        joining.join(CONNECT_TIMEOUT_S)
    finally:
        worker_log.removeFilter(not_the_thread_warning)
    if not outcome:
        raise ParamError(f"could not join the Ray cluster at `ray_address` {address}: no answer within "
                         f"{CONNECT_TIMEOUT_S:g} s (start one with `ray start --head`)")
    if isinstance(outcome[0], (ConnectionError, RuntimeError, ValueError)):
        raise ParamError(f"could not join the Ray cluster at `ray_address` {address}: {one_line(outcome[0])} (start "
                         "one with `ray start --head`)") from None
    if outcome[0] is not None:
        raise outcome[0]
    return "cluster"


def _ray_map(todo: list[tuple[str, Any]], fn: Callable, path: dict[str, Path], *, workers: int, address: str | None,
             threads: int, finished: Callable[[str, dict | None], None]) -> None:
    """Run ``todo`` with at most ``workers`` jobs at once; after a failure start nothing new, let the running
    jobs finish, then report the first failure (``finished`` raises it).

    On a local Ray this process is one of the ``workers``: a thread here takes jobs from the same queue from the
    start, so Ray's start-up (seconds) overlaps with work instead of adding to it, and Ray gets the other
    ``workers - 1`` CPUs. On a cluster every job goes to Ray."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats prompt or upload
    import ray

    queue = deque(todo)
    lock = threading.Lock()
    stop = threading.Event()  # a job failed: take no new one
    events: SimpleQueue = SimpleQueue()  # (name, outcome) of the jobs run here; None when that thread ends

    def take() -> tuple[str, Any] | None:
        with lock:
            return queue.popleft() if queue and not stop.is_set() else None

    def here() -> None:
        try:
            while (job := take()) is not None:
                events.put((job[0], run_job(fn, job[1], str(path[job[0]]), threads)))
        finally:
            events.put(None)

    here_too = address is None and not ray.is_initialized()
    local_thread = threading.Thread(target=here, name="jobs-here", daemon=True) if here_too else None
    if local_thread is not None:
        local_thread.start()
    kind = "caller"
    pending: dict[Any, str] = {}
    failure: tuple[str, dict] | None = None

    def outcome_of(name: str, outcome: dict | None) -> None:
        nonlocal failure
        if outcome is None:
            finished(name, None)
        elif failure is None:
            failure = (name, outcome)
            stop.set()

    try:
        slots = workers - 1 if here_too else workers
        kind = connect(slots, address, threads)
        task = ray.remote(num_cpus=threads, max_retries=0)(run_job_on_ray)

        def submit() -> None:
            if (job := take()) is not None:
                pending[task.remote(fn, job[1], str(path[job[0]]), threads)] = job[0]

        for _ in range(slots):
            submit()
        here_running = local_thread is not None
        while pending or here_running:
            # what the thread here reports; with no Ray job left (none is submitted but on a Ray job's end) this
            # blocks until that thread ends
            while here_running and (not pending or not events.empty()):
                event = events.get()
                if event is None:
                    here_running = False
                else:
                    outcome_of(*event)
            if not pending:
                continue
            # a Ray job's end wakes this at once; a job run here is only counted (it takes the next job itself),
            # so a quarter second late is fine, and polling 50 times a second cost 2% of a core
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25 if here_running else None)
            for ref in ready:
                name = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died (killed, out of memory)
                    outcome = {"error": one_line(exc), "traceback": redact(exc), "kind": "bug"}
                outcome_of(name, outcome)
                submit()
        if failure is not None:
            finished(*failure)
    finally:
        stop.set()  # interrupted: the thread here takes no new job (the one it runs dies with this process)
        if kind != "local":  # stop our jobs on a Ray that keeps running (a local one stops whole)
            for ref in pending:
                ray.cancel(ref, force=True)
        if kind != "caller":
            ray.shutdown()  # local: stops every process it started; cluster: disconnects only


def set_threads(n: int) -> None:
    """Check ``n`` (``check_threads``) and set torch's intra-op thread count to it (imports torch)."""
    check_threads(n)
    import torch

    torch.set_num_threads(n)
