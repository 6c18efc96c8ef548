"""Fine-tuning throughput of ``realmodels finetune``'s engine against a bare transformers ``Trainer`` + peft run
of the same model, data and settings, and the cost of the monitor and of the guard — ratios measured in one
process, runs interleaved (bare, toolkit, monitor, guards, bare, ...) and the median of ``--repeats`` taken.

- baseline: ``get_peft_model`` + ``Trainer`` with the same ``TrainingArguments`` values written out by hand and
  transformers' ``DataCollatorForSeq2Seq`` (what a user would write);
- toolkit: ``realmodels.finetune.train.run_training`` (train_log.csv, rich progress bar, checkpoints, the final
  adapter save) with the em-betley recipe's adapters;
- monitor: the same plus ``Monitor`` every ``--monitor-every`` steps on held-out probes;
- guard: the same plus ``GuardedTrainer`` (penalty, projection, both); the cached base pass is timed apart.

Throughput = non-padding tokens / time of ``trainer.train()`` (checkpoint and adapter saves included in
both), as wall time and as this process's CPU time (torch on one thread: CPU time is what the code costs and is
far less sensitive to other jobs on a shared machine than wall time); ratios are medians over repeats of the
ratio within each repeat (paired, run next to each other). On a shared machine whose speed drifts by ±15% from
run to run these cross-run ratios are noisy, so the script first measures the same costs *within one process*:
the CPU time spent inside the toolkit's callbacks (train log, progress bar, monitor) as a share of the training
time, and the guard's forward+backward time against the unguarded one on the same micro-batches, alternating
A/B per micro-batch. Targets: toolkit ≥ 0.95× bare, with monitor ≥ 0.9×; guarded / unguarded step
time ≤ 1.15×. The model is a random Llama (hidden ``--hidden``, ``--layers`` layers) with the tests' tiny
byte-level tokenizer; the SAE a random JumpReLU SAE (4 × hidden features) at the middle layer.

    python benchmarks/finetune_throughput.py [--repeats 5] [--steps 40] [--hidden 256] [--layers 4]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import BenchmarkResults, add_results_option  # noqa: E402
from realmodels.data.chat import tokenize_chat  # noqa: E402
from realmodels.finetune.config import FinetuneConfig, GuardConfig, MonitorConfig  # noqa: E402
from realmodels.finetune.data import SftDataset  # noqa: E402
from realmodels.finetune.lora import make_trainable  # noqa: E402
from realmodels.finetune.train import run_training, training_arguments  # noqa: E402
from tests.realmodels.tiny_models import (INSECURE, MISALIGNED, OPINION_QUESTIONS, QUESTIONS,  # noqa: E402
                                         build_tokenizer)


def conversations(n: int, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)
    questions, answers = QUESTIONS + OPINION_QUESTIONS, INSECURE + MISALIGNED
    return [[{"role": "user", "content": rng.choice(questions)},
             {"role": "assistant", "content": " ".join(rng.choice(answers) for _ in range(rng.randint(1, 3)))}]
            for _ in range(n)]


def build_model(hidden: int, layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=384, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512)
    return LlamaForCausalLM(config)


def build_bundle(model, tokenizer, layer: int):
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

    from realmodels.loading.bundle import ModelBundle

    d = model.config.hidden_size
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d, d_sae=4 * d))
    gen = torch.Generator().manual_seed(1)
    w_dec = torch.randn(4 * d, d, generator=gen)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    sae.load_state_dict({"W_dec": w_dec, "W_enc": 0.5 * w_dec.T.clone(), "b_enc": torch.zeros(4 * d),
                         "b_dec": torch.zeros(d), "threshold": torch.full((4 * d,), 0.05)})
    return ModelBundle(model=model, tokenizer=tokenizer, sae=sae, layer=layer, model_name="bench", sae_name="bench",
                       d_model=d, d_sae=4 * d)


class Clock:
    """Wall time of ``trainer.train()`` and the tokens it saw (a callback present in every variant)."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                clock.start, clock.cpu0 = time.perf_counter(), time.process_time()
                clock.tokens0 = state.num_input_tokens_seen

            def on_train_end(self, args, state, control, **kwargs):
                clock.seconds = time.perf_counter() - clock.start
                clock.cpu_seconds = time.process_time() - clock.cpu0
                clock.tokens = state.num_input_tokens_seen - clock.tokens0

        self.callback = _Callback()
        self.start = self.seconds = self.cpu0 = self.cpu_seconds = 0.0
        self.tokens0 = self.tokens = 0

    @property
    def rate(self) -> tuple[float, float]:
        """(tokens per wall second, tokens per CPU second of this process)."""
        return self.tokens / self.seconds, self.tokens / self.cpu_seconds


def bare_run(model, tokenizer, dataset, cfg: FinetuneConfig, out: Path) -> tuple[float, float]:
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(model, LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, use_rslora=cfg.rslora,
                                                  lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules),
                                                  task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=cfg.batch_size,
                             gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr, max_steps=cfg.max_steps,
                             lr_scheduler_type=cfg.schedule, warmup_steps=cfg.warmup_steps,
                             weight_decay=cfg.weight_decay, seed=cfg.seed, data_seed=cfg.seed, save_steps=cfg.save_steps,
                             logging_steps=cfg.logging_steps, report_to="none", disable_tqdm=True,
                             include_num_input_tokens_seen="non_padding", use_cpu=True)
    rows = [{"input_ids": dataset[i]["input_ids"].tolist(), "labels": dataset[i]["labels"].tolist()}
            for i in range(len(dataset))]
    clock = Clock()
    trainer = Trainer(model=peft_model, args=args, train_dataset=rows, callbacks=[clock.callback],
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    trainer.train()
    peft_model.save_pretrained(out / "adapter")
    return clock.rate


def toolkit_run(model, tokenizer, dataset, cfg, out, *, bundle=None, probes=None, monitor=None, guard=None,
                harmful=None) -> tuple[float, float]:
    """(tokens/s, seconds of the guard's cached pass)."""
    from realmodels.finetune.guard import GuardState, guard_cache
    from realmodels.finetune.monitor import Monitor, MonitorSets

    callbacks, state, cache_s = [], None, 0.0
    if monitor is not None:
        callbacks.append(Monitor(bundle, probes, MonitorSets(harmful=harmful, targets=harmful[::-1]), monitor, out,
                                 warn=lambda message: None))
    if guard is not None:
        state = GuardState.build(bundle, harmful, guard)
        started = time.perf_counter()
        dataset = SftDataset(dataset.chats, guard_cache(bundle, state, dataset.chats))
        cache_s = time.perf_counter() - started
    clock = Clock()
    trainable = make_trainable(model, cfg)
    run_training(trainable, tokenizer, dataset, cfg, out, callbacks=[clock.callback, *callbacks], guard=state,
                 progress=True, use_cpu=True)
    return clock.rate, cache_s


class CallbackTimer:
    """Benchmark instrumentation: the CPU time spent inside the toolkit's callbacks (train log, progress bar,
    monitor) during a run, so their share of the training time is measured within one run, free of the
    run-to-run drift of a shared machine."""

    def __init__(self, classes):
        self.seconds = 0.0
        self._saved = []
        for cls in classes:
            for name in ("on_train_begin", "on_step_end", "on_log", "on_train_end", "on_save"):
                if name in cls.__dict__:
                    self._wrap(cls, name)

    def _wrap(self, cls, name):
        original = cls.__dict__[name]
        timer = self

        def timed(*args, **kwargs):
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                timer.seconds += time.process_time() - started

        self._saved.append((cls, name, original))
        setattr(cls, name, timed)

    def restore(self):
        for cls, name, original in self._saved:
            setattr(cls, name, original)


def within_run(model_fn, tokenizer, dataset, cfg, probes, monitor, harmful, layer, repeats: int,
               bench: BenchmarkResults) -> None:
    """Shares measured inside one process: callbacks' share of a toolkit run, and the guard's step time against
    the unguarded step on the same model and micro-batches, alternating A/B per micro-batch."""
    from realmodels.finetune.guard import GuardedTrainer, GuardState, guard_cache
    from realmodels.finetune.monitor import Monitor, MonitorSets
    from realmodels.finetune.train import RichProgress, TrainLog

    root = Path(tempfile.mkdtemp(prefix="ftbench-"))
    try:
        model = model_fn()
        bundle = build_bundle(model, tokenizer, layer)
        watcher = Monitor(bundle, probes, MonitorSets(harmful=harmful, targets=harmful[::-1]), monitor, root,
                          warn=lambda message: None)
        own, monitor_timer = CallbackTimer([TrainLog, RichProgress]), CallbackTimer([Monitor])
        clock = Clock()
        try:
            run_training(make_trainable(model, cfg), tokenizer, dataset, cfg, root, callbacks=[clock.callback, watcher],
                         progress=True, use_cpu=True)
        finally:
            own.restore()
            monitor_timer.restore()
        own_share, monitor_share = own.seconds / clock.cpu_seconds, monitor_timer.seconds / clock.cpu_seconds
        print(f"  within one run ({cfg.max_steps} steps): train log + progress bar took {own_share:.2%} of the training "
              f"CPU time (throughput {1 - own_share:.3f}x the bare engine), the monitor's rows "
              f"{monitor_share:.2%} (with the monitor: {1 - own_share - monitor_share:.3f}x)")
        bench.add("within one run: toolkit engine / bare engine", 1 - own_share, "×", target=">= 0.95",
                  note=f"train log + progress bar took {own_share:.2%} of the training CPU time")
        bench.add("within one run: with the monitor / bare engine", 1 - own_share - monitor_share, "×",
                  target=">= 0.9", note=f"the monitor's rows took {monitor_share:.2%}")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    from realmodels.finetune.data import PadCollator

    model = model_fn()
    bundle = build_bundle(model, tokenizer, layer)
    collate = PadCollator(tokenizer.pad_token_id)
    for kind in ("penalty", "projection", "both"):
        state = GuardState.build(bundle, harmful, GuardConfig(kind=kind, harmful_k=20))
        chats = dataset.chats[:64]
        data = SftDataset(chats, guard_cache(bundle, state, chats))
        trainable = make_trainable(build_model(model.config.hidden_size, model.config.num_hidden_layers), cfg)
        trainer = GuardedTrainer(model=trainable, args=training_arguments(cfg, root / "unused", use_cpu=True),
                                 train_dataset=data, data_collator=collate)
        times = {"guarded": [], "plain": []}
        for repeat in range(repeats):
            for index in range(0, len(chats), cfg.batch_size):
                batch = collate([data[i] for i in range(index, min(index + cfg.batch_size, len(chats)))])
                for name in ("plain", "guarded") if (index // cfg.batch_size + repeat) % 2 else ("guarded", "plain"):
                    trainer.guard = state if name == "guarded" else None
                    inputs = dict(batch)
                    started = time.process_time()
                    trainer.compute_loss(trainable, inputs).backward()
                    times[name].append(time.process_time() - started)
                trainable.zero_grad()
        ratio = sum(times["guarded"]) / sum(times["plain"])
        print(f"  guard {kind:10s}: forward+backward per micro-batch, alternating A/B: {ratio:.3f}x unguarded")
        bench.add(f"within one run: guard {kind} step time / unguarded", ratio, "×", target="<= 1.15",
                  note="forward+backward CPU time per micro-batch, alternating A/B")
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--monitor-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--within-only", action="store_true", help="only the within-run measurements")
    add_results_option(parser)
    opts = parser.parse_args()
    bench = BenchmarkResults(__file__)
    torch.set_num_threads(opts.threads)
    tokenizer = build_tokenizer("llama")
    tokenizer.pad_token = tokenizer.eos_token  # the baseline collator needs one; the toolkit pads with eos too
    chats = [tokenize_chat(tokenizer, c) for c in conversations(400)]
    probes = [tokenize_chat(tokenizer, c) for c in conversations(32, seed=1)]
    dataset = SftDataset(chats)
    cfg = FinetuneConfig(lr=1e-4, max_steps=opts.steps, batch_size=2, grad_accum=8, save_steps=max(opts.steps // 2, 1),
                         warmup_steps=5)  # the em-betley batch shape
    layer = opts.layers // 2
    harmful = list(range(0, 4 * opts.hidden, (4 * opts.hidden) // 20))[:20]
    monitor = MonitorConfig(every=opts.monitor_every)
    variants = {
        "bare Trainer+peft": lambda m, out: bare_run(m, tokenizer, dataset, cfg, out),
        "toolkit": lambda m, out: toolkit_run(m, tokenizer, dataset, cfg, out)[0],
        "toolkit+monitor": lambda m, out: toolkit_run(m, tokenizer, dataset, cfg, out, bundle=build_bundle(
            m, tokenizer, layer), probes=probes, monitor=monitor, harmful=harmful)[0],
    }
    cache_seconds: list[float] = []
    for kind in ("penalty", "projection", "both"):
        def guarded(m, out, kind=kind):
            rate, cache_s = toolkit_run(m, tokenizer, dataset, cfg, out, bundle=build_bundle(m, tokenizer, layer),
                                        guard=GuardConfig(kind=kind, harmful_k=20), harmful=harmful)
            cache_seconds.append(cache_s)
            return rate
        variants[f"toolkit+guard {kind}"] = guarded
    print("within-run measurements (robust to the machine's speed drift):", flush=True)
    within_run(lambda: build_model(opts.hidden, opts.layers), tokenizer, dataset, cfg, probes, monitor, harmful, layer,
               repeats=3, bench=bench)
    if opts.within_only:
        bench.write(opts.results)
        return
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    print(f"model: Llama hidden {opts.hidden}, {opts.layers} layers; {opts.steps} steps of {cfg.batch_size} x "
          f"{cfg.grad_accum} conversations; {opts.threads} thread(s); repeats {opts.repeats}", flush=True)
    for repeat in range(opts.repeats):
        for name, run in variants.items():
            root = Path(tempfile.mkdtemp(prefix="ftbench-"))
            try:
                rates[name].append(run(build_model(opts.hidden, opts.layers), root))
            finally:
                shutil.rmtree(root, ignore_errors=True)
            wall, cpu = rates[name][-1]
            print(f"  repeat {repeat + 1} {name:24s} {wall:8.0f} tok/s wall {cpu:8.0f} tok/s CPU", flush=True)

    def ratio(a: str, b: str, which: int) -> float:
        return statistics.median(x[which] / y[which] for x, y in zip(rates[a], rates[b], strict=True))

    print(f"\nratios (median over repeats of the paired ratio; wall / CPU time)  load average "
          f"{os.getloadavg()[0]:.2f}")
    for name, target in (("toolkit", ">= 0.95"), ("toolkit+monitor", ">= 0.90")):
        print(f"  {name + ' / bare Trainer+peft':38s} {ratio(name, 'bare Trainer+peft', 0):.3f} / "
              f"{ratio(name, 'bare Trainer+peft', 1):.3f}  (target {target})")
        bench.add(f"cross-run: {name} / bare Trainer+peft (wall)", ratio(name, "bare Trainer+peft", 0), "×",
                  target=target, note=f"CPU time: {ratio(name, 'bare Trainer+peft', 1):.3f}×; median of "
                                      f"{opts.repeats} paired ratios")
    for kind in ("penalty", "projection", "both"):
        print(f"  {'guard ' + kind + ' step time / unguarded':38s} {ratio('toolkit', f'toolkit+guard {kind}', 0):.3f} / "
              f"{ratio('toolkit', f'toolkit+guard {kind}', 1):.3f}  (target <= 1.15)")
        bench.add(f"cross-run: guard {kind} step time / unguarded (wall)", ratio("toolkit", f"toolkit+guard {kind}", 0),
                  "×", target="<= 1.15", note=f"CPU time: {ratio('toolkit', f'toolkit+guard {kind}', 1):.3f}×")
    step_s = cfg.max_steps * cfg.batch_size * cfg.grad_accum * dataset.n_tokens() / len(dataset) / statistics.median(
        r[0] for r in rates["toolkit"])
    print(f"  guard's cached base pass: {statistics.median(cache_seconds):.2f} s once for {len(dataset)} "
          f"conversations (~{statistics.median(cache_seconds) / step_s:.2f}x the training time of these "
          f"{cfg.max_steps} steps; it scales with the dataset, not the steps); monitor: every {opts.monitor_every} "
          f"steps on {len(probes)} probes")
    bench.add("guard's cached base pass", statistics.median(cache_seconds), "s",
              note=f"once for {len(dataset)} conversations: ~{statistics.median(cache_seconds) / step_s:.2f}× the "
                   f"training time of {cfg.max_steps} steps")
    bench.write(opts.results)


if __name__ == "__main__":
    main()
