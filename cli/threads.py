"""The torch thread count of every command: one ``--threads`` option and ``set_threads``.

Default 1, from measurement (benchmarks/threads.py, docs/benchmarks.md "Threads"): on a 2-core box with one other
CPU-bound process, 2 threads ran 1.5-3.8x slower than 1 on every workload (toy training and fine-tuning,
tiny/small transformer forwards, decoder proximity); quiet, 2 threads were 1.1-1.8x faster. Results do not depend on the count (tests check byte-identical outputs).

Use in a typer command::

    from cli.threads import DEFAULT_THREADS, Threads, set_threads

    def command(..., threads: Threads = DEFAULT_THREADS) -> None:
        ...  # validate the config first (cheap), then
        set_threads(threads)  # InputError if < 1; imports torch
"""

from __future__ import annotations

from typing import Annotated

import typer

from runio import jobs

DEFAULT_THREADS = 1
THREADS_HELP = ("Torch threads on CPU (results do not depend on it). 1 is the measured safe default: with another "
                "CPU-bound process on a 2-core box 2 threads ran 1.5-3.8x slower, while a quiet box gains at most "
                "1.8x from a second (benchmarks/threads.py).")

Threads = Annotated[int, typer.Option("--threads", help=THREADS_HELP, show_default=True)]


check_threads = jobs.check_threads  # ParamError naming `threads` unless n is in [1, MAX_THREADS] (no torch import)


set_threads = jobs.set_threads  # check, then torch.set_num_threads
