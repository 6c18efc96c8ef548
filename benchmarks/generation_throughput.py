"""Answer-generation throughput of ``realmodels.evaluate.generate.generate_answers`` against a bare
``model.generate`` loop on the same prompts and settings — a ratio measured in one process, runs interleaved
(bare, toolkit, bare, ...) and the median of ``--repeats`` paired ratios taken.

- bare: the plan's chats through ``apply_chat_template`` in batches of ``--batch-size``, tokenised left-padded
  by the tokenizer, ``model.generate(do_sample, temperature, top_p, top_k=0, max_new_tokens, pad_token_id)``
  under one seed, ``batch_decode`` of the new tokens (what a user would write);
- toolkit: ``generate_answers`` (prompt rendering, per-batch seeds in a fork of the RNG, eos handling, the
  answers.jsonl append + fsync per batch, the rich progress bar) into a fresh log each run.

Throughput = answers / wall time. Target: toolkit ≥ 0.9× bare. The model is a random Llama (hidden
``--hidden``, ``--layers`` layers) with the tests' tiny byte-level tokenizer; the questions the shipped default
set with ``--samples`` samples per paraphrase. Greedy by default (equal work in both); ``--temperature 1`` samples.

    python benchmarks/generation_throughput.py [--repeats 5] [--hidden 256] [--layers 4] [--max-new-tokens 32]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import BenchmarkResults, add_results_option  # noqa: E402
from realmodels.evaluate.generate import GenerationConfig, generate_answers, generation_plan  # noqa: E402
from realmodels.evaluate.questions import load_questions  # noqa: E402
from tests.realmodels.tiny_models import build_tokenizer  # noqa: E402


def build_model(hidden: int, layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=384, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048)
    return LlamaForCausalLM(config).eval()


def bare_loop(model, tokenizer, chats: list[list[dict]], config: GenerationConfig) -> list[str]:
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling = {"temperature": config.temperature, "top_p": config.top_p, "top_k": 0} if config.sampling else {}
    torch.manual_seed(config.seed)
    answers = []
    for lo in range(0, len(chats), config.batch_size):
        texts = [tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
                 for chat in chats[lo:lo + config.batch_size]]
        tokenizer.pad_token_id = pad_id
        inputs = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(**inputs, do_sample=config.sampling, max_new_tokens=config.max_new_tokens,
                                    pad_token_id=pad_id, **sampling)
        answers += tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--samples", type=int, default=4, help="samples per paraphrase")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    add_results_option(parser)
    opts = parser.parse_args()
    bench = BenchmarkResults(__file__)
    torch.set_num_threads(opts.threads)

    model, tokenizer = build_model(opts.hidden, opts.layers), build_tokenizer("llama")
    questions = load_questions(samples_per_paraphrase=opts.samples)
    plan = generation_plan(questions)
    chats = [item.messages() for item in plan]
    config = GenerationConfig(temperature=opts.temperature, max_new_tokens=opts.max_new_tokens,
                              batch_size=opts.batch_size, seed=0)
    print(f"model: Llama hidden {opts.hidden}, {opts.layers} layers; {len(plan)} answers in batches of "
          f"{opts.batch_size}, {opts.max_new_tokens} new tokens, temperature {opts.temperature}; "
          f"{opts.threads} thread(s); repeats {opts.repeats}", flush=True)
    bare_loop(model, tokenizer, chats[:opts.batch_size], config)  # warm-up
    rates: dict[str, list[float]] = {"bare": [], "toolkit": []}
    cpu_rates: dict[str, list[float]] = {"bare": [], "toolkit": []}
    answers: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(opts.repeats):
            for name in rates:
                started, cpu_started = time.perf_counter(), time.process_time()
                if name == "bare":
                    texts = bare_loop(model, build_tokenizer("llama"), chats, config)
                else:
                    texts = [a.answer for a in generate_answers(model, build_tokenizer("llama"), questions, config,
                                                                Path(tmp) / f"answers{repeat}.jsonl", progress=True)]
                rates[name].append(len(texts) / (time.perf_counter() - started))
                cpu_rates[name].append(len(texts) / (time.process_time() - cpu_started))
                answers[name] = texts
                print(f"  repeat {repeat + 1} {name:8s} {rates[name][-1]:8.2f} answers/s wall "
                      f"{cpu_rates[name][-1]:8.2f} answers/s CPU", flush=True)

    def ratio(table: dict[str, list[float]]) -> float:
        return statistics.median(t / b for t, b in zip(table["toolkit"], table["bare"], strict=True))

    print(f"\nmedian answers/s (wall): bare {statistics.median(rates['bare']):.2f}, toolkit "
          f"{statistics.median(rates['toolkit']):.2f}; toolkit / bare, median paired ratio: wall {ratio(rates):.3f}, "
          f"CPU {ratio(cpu_rates):.3f} (target >= 0.9)  load average {os.getloadavg()[0]:.2f}")
    if not config.sampling:
        print(f"greedy answers identical in both: {answers['bare'] == answers['toolkit']}")
    mode = "greedy" if not config.sampling else f"sampled, temperature {opts.temperature:g}"
    setting = f"{len(plan)} answers, batch {opts.batch_size}, {opts.max_new_tokens} new tokens, {mode}"
    bench.add("bare model.generate loop", statistics.median(rates["bare"]), "answers/s", note=setting)
    bench.add("evaluate's generator", statistics.median(rates["toolkit"]), "answers/s", note=setting)
    same = "; the same answers in both" if answers["bare"] == answers["toolkit"] else "; the answers DIFFER"
    bench.add(f"generator / bare loop (wall), {mode}", ratio(rates), "×", target=">= 0.9",
              note=f"CPU time: {ratio(cpu_rates):.3f}×; median of {opts.repeats} paired ratios"
                   + (same if not config.sampling else ""))
    bench.write(opts.results)


if __name__ == "__main__":
    main()
