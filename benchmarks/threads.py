"""Torch thread policy: 1 vs 2 threads on this project's workloads, on a quiet machine and with one
competing CPU-bound process (started and stopped by this script), as ratios measured in one process.

Workloads (each the hot loop of a command):
- ``toy-train``: ``toysuper.train.train`` on the simulate default (20 features, 5 dims, 8 instances, batch
  1024) — ``toysuper simulate`` and every toy study;
- ``toy-finetune``: the studies' narrow fine-tuning (20 full-batch SGD steps on 256 samples) per task;
- ``tiny-forward``: forward passes of a Llama-architecture model of the organism's size (hidden 64, 3 layers,
  batch 16 x 64 tokens) — ``realmodels`` activations on the tiny/organism models;
- ``small-forward``: the same at hidden 512, 4 layers (where a second thread has more to do);
- ``decoder-topk``: ``theory.geometry.set_proximity`` of a 16,384 x 2,304 decoder to 64 rows — ``geometry``.

For each: throughput (runs/s) with ``torch.set_num_threads(1)`` and ``(2)``, quiet and loaded, interleaved
(1, 2, 1, 2, ...) and the median of ``--repeats``; printed as the ratio 2-thread / 1-thread throughput
(> 1: the second thread helps) in each condition, and the chosen default's (1 thread) worst-case ratio
against the better choice.

    python benchmarks/threads.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import BenchmarkResults, add_results_option  # noqa: E402
from theory.geometry import set_proximity  # noqa: E402
from toysuper.config import FinetuneConfig, ModelConfig, TrainConfig  # noqa: E402
from toysuper.finetune import finetune  # noqa: E402
from toysuper.train import train  # noqa: E402


def toy_train(quick: bool) -> Callable[[], None]:
    model = ModelConfig(n_features=20, n_hidden=5, n_instances=8, feature_probability=0.05,
                        feature_probability_min=None, importance_decay=1.0)
    cfg = TrainConfig(steps=100 if quick else 400, batch_size=1024, lr=1e-2)
    return lambda: train(model, cfg)


def toy_finetune(quick: bool) -> Callable[[], None]:
    model = ModelConfig(n_features=20, n_hidden=5, n_instances=8, feature_probability=0.05,
                        feature_probability_min=None, importance_decay=1.0)
    trained = train(model, TrainConfig(steps=50, batch_size=256, lr=1e-2)).model
    x = torch.rand(8, 256, 20)
    cfg = FinetuneConfig(target=3, lr=0.01, steps=20)
    return lambda: [finetune(trained, x, cfg) for _ in range(5 if quick else 17)]


def _llama_forward(hidden: int, layers: int, quick: bool) -> Callable[[], None]:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=512, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 512, (16, 64))

    def run() -> None:
        with torch.no_grad():
            for _ in range(2 if quick else 8):
                model(input_ids=ids, output_hidden_states=True)

    return run


def decoder_topk(quick: bool) -> Callable[[], None]:
    g = torch.Generator().manual_seed(0)
    decoder = torch.randn(4096 if quick else 16384, 2304, generator=g)
    reference = decoder[:64].clone()
    return lambda: set_proximity(decoder, reference, k=5, chunk_size=2048)


WORKLOADS = {"toy-train": toy_train, "toy-finetune": toy_finetune,
             "tiny-forward": lambda q: _llama_forward(64, 3, q), "small-forward": lambda q: _llama_forward(512, 4, q),
             "decoder-topk": decoder_topk}


def timed(fn: Callable[[], None], threads: int) -> float:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(fn: Callable[[], None], repeats: int) -> dict[int, float]:
    """Median seconds per run at 1 and 2 threads, interleaved after one warm-up each."""
    timed(fn, 1), timed(fn, 2)
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for threads in (1, 2):
            times[threads].append(timed(fn, threads))
    return {t: statistics.median(v) for t, v in times.items()}


def start_competitor() -> subprocess.Popen:
    """One CPU-bound process (a pure-Python busy loop), like another job on the shared box."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    parser.add_argument("--only", nargs="*", choices=sorted(WORKLOADS), help="run only these workloads")
    add_results_option(parser)
    args = parser.parse_args()
    bench = BenchmarkResults(__file__)
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}, torch {torch.__version__}")
    rows = []
    for name in args.only or WORKLOADS:
        fn = WORKLOADS[name](args.quick)
        quiet = measure(fn, args.repeats)
        competitor = start_competitor()
        try:
            time.sleep(0.5)
            loaded = measure(fn, args.repeats)
        finally:
            competitor.kill()
            competitor.wait()
        rows.append((name, quiet, loaded))
        print(f"{name:14s} quiet: 1t {quiet[1]:.3f}s 2t {quiet[2]:.3f}s  (2t/1t speed {quiet[1] / quiet[2]:.2f}x) | "
              f"loaded: 1t {loaded[1]:.3f}s 2t {loaded[2]:.3f}s  (2t/1t speed {loaded[1] / loaded[2]:.2f}x)", flush=True)
    print("\nchosen default: 1 thread. Its throughput relative to the better of 1 and 2 threads:")
    for name, quiet, loaded in rows:
        print(f"  {name:14s} quiet {min(quiet.values()) / quiet[1]:.2f}, loaded {min(loaded.values()) / loaded[1]:.2f}"
              f"   (2 threads when loaded: {loaded[2] / loaded[1]:.1f}x the 1-thread time)")
    for name, quiet, loaded in rows:
        bench.add(f"{name}, quiet: 2-thread / 1-thread speed", quiet[1] / quiet[2], "×",
                  note=f"1 thread {quiet[1]:.3f} s, 2 threads {quiet[2]:.3f} s per run")
        bench.add(f"{name}, one competing process: 2-thread / 1-thread speed", loaded[1] / loaded[2], "×",
                  note=f"1 thread {loaded[1]:.3f} s, 2 threads {loaded[2]:.3f} s per run")
    bench.write(args.results, torch_threads="1 vs 2")


if __name__ == "__main__":
    main()
