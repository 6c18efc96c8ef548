"""The execution layer's command-line options (the layer itself is ``runio.jobs``, the activation actors
``realmodels.data.pool``): the typer types ``Workers`` and ``RayAddress``, the help of ``--num-gpus-per-worker``,
and the library's checks (their messages name the parameters, ``cli.errors.user_errors`` renders them as the flags:
``--workers must be an integer >= 1``), which the commands call with their other cheap checks, before anything is
loaded or written."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from runio import jobs

RAY_ADDRESS_HELP = ("Join a running Ray cluster instead of starting a local one: auto (the cluster `ray start` "
                    "started on this machine), ray://HOST:PORT (Ray Client) or HOST:PORT (the head's GCS). Workers "
                    "write their results under --out, which must then be on a filesystem every node shares.")
WORKERS_HELP = ("Jobs run at once (local: a Ray with this many CPUs, one torch thread each; 1: in this process, "
                "without Ray). Results do not depend on it.")
GPUS_HELP = ("GPUs each Ray worker of --workers/--ray-address reserves (fractions share a GPU; without --device-map "
             "a GPU worker places its model with auto on them). 0: CPU workers.")

RayAddress = Annotated[Optional[str], typer.Option("--ray-address", help=RAY_ADDRESS_HELP,
                                                  show_default="none: a local Ray")]
Workers = Annotated[int, typer.Option("--workers", help=WORKERS_HELP, show_default=True)]


check_workers = jobs.check_workers  # the library's checks: their ParamErrors name `workers` and `ray_address`
check_reachable = jobs.check_reachable  # (the address's form, then a TCP probe)


def check_gpus(n: float) -> None:
    """``realmodels.data.pool.check_gpus`` (imported when called: no Ray or torch import before)."""
    from realmodels.data.pool import check_gpus as check

    check(n)
