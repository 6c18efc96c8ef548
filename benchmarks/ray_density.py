"""The execution layer on the density sweep: ``toysuper density``'s default grid (16 cells) through
- ``pool-2``: the process pool the toolkit had before (benchmarks/process_pool_baseline.py, 2 spawned processes),
- ``ray-2``: ``runio.jobs.resumable_map`` with 2 workers (a local Ray started and shut down inside the call),
- ``local-1``: ``runio.jobs.resumable_map`` with 1 worker (in this process, no Ray: what ``--workers 1`` does),
in ``toysuper density``'s job order (most features first), interleaved (pool-2, ray-2, local-1, pool-2, ...),
each into a fresh directory, wall time of the whole call
(start-up and shut-down included), medians of ``--repeats``. Printed as ratios measured in this one process:
ray-2 / pool-2 (target <= 1.2) and local-1 / ray-2 (the speed-up of a second worker, target >= 1.7); plus what
Ray's start-up costs in wall and CPU seconds (the machine's counter), the upper bound that cost puts on the
speed-up at this size, and a check that every condition wrote byte-identical cells.

    python benchmarks/ray_density.py [--repeats 2] [--quick] [--instances N] [--no-pool]

``--no-pool`` leaves the old pool out (for the second worker's speed-up on a longer sweep: it halves the time).
The ratio local-1 / ray-2 is also printed per repeat (each pair ran back to back), because on this shared
machine the speed drifts by more than 10% between minutes-long runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the baseline pool beside this script
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: benchmarks.* is importable

from process_pool_baseline import resumable_map as pool_map  # noqa: E402

from benchmarks.results import BenchmarkResults, add_results_option  # noqa: E402
from runio.jobs import resumable_map  # noqa: E402
from toysuper.em.config import SweepConfig  # noqa: E402
from toysuper.em.sweep import cells, run_cell  # noqa: E402
from toysuper.runners import density_jobs  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def busy_cpu_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (Linux: /proc/stat's user, nice, system, irq
    and softirq; not idle, iowait, the hypervisor's steal, nor guest, which user already counts)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in stat.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _first_job() -> None:
    """What a fresh worker does before its first cell: import the cell's code (torch, scipy, pandas, toysuper)."""
    import toysuper.em.sweep  # noqa: F401


def ray_start_cost() -> dict[str, float]:
    """What the local Ray of ``--workers 2`` costs before its worker computes: ``ray.init`` with the one CPU it
    gets, a first task that imports the cell's code, and ``ray.shutdown``; wall seconds and CPU seconds of the
    whole machine (Ray's daemons and the worker are other processes, so the machine's counter is the one that
    sees them; run it on a quiet machine)."""
    import logging

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cost = {}
    cpu, wall = busy_cpu_seconds(), time.perf_counter()
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray.get(ray.remote(num_cpus=1)(_first_job).remote())
    cost["start_wall"], cost["start_cpu"] = time.perf_counter() - wall, busy_cpu_seconds() - cpu
    cpu, wall = busy_cpu_seconds(), time.perf_counter()
    ray.shutdown()
    cost["stop_wall"], cost["stop_cpu"] = time.perf_counter() - wall, busy_cpu_seconds() - cpu
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a 4-cell grid (a smoke run, not the measurement)")
    parser.add_argument("--instances", type=int, default=SweepConfig().n_instances,
                        help="replicas per cell (more: more work per cell, the same start-up)")
    parser.add_argument("--no-pool", action="store_true", help="leave the old pool out (ray-2 and local-1 only)")
    add_results_option(parser)
    args = parser.parse_args()
    bench = BenchmarkResults(__file__)
    grid = {"ratios": (2, 4), "probabilities": (0.1, 0.03)} if args.quick else {}
    config = SweepConfig(n_instances=args.instances, **grid)
    jobs = density_jobs(cells(config))  # the command's order, the same for every condition
    runs = {"pool-2": lambda d: pool_map(jobs, run_cell, d, workers=2),
            "ray-2": lambda d: resumable_map(jobs, run_cell, d, workers=2),
            "local-1": lambda d: resumable_map(jobs, run_cell, d, workers=1)}
    if args.no_pool:
        del runs["pool-2"]
    print(f"density sweep: {len(jobs)} cells, {config.n_instances} instances each; load average before: {load()}",
          flush=True)
    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, dict[str, bytes]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, run in runs.items():
                directory = Path(tmp) / f"{name}-{repeat}"
                start = time.perf_counter()
                run(directory)
                times[name].append(time.perf_counter() - start)
                outputs.setdefault(name, {p.name: p.read_bytes() for p in sorted(directory.glob("*.json"))})
                print(f"  {name:8s} run {repeat + 1}: {times[name][-1]:6.1f} s (load {load()})", flush=True)
    costs = [ray_start_cost() for _ in range(2)]
    cost = {key: statistics.median(c[key] for c in costs) for key in costs[0]}
    median = {name: statistics.median(t) for name, t in times.items()}
    identical = all(files == outputs["local-1"] for files in outputs.values())
    print("medians: " + ", ".join(f"{name} {t:.1f} s" for name, t in median.items()))
    print(f"local-1 / ray-2 (2 workers vs 1): {median['local-1'] / median['ray-2']:.3f}x faster (target >= 1.7); "
          "per repeat: " + ", ".join(f"{one / two:.3f}x" for one, two in zip(times["local-1"], times["ray-2"])))
    if "pool-2" in median:
        print(f"ray-2 / pool-2 wall time: {median['ray-2'] / median['pool-2']:.3f}x (target <= 1.2)")
        print(f"local-1 / pool-2 (the old pool's speed-up): {median['local-1'] / median['pool-2']:.3f}x")
    overhead = cost["start_cpu"] + cost["stop_cpu"]
    print(f"Ray start-up to a worker ready to compute (ray.init with 1 CPU + a first task importing the cell's "
          f"code): {cost['start_wall']:.1f} s wall, {cost['start_cpu']:.1f} CPU-s; ray.shutdown: "
          f"{cost['stop_wall']:.1f} s wall, {cost['stop_cpu']:.1f} CPU-s")
    # two cores, T1 CPU-s of cells (local-1's wall time; at best they do not slow each other) plus the start-up's
    # CPU-s: no schedule finishes before (T1 + overhead) / 2, nor before the shut-down, which comes after the last cell
    best = (median["local-1"] + overhead) / 2 + cost["stop_wall"]
    print(f"upper bound on 2 workers vs 1 at this size, from those CPU-s: {median['local-1'] / best:.3f}x")
    print(f"cells byte-identical across {', '.join(runs)}: {identical}")
    print(f"load average after: {load()}")
    sweep = f"{len(jobs)} cells × {config.n_instances} instances, median of {args.repeats}"
    for name, seconds in median.items():
        bench.add(f"{name}: wall time of the sweep", seconds, "s",
                  note=f"{sweep}; runs " + ", ".join(f"{t:.1f}" for t in times[name]))
    if "pool-2" in median:
        bench.add("Ray `--workers 2` / old pool, 2 processes (wall time)", median["ray-2"] / median["pool-2"], "×",
                  target="<= 1.2")
        bench.add("the old pool's speed-up: 1 worker / pool-2", median["local-1"] / median["pool-2"], "×")
    bench.add("2 Ray workers vs 1 (speed-up)", median["local-1"] / median["ray-2"], "×", target=">= 1.7",
              note="per repeat: " + ", ".join(f"{one / two:.3f}" for one, two in zip(times["local-1"], times["ray-2"])))
    bench.add("Ray start-up to a worker ready to compute", cost["start_wall"], "s",
              note=f"{cost['start_cpu']:.1f} CPU-s of the machine (ray.init with 1 CPU + a first task importing the "
                   "cell's code)")
    bench.add("ray.shutdown", cost["stop_wall"], "s", note=f"{cost['stop_cpu']:.1f} CPU-s")
    bench.add("upper bound on 2 workers vs 1 at this size", median["local-1"] / best, "×",
              note="(cells + start-up CPU-s) / 2 + shut-down on two cores")
    bench.add("conditions that wrote byte-identical cells", sum(files == outputs["local-1"] for files in outputs.values()),
              f"of {len(outputs)}")
    bench.write(args.results)


if __name__ == "__main__":
    main()
