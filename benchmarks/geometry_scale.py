"""Geometry at SAE scale: all-pairs top-k nearest decoder directions (``theory.geometry.top_k_neighbours``)
and set proximity (``theory.geometry.set_proximity``), each timed against the bare chunked matrix product
of the same size, run in the same process.

Reference ("bare"): for each chunk of query rows q (chunk_size x d), one ``q @ decoder.T`` — the matrix
product any top-k must do — and nothing else (no normalisation, no top-k).

1. 131,072 x 3,584 (Gemma Scope width 131k on Gemma-2 9B's residual). A full all-pairs pass is
   2 n² d ≈ 123 TFLOP, ~10 min at ~190 GFLOP/s on 2 cores, so a representative subset is timed:
   ``--chunks`` consecutive query chunks at ``--repeats`` offsets spread over the decoder, top-k and bare
   interleaved on the same chunks. The top-k call gets those rows as ``queries`` (one call per offset, so
   its O(n d) norm pass is amortised over ``--chunks`` chunks instead of all n / chunk_size: pessimistic).
   The full-pass time is extrapolated linearly in the number of query rows, and stated as such.
   Peak extra memory: the process's peak RSS (VmHWM, reset through /proc/self/clear_refs before each call)
   minus its RSS just before the call, i.e. memory beyond the decoder, for top-k and for the bare product.
2. 16,384 x 2,304 (Gemma Scope 16k on Gemma-2 2B): the full all-pairs top-10, timed next to the full bare
   chunked product, interleaved repeats.
3. Set proximity of all 131,072 features to a 64-feature set vs the bare product of the same shapes.

    python benchmarks/geometry_scale.py [--threads 2] [--k 10] [--chunk-size 1024] [--chunks 2] [--repeats 3]
                                        [--cases 123] [--quick]

Targets: time <= 1.3x the bare product; peak extra memory < 1 GiB beyond the decoder. Time ratios are
the median over interleaved (bare, top-k) pairs, which are measured back to back, because the machine
may be shared; the ratio of the median times is printed next to it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import BenchmarkResults, add_results_option  # noqa: E402
from theory.geometry import set_proximity, top_k_neighbours  # noqa: E402

GIB = 2**30


def rss() -> int:
    return psutil.Process().memory_info().rss


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS; False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measured(fn) -> tuple[float, int]:
    """(seconds, peak extra bytes beyond the RSS at the call) of ``fn()``."""
    reset_peak()
    before = rss()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return seconds, max(0, peak_rss() - before)


def bare(decoder: torch.Tensor, queries: torch.Tensor, chunk_size: int) -> None:
    for start in range(0, queries.shape[0], chunk_size):
        product = queries[start:start + chunk_size] @ decoder.T
        del product


def random_decoder(n: int, d: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    decoder = torch.empty(n, d)
    for start in range(0, n, 8192):  # filled in blocks: no second full-size temporary
        decoder[start:start + 8192] = torch.randn(min(8192, n - start), d, generator=gen)
    return decoder


def fmt_bytes(b: int) -> str:
    return f"{b / 2**20:,.0f} MiB"


def subset_case(n: int, d: int, args, bench: BenchmarkResults) -> None:
    print(f"\n[1] all-pairs top-{args.k}, decoder {n:,} x {d:,} float32 ({n * d * 4 / GIB:.2f} GiB), "
          f"chunk {args.chunk_size}: {args.chunks} chunk(s) x {args.repeats} offsets, interleaved")
    decoder = random_decoder(n, d)
    rows = args.chunks * args.chunk_size
    offsets = [int(i * (n - rows) / max(1, args.repeats - 1)) for i in range(args.repeats)]
    warm = decoder[:args.chunk_size]
    bare(decoder, warm, args.chunk_size)
    top_k_neighbours(decoder, args.k, queries=warm, chunk_size=args.chunk_size)
    t_bare, t_topk, m_bare, m_topk = [], [], [], []
    for offset in offsets:
        q = decoder[offset:offset + rows]
        s, m = measured(lambda: bare(decoder, q, args.chunk_size))
        t_bare.append(s), m_bare.append(m)
        s, m = measured(lambda: top_k_neighbours(decoder, args.k, queries=q, chunk_size=args.chunk_size))
        t_topk.append(s), m_topk.append(m)
        print(f"    rows {offset:>7,}..{offset + rows:>7,}: bare {t_bare[-1]:6.2f} s   top-k {t_topk[-1]:6.2f} s"
              f"   ratio {t_topk[-1] / t_bare[-1]:.3f}")
    b, t = statistics.median(t_bare), statistics.median(t_topk)
    flops = 2 * rows * n * d
    print(f"    median over {rows:,} query rows: bare {b:.2f} s ({flops / b / 1e9:.0f} GFLOP/s), "
          f"top-k {t:.2f} s ({flops / t / 1e9:.0f} GFLOP/s)")
    pairs = statistics.median(x / y for x, y in zip(t_topk, t_bare))
    print(f"    TIME RATIO top-k / bare matmul: {pairs:.3f} (median of the interleaved pairs; ratio of medians "
          f"{t / b:.3f})   (target <= 1.3)")
    print(f"    PEAK EXTRA MEMORY beyond the decoder: top-k {fmt_bytes(max(m_topk))}, bare matmul "
          f"{fmt_bytes(max(m_bare))}   (target < 1 GiB = 1,024 MiB)")
    scale = n / rows
    print(f"    extrapolated full all-pairs pass ({n:,} query rows = {scale:.0f} x the timed rows, "
          f"{2 * n * n * d / 1e12:.0f} TFLOP): top-k ~{t * scale / 60:.1f} min, bare ~{b * scale / 60:.1f} min")
    case = f"{n:,} × {d:,} top-{args.k}, {rows:,} query rows × {args.repeats} offsets"
    bench.add(f"{case}: top-k", t, "s", note=f"{flops / t / 1e9:.0f} GFLOP/s")
    bench.add(f"{case}: bare matmul", b, "s", note=f"{flops / b / 1e9:.0f} GFLOP/s")
    bench.add(f"{case}: top-k / bare", pairs, "×", target="<= 1.3",
              note=f"median of the interleaved pairs; ratio of medians {t / b:.3f}")
    bench.add(f"{case}: peak memory beyond the decoder, top-k", max(m_topk) / 2**20, "MiB", target="< 1024",
              note=f"bare matmul: {max(m_bare) / 2**20:,.0f} MiB")
    bench.add(f"{n:,} × {d:,}: full all-pairs pass, extrapolated", t * scale / 60, "min",
              note=f"{2 * n * n * d / 1e12:.0f} TFLOP, linear in the rows from the timed ones; bare ~{b * scale / 60:.1f} min")


def full_case(n: int, d: int, args, bench: BenchmarkResults) -> None:
    print(f"\n[2] full all-pairs top-{args.k}, decoder {n:,} x {d:,} float32, chunk {args.chunk_size}, "
          f"{args.repeats} interleaved repeats")
    decoder = random_decoder(n, d, seed=1)
    bare(decoder, decoder[:args.chunk_size], args.chunk_size)
    t_bare, t_topk, m_topk = [], [], []
    for _ in range(args.repeats):
        t_bare.append(measured(lambda: bare(decoder, decoder, args.chunk_size))[0])
        s, m = measured(lambda: top_k_neighbours(decoder, args.k, chunk_size=args.chunk_size))
        t_topk.append(s), m_topk.append(m)
        print(f"    bare {t_bare[-1]:6.2f} s   top-k {t_topk[-1]:6.2f} s   ratio {t_topk[-1] / t_bare[-1]:.3f}")
    b, t = statistics.median(t_bare), statistics.median(t_topk)
    pairs = statistics.median(x / y for x, y in zip(t_topk, t_bare))
    print(f"    FULL {n:,} x {d:,} ALL-PAIRS TOP-{args.k}: {t:.2f} s (bare chunked matmul {b:.2f} s, "
          f"{2 * n * n * d / b / 1e9:.0f} GFLOP/s); TIME RATIO {pairs:.3f} (median of pairs; ratio of medians "
          f"{t / b:.3f}); peak extra memory {fmt_bytes(max(m_topk))}")
    case = f"{n:,} × {d:,} full all-pairs top-{args.k}"
    bench.add(f"{case}: top-k", t, "s", note=f"median of {args.repeats}")
    bench.add(f"{case}: bare chunked matmul", b, "s", note=f"{2 * n * n * d / b / 1e9:.0f} GFLOP/s")
    bench.add(f"{case}: top-k / bare", pairs, "×", target="<= 1.3",
              note=f"median of the interleaved pairs; ratio of medians {t / b:.3f}")
    bench.add(f"{case}: peak memory beyond the decoder", max(m_topk) / 2**20, "MiB", target="< 1024")


def set_case(n: int, d: int, n_set: int, args, bench: BenchmarkResults) -> None:
    print(f"\n[3] set proximity: all {n:,} features (d={d:,}) to a {n_set}-feature set, max cosine + "
          f"mean top-5")
    decoder = random_decoder(n, d, seed=2)
    reference = decoder[torch.randperm(n, generator=torch.Generator().manual_seed(0))[:n_set]].clone()
    set_proximity(decoder[:args.chunk_size], reference, k=5)
    t_bare, t_set = [], []
    for _ in range(args.repeats):
        t_bare.append(measured(lambda: bare(reference, decoder, args.chunk_size))[0])
        t_set.append(measured(lambda: set_proximity(decoder, reference, k=5, chunk_size=args.chunk_size))[0])
    b, t = statistics.median(t_bare), statistics.median(t_set)
    pairs = statistics.median(x / y for x, y in zip(t_set, t_bare))
    print(f"    set proximity {t:.3f} s vs bare chunked matmul {b:.3f} s: ratio {pairs:.2f} (memory-bound: "
          f"{n * d * 4 / GIB:.2f} GiB read for {2 * n * n_set * d / 1e9:.0f} GFLOP)")
    case = f"set proximity, {n:,} features to a {n_set}-feature set"
    bench.add(f"{case}: set_proximity", t, "s")
    bench.add(f"{case}: bare chunked matmul", b, "s")
    bench.add(f"{case}: set_proximity / bare", pairs, "×",
              note=f"memory-bound: {n * d * 4 / GIB:.2f} GiB read for {2 * n * n_set * d / 1e9:.0f} GFLOP")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--chunks", type=int, default=2, help="consecutive query chunks timed per offset (case 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="123", help="which cases to run, e.g. 1 or 23")
    parser.add_argument("--quick", action="store_true", help="smaller decoders (a smoke run, not the benchmark)")
    add_results_option(parser)
    args = parser.parse_args()
    bench = BenchmarkResults(__file__)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, peak-RSS reset "
          f"{'available' if reset_peak() else 'UNAVAILABLE (peaks are since process start)'}")
    sizes = {"1": (16_384, 512), "2": (4096, 256), "3": (16_384, 512)} if args.quick else \
        {"1": (131_072, 3_584), "2": (16_384, 2_304), "3": (131_072, 3_584)}
    for case in args.cases:
        if case == "1":
            subset_case(*sizes["1"], args, bench)
        elif case == "2":
            full_case(*sizes["2"], args, bench)
        elif case == "3":
            set_case(*sizes["3"], 64, args, bench)
        else:
            parser.error(f"unknown case {case!r} (choose from 1, 2, 3)")
    bench.write(args.results)


if __name__ == "__main__":
    main()
