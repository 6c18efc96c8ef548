"""SAE training throughput: the toolkit's ``realmodels.sae.train.train_sae`` against sae-lens's ``SAETrainer``
used directly, on the same activations, in one process.

Activations: the residual stream after decoder layer ``--layer`` (``blocks.L.hook_resid_post``) at every assistant
token of the first ``--n-conversations`` conversations of the project's English ``harmful`` set
(``realmodels.sae.train.chat_residuals``, as ``realmodels sae train`` collects them), computed once.

Both train the same TopK SAE (sae-lens ``TopKTrainingSAE``: ``--d-sae`` latents, ``--k`` active, seeded
initialisation) for ``--steps`` steps of ``--batch-size`` activations at a constant ``--lr`` on CPU. Ours:
``train_sae`` as the command calls it (b_dec set to the mean activation, batches drawn with replacement by a
seeded generator, progress bar off, the SAE saved with ``SAE.save_model`` into a temporary directory).
Theirs: ``SAETrainer(SAETrainerConfig(...), sae, iterator).fit()`` with the same config fields and a plain
iterator over a fixed shuffle of the activations cut into batches (cycled), the same initial SAE (seeded, b_dec at
the mean: a different start changes how many latents die and with them the cost of sae-lens's auxiliary loss) and
its tqdm bar disabled the same way.

    python benchmarks/sae_training.py --model SmolLM2-135M-Instruct.Q4_1.gguf [--layer 15] [--steps 150]
        [--repeats 3] [--threads 1]

Without ``--model`` it runs on the embedded organism (a note says so). One warm-up run of each, then ``--repeats``
interleaved runs (theirs, ours, ...); the ratio of median throughputs (steps/s; also by CPU time, which contention
from other processes inflates less) is printed with each trained SAE's fraction of variance unexplained on the
activations (a sanity check). Target (issue 21): ours >= 0.95x sae-lens's trainer."""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import BenchmarkResults, add_results_option  # noqa: E402


def residuals(model_path: str, layer: int | None, n_conversations: int, root: Path) -> tuple[Tensor, int, str]:
    """Assistant-token residuals (n_tokens, d_model) of the model at ``layer`` (default: the middle layer), the
    layer and the model's name."""
    from transformers import AutoModelForCausalLM

    from benchmarks.activation_pass import conversations
    from realmodels.data.dataset import as_dataset
    from realmodels.loading.bundle import load_model_tokenizer, load_pretrained, resolve_model_source
    from realmodels.sae.train import chat_residuals

    source = resolve_model_source(None, model_path)
    tokenizer = load_model_tokenizer(source)
    model = load_pretrained(AutoModelForCausalLM, source, "model").eval()
    layer = model.config.num_hidden_layers // 2 if layer is None else layer
    chats = as_dataset(conversations(root, n_conversations)).tokenized(tokenizer, None)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return chat_residuals(model, chats, layer, pad_id), layer, Path(model_path).name


def sae_lens_direct(acts: Tensor, layer: int, args):
    """sae-lens's ``SAETrainer`` on a plain cycled iterator of batches, from ``train_sae``'s initial SAE; returns the
    trained SAE."""
    import sae_lens.training.sae_trainer as trainer_module
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(args.seed)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=acts.shape[1], d_sae=args.d_sae, k=args.k,
                                                metadata=SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_post")))
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0))  # the initial SAE of train_sae: the same weights to start from
    shuffled = acts[torch.randperm(len(acts), generator=torch.Generator().manual_seed(args.seed))]
    n_full = len(shuffled) // args.batch_size
    data = itertools.cycle(shuffled[:n_full * args.batch_size].split(args.batch_size))
    cfg = SAETrainerConfig(total_training_samples=args.steps * args.batch_size,
                           train_batch_size_samples=args.batch_size, lr=args.lr, lr_end=args.lr,
                           lr_scheduler_name="constant", device="cpu")
    quiet = mock.patch.object(trainer_module, "tqdm", functools.partial(trainer_module.tqdm, disable=True))
    with warnings.catch_warnings(), quiet:
        warnings.simplefilter("ignore")
        return SAETrainer(cfg, sae, data).fit()


def ours(acts: Tensor, layer: int, args, out: Path):
    """``realmodels.sae.train.train_sae`` as ``realmodels sae train`` calls it (saving into ``out``)."""
    from realmodels.sae.config import SaeConfig
    from realmodels.sae.train import train_sae

    config = SaeConfig(d_sae=args.d_sae, k=args.k, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed)
    return train_sae(acts, layer, config, out, progress=False)


def fvu(sae, acts: Tensor) -> float:
    """Fraction of variance unexplained of ``sae`` on ``acts`` (``realmodels.sae.train.sae_quality_on``)."""
    from realmodels.sae.train import sae_quality_on

    return float(sae_quality_on(sae, acts)["fvu"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory or .gguf file (default: the embedded organism)")
    parser.add_argument("--layer", type=int, help="decoder layer (default: the middle one)")
    parser.add_argument("--n-conversations", type=int, default=40)
    parser.add_argument("--d-sae", type=int, default=2048)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    add_results_option(parser)
    args = parser.parse_args()
    bench = BenchmarkResults(__file__)
    torch.set_num_threads(args.threads)
    from transformers.utils import logging

    from realmodels.loading.embedded import embedded_default

    logging.disable_progress_bar()
    model = args.model
    if model is None:
        model = str(embedded_default().model)
        print(f"note: no --model given: the embedded organism ({model}), a toy; pass --model for a real LM")
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        acts, layer, name = residuals(model, args.layer, args.n_conversations, root)
        runs = {"sae-lens": lambda: sae_lens_direct(acts, layer, args),
                "ours": lambda: ours(acts, layer, args, root / "sae")}
        for fn in runs.values():
            fn()  # warm-up
        times, cpu, quality = {name: [] for name in runs}, {name: [] for name in runs}, {}
        for _ in range(args.repeats):
            for run, fn in runs.items():
                wall, used = time.perf_counter(), time.process_time()
                sae = fn()
                times[run].append(time.perf_counter() - wall)
                cpu[run].append(time.process_time() - used)
                quality[run] = fvu(sae, acts)
    rate = {run: args.steps / statistics.median(t) for run, t in times.items()}
    cpu_rate = {run: args.steps / statistics.median(t) for run, t in cpu.items()}
    print(f"{name}: layer {layer}, {acts.shape[0]} activations x {acts.shape[1]}; TopK d_sae {args.d_sae} k {args.k}, "
          f"{args.steps} steps of {args.batch_size}, lr {args.lr}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)")
    for run in runs:
        print(f"  {run:<9} {rate[run]:7.2f} steps/s ({cpu_rate[run]:.2f} per CPU second)   FVU {quality[run]:.4f}   "
              f"runs (s): {' '.join(f'{t:.2f}' for t in times[run])}")
    ratio = rate["ours"] / rate["sae-lens"]
    print(f"train_sae / SAETrainer {ratio:.3f}x (CPU time: {cpu_rate['ours'] / cpu_rate['sae-lens']:.3f}x; medians of "
          f"{args.repeats}; target >= 0.95): "
          f"{'PASS' if ratio >= 0.95 else 'FAIL'}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    setting = (f"{name}, layer {layer}, {acts.shape[0]} activations × {acts.shape[1]}, TopK {args.d_sae} k {args.k}, "
               f"{args.steps} steps of {args.batch_size}, median of {args.repeats}")
    for run, label in (("sae-lens", "sae-lens SAETrainer used directly"), ("ours", "train_sae")):
        bench.add(label, rate[run], "steps/s", note=f"FVU {quality[run]:.4f}" + ("; " + setting if run == "ours" else ""))
    bench.add("train_sae / SAETrainer (wall)", ratio, "×", target=">= 0.95",
              note=f"CPU time: {cpu_rate['ours'] / cpu_rate['sae-lens']:.3f}×")
    bench.write(args.results)


if __name__ == "__main__":
    main()
