"""Data-parallel activation passes: one dataset's activations on the embedded organism (no --model) computed
- ``local-1``: in this process (``--workers 1``: ``dataset_activations``, no Ray),
- ``ray-2``: by 2 Ray actors (``--workers 2``: ``realmodels.data.pool``, a local Ray started and shut down for the
  call, each actor loading the model once; start-up, model loads and the merge included),
each into a fresh cache directory, one torch thread per worker, wall time of the whole call. Printed as the ratio
local-1 / ray-2 measured in this one process (> 1: the 2 workers are faster), the load average, and a check that
both wrote the same cache file byte for byte.

    python benchmarks/ray_activations.py [--dataset pretrain] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import BenchmarkResults, add_results_option  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="pretrain", help="a dataset of the organism world (default: pretrain, "
                                                                "20000 conversations)")
    parser.add_argument("--batch-size", type=int, default=8)
    add_results_option(parser)
    args = parser.parse_args()
    bench = BenchmarkResults(__file__)

    import torch

    from realmodels.data.pool import ActivationPool
    from realmodels.loading.session import ModelChoice, Session
    from realmodels.organism.world import write_world

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_world(root / "world")[args.dataset]
        n = sum(1 for line in data.read_text().splitlines() if line.strip())
        Session(ModelChoice(), progress=False).tokenizer  # imports warmed up before either timing
        times, caches = {}, {}
        for name, runner in (("local-1", None), ("ray-2", ActivationPool(workers=2))):
            print(f"{name}: {args.dataset} ({n} conversations), load {load()}", flush=True)
            session = Session(ModelChoice(), batch_size=args.batch_size, cache_dir=root / name, progress=False,
                              shard_runner=runner)
            start = time.perf_counter()
            try:
                session.activations(data)
            finally:
                session.close()
            times[name] = time.perf_counter() - start
            caches[name] = {p.name: p.read_bytes() for p in (root / name).glob("*.pt")}
            print(f"  {times[name]:.1f} s", flush=True)
    print(f"local-1 / ray-2 = {times['local-1'] / times['ray-2']:.2f} (load average after: {load()})")
    print(f"same cache file, byte for byte: {caches['local-1'] == caches['ray-2']}")
    setting = f"the organism's {args.dataset} ({n} conversations), batch {args.batch_size}"
    bench.add("1 worker, in process (local-1)", times["local-1"], "s", note=setting)
    bench.add("2 Ray actors (ray-2)", times["ray-2"], "s", note="Ray's start-up, the model loads and the merge included")
    same = "the same cache file byte for byte" if caches["local-1"] == caches["ray-2"] else "the cache files DIFFER"
    bench.add("local-1 / ray-2 (speed-up of 2 workers)", times["local-1"] / times["ray-2"], "×", note=same)
    bench.write(args.results)


if __name__ == "__main__":
    main()
