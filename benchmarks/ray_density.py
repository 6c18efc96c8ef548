"""The execution layer on the density sweep: ``toysuper density``'s default grid (16 cells) through
- ``pool-2``: the process pool the toolkit had before (benchmarks/process_pool_baseline.py, 2 spawned processes),
- ``ray-2``: ``cli.jobs.resumable_map`` with 2 workers (a local Ray started and shut down inside the call),
- ``local-1``: ``cli.jobs.resumable_map`` with 1 worker (in this process, no Ray: what ``--workers 1`` does),
in ``toysuper density``'s job order (most features first), interleaved (pool-2, ray-2, local-1, pool-2, ...),
each into a fresh directory, wall time of the whole call
(start-up and shut-down included), medians of ``--repeats``. Printed as ratios measured in this one process:
ray-2 / pool-2 (target <= 1.2) and local-1 / ray-2 (the speed-up of a second worker, target >= 1.7); plus the
cost of a bare ``ray.init`` + ``ray.shutdown`` and a check that every condition wrote byte-identical cells.

    python benchmarks/ray_density.py [--repeats 2] [--quick] [--instances N]
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

from process_pool_baseline import resumable_map as pool_map  # noqa: E402

from cli.jobs import resumable_map  # noqa: E402
from cli.toysuper_runs import density_jobs  # noqa: E402
from toysuper.em.config import SweepConfig  # noqa: E402
from toysuper.em.sweep import cells, run_cell  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def ray_start_stop() -> float:
    import logging

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray.shutdown()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a 4-cell grid (a smoke run, not the measurement)")
    parser.add_argument("--instances", type=int, default=SweepConfig().n_instances,
                        help="replicas per cell (more: more work per cell, the same start-up)")
    args = parser.parse_args()
    grid = {"ratios": (2, 4), "probabilities": (0.1, 0.03)} if args.quick else {}
    config = SweepConfig(n_instances=args.instances, **grid)
    jobs = density_jobs(cells(config))  # the command's order, the same for every condition
    runs = {"pool-2": lambda d: pool_map(jobs, run_cell, d, workers=2),
            "ray-2": lambda d: resumable_map(jobs, run_cell, d, workers=2),
            "local-1": lambda d: resumable_map(jobs, run_cell, d, workers=1)}
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
    start_stop = statistics.median(ray_start_stop() for _ in range(2))
    median = {name: statistics.median(t) for name, t in times.items()}
    identical = all(files == outputs["local-1"] for files in outputs.values())
    print("medians: " + ", ".join(f"{name} {t:.1f} s" for name, t in median.items()))
    print(f"ray-2 / pool-2 wall time: {median['ray-2'] / median['pool-2']:.3f}x (target <= 1.2)")
    print(f"local-1 / ray-2 (2 workers vs 1): {median['local-1'] / median['ray-2']:.3f}x faster (target >= 1.7)")
    print(f"local-1 / pool-2 (the old pool's speed-up): {median['local-1'] / median['pool-2']:.3f}x")
    print(f"bare ray.init + ray.shutdown (2 CPUs): {start_stop:.1f} s")
    print(f"cells byte-identical across pool-2, ray-2, local-1: {identical}")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
