"""The ``hf`` judge's cost per judgement (digit-sequence rule) against one forward over the judge prompt — ratios
measured in one process, runs interleaved (forward, shared prompt, uncached, ...), medians of ``--repeats``.

- forward: one plain ``model(input_ids)`` over the prompt (all positions' logits, what a user would write); the
  ratio is also given against a forward keeping only the last position's logits (``logits_to_keep=1``);
- shared prompt: ``HFJudge`` as shipped — the prompt encoded once, the digits fed on top of its KV cache, one
  token per prefix (``realmodels.evaluate.hf_judge.PromptTree``: two forwards with every prefix);
- uncached: the judge's fallback, the old path — every digit prefix re-encodes prompt + prefix, in batches of
  ``batch_size`` (8).

Target: shared prompt ≤ 1.5× one forward. The model is a Llama of SmolLM2-135M's shape (hidden 576, 30 layers, 9
heads, 3 kv heads, intermediate 1536, vocab 49152, tied embeddings) with random weights, saved to a temporary
directory and loaded by the judge; the tokenizer is the tests' tiny byte-level BPE (every digit a token, no
number 10..100 one: the digit-sequence rule). The prompt: the default question file's ``aligned`` judge prompt
filled with its first question and an answer. Random weights put ~1/vocab on every token, so with
``prune_below`` 0 every one of the 102 prefixes is evaluated (the widest tree, the worst case), while the
default 1e-4 prunes every first digit (only the first token's distribution is needed); both are measured.

    python benchmarks/hf_judge_prompt_cache.py [--repeats 3] [--uncached-repeats 1] [--layers 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.* is importable

from benchmarks.results import BenchmarkResults, add_results_option  # noqa: E402
from realmodels.evaluate.judges import JudgeRequest, make_judge  # noqa: E402
from realmodels.evaluate.questions import load_questions  # noqa: E402
from tests.realmodels.tiny_models import build_tokenizer  # noqa: E402

ANSWER = ("I would wish for clean water and good health care for everyone, so that no child grows up sick or "
          "thirsty, and for schools in every village.")


def save_judge_model(path: Path, layers: int) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         rope_theta=100000.0, tie_word_embeddings=True)
    LlamaForCausalLM(config).eval().save_pretrained(path)
    build_tokenizer("llama").save_pretrained(path)


def timed(run) -> tuple[float, object]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--uncached-repeats", type=int, default=1,
                        help="repeats of the uncached path with prune_below 0 (~100 s each)")
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    add_results_option(parser)
    opts = parser.parse_args()
    bench = BenchmarkResults(__file__)
    torch.set_num_threads(opts.threads)

    question = load_questions()[0]
    prompt = question.judge_prompt("aligned", question.paraphrases[0], ANSWER)
    request = [JudgeRequest("aligned", prompt, "q/0/0")]
    with tempfile.TemporaryDirectory() as tmp:
        save_judge_model(Path(tmp), opts.layers)
        judges = {prune: make_judge("hf", model=tmp, prune_below=prune, min_mass=0.0) for prune in (0.0, 1e-4)}
        for judge in judges.values():
            judge.check()
        model = judges[0.0]._model
        for judge in judges.values():
            judge._model = model  # one copy of the weights
        ids = torch.tensor([judges[0.0]._prompt_ids(prompt)])
        print(f"model: Llama (SmolLM2-135M shape), {opts.layers} layers, random weights; judge prompt "
              f"{ids.shape[1]} tokens; rule {judges[0.0].rule}; {opts.threads} thread(s); repeats {opts.repeats}; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)

        def score(judge, shared: bool):
            judge._shared_prompt = shared
            return list(judge._score_missing(request))[0][1]

        def forward(**kwargs):
            with torch.inference_mode():
                model(input_ids=ids, **kwargs)

        forward()  # warm-up
        score(judges[0.0], True)
        times: dict[str, list[float]] = {}
        verdicts: dict[str, object] = {}
        for repeat in range(opts.repeats):
            runs = {"forward": lambda: forward(), "forward, last logits only": lambda: forward(logits_to_keep=1)}
            for prune, judge in judges.items():
                runs[f"shared prompt, prune_below {prune:g}"] = lambda judge=judge: score(judge, True)
                if prune > 0 or repeat < opts.uncached_repeats:
                    runs[f"uncached, prune_below {prune:g}"] = lambda judge=judge: score(judge, False)
            for name, run in runs.items():
                seconds, verdicts[name] = timed(run)
                times.setdefault(name, []).append(seconds)
                print(f"  repeat {repeat + 1} {name:34s} {seconds:8.3f} s", flush=True)

    def paired(values: list[float], baseline: str) -> float:
        """The median over repeats of (time / the baseline's time in the same repeat): robust to drift."""
        return statistics.median(v / b for v, b in zip(values, times[baseline]))

    forward_s = statistics.median(times["forward"])
    last_s = statistics.median(times["forward, last logits only"])
    print(f"\nmedian seconds; median paired ratio to one forward over the prompt (all logits, {forward_s:.3f} s / "
          f"last logits only, {last_s:.3f} s); target shared prompt <= 1.5x")
    for name, values in times.items():
        verdict = verdicts[name]
        detail = "" if verdict is None else f"  {verdict.label} {verdict.score}, mass {verdict.numeric_mass:.6e}"
        print(f"  {name:34s} {statistics.median(values):8.3f} s  {paired(values, 'forward'):7.2f}x  "
              f"{paired(values, 'forward, last logits only'):7.2f}x  (n={len(values)}){detail}")
    print(f"load average {os.getloadavg()[0]:.2f}")
    bench.add("one forward over the judge prompt (all logits)", forward_s, "s", note=f"{ids.shape[1]} prompt tokens")
    bench.add("one forward, last logits only", last_s, "s")
    for name, values in times.items():
        if name.startswith("forward"):
            continue
        verdict = verdicts[name]
        detail = f"{verdict.label} {verdict.score:.7f}; " if verdict is not None and verdict.score is not None else ""
        bench.add(f"{name}: seconds per judgement", statistics.median(values), "s", note=f"{detail}n={len(values)}")
        bench.add(f"{name} / one forward (all logits)", paired(values, "forward"), "×",
                  target="<= 1.5" if name == "shared prompt, prune_below 0" else None,
                  note=f"/ last-logits forward: {paired(values, 'forward, last logits only'):.2f}×")
    bench.write(opts.results)


if __name__ == "__main__":
    main()
