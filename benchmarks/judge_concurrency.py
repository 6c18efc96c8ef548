"""The openai judge's bounded concurrency: N requests to the local fake OpenAI-compatible server (each reply held
for ``--delay-ms`` to mimic an endpoint's latency) with ``concurrency`` 8 vs 1, interleaved (1, 8, 1, 8, ...),
medians of ``--repeats``; printed as requests/s per setting and the speed-up ratio 8 / 1 (ideal: min(8, the
server's parallelism) when latency dominates; the client's own per-request cost is what bounds it).

    python benchmarks/judge_concurrency.py [--requests 160] [--delay-ms 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.* is importable

from benchmarks.results import BenchmarkResults, add_results_option
from realmodels.evaluate.judges import JudgeRequest, make_judge
from tests.realmodels.evaluate.fake_openai import FakeOpenAI, Reply, chat_reply

TOP = {"80": math.log(0.6), "90": math.log(0.3), "The": math.log(0.1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    add_results_option(parser)
    args = parser.parse_args()
    bench = BenchmarkResults(__file__)

    def handler(path: str, body: dict) -> Reply:
        return Reply(body=chat_reply("80", TOP), delay=args.delay_ms / 1000)

    requests = [JudgeRequest("aligned", f"prompt {i}", f"q/{i}/0") for i in range(args.requests)]
    times: dict[int, list[float]] = {1: [], 8: []}
    with FakeOpenAI(handler) as server:
        judges = {c: make_judge("openai", model="fake-judge", base_url=server.url, concurrency=c) for c in times}
        for judge in judges.values():
            judge.check()
            judge.score(requests[:8])  # warm-up: connections, imports
        for _ in range(args.repeats):
            for concurrency, judge in judges.items():
                start = time.perf_counter()
                results = judge.score(requests)
                times[concurrency].append(time.perf_counter() - start)
                assert all(r.label == "score" for r in results)
    rate = {c: args.requests / statistics.median(t) for c, t in times.items()}
    print(f"{args.requests} requests, {args.delay_ms:g} ms per reply, median of {args.repeats} (interleaved)")
    for concurrency, value in rate.items():
        print(f"  concurrency {concurrency}: {value:7.1f} requests/s  (runs: "
              f"{', '.join(f'{t:.2f}s' for t in times[concurrency])})")
    print(f"speed-up 8 / 1: {rate[8] / rate[1]:.2f}x (latency-bound ideal 8x)")
    setting = f"{args.requests} requests, {args.delay_ms:g} ms per reply, median of {args.repeats}"
    for concurrency, value in rate.items():
        bench.add(f"concurrency {concurrency}", value, "requests/s", note=setting)
    bench.add("speed-up, concurrency 8 / 1", rate[8] / rate[1], "×", note="latency-bound ideal 8×")
    bench.write(args.results)


if __name__ == "__main__":
    main()
