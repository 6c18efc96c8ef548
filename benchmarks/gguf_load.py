"""First use of a GGUF checkpoint (read + dequantise + save the plain directory: ``realmodels.loading.gguf``)
against a later use (hash the file, find the converted directory, load it with transformers), in one process.

    python benchmarks/gguf_load.py PATH.gguf [--repeats 3]

Target (issue 21): the later load <= 0.2x the first. Each repeat converts into a fresh temporary cache."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import BenchmarkResults, add_results_option  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("gguf", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    add_results_option(parser)
    args = parser.parse_args()
    bench = BenchmarkResults(__file__)
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    from realmodels.loading.gguf import convert_gguf

    logging.disable_progress_bar()
    first, later = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as root:
            started = time.perf_counter()
            out = convert_gguf(args.gguf, Path(root))
            AutoModelForCausalLM.from_pretrained(out)
            first.append(time.perf_counter() - started)
            started = time.perf_counter()
            AutoModelForCausalLM.from_pretrained(convert_gguf(args.gguf, Path(root)))
            later.append(time.perf_counter() - started)
    f, s = statistics.median(first), statistics.median(later)
    print(f"{args.gguf.name}: first use {f:.2f} s, later use {s:.2f} s (medians of {args.repeats}); "
          f"ratio {s / f:.3f} (target <= 0.2)")
    note = f"{args.gguf.name}, median of {args.repeats}"
    bench.add("first use: read, dequantise, save, load", f, "s", note=note)
    bench.add("later use: hash, find the converted directory, load", s, "s", note=note)
    bench.add("later use / first use", s / f, "×", target="<= 0.2")
    bench.write(args.results)


if __name__ == "__main__":
    main()
