"""The toolkit's activation pass against a bare forward pass of the same model over the same padded batches,
in one process.

Ours: ``realmodels.data.activations.dataset_activations`` exactly as ``Session.activations`` calls it without a
cache directory (so it computes): the model run to ``--layer`` on length-sorted, right-padded batches, each
assistant token's residual encoded by the SAE, residuals and codes averaged per conversation. Baseline: the
bare ``model(input_ids=..., attention_mask=..., use_cache=False)`` under ``torch.inference_mode`` (all layers and
the LM head) on the same batches (same order, batch size and padding; built before timing). Also printed, for
information: the forward pass stopped at the layer (``realmodels.data.residual.residual_stream``) with no SAE,
the floor of what the activation pass can cost.

Data: the first ``--n-conversations`` conversations of the project's English ``harmful`` set
(``realmodels.data.english``, generated in a temporary directory), tokenised once before timing (a session
tokenises each dataset once). SAE: ``--sae DIR`` (the organism's own at its layer), else a TopK SAE (sae-lens
``TopKSAE``, ``--d-sae`` latents, ``--k`` active, random weights: encoding costs the same for any weights) saved to
a temporary directory.

    python benchmarks/activation_pass.py --model SmolLM2-135M-Instruct.Q4_1.gguf [--layer 15]
        [--n-conversations 24] [--batch-size 8] [--repeats 3] [--threads 1]

Without ``--model`` it runs on the embedded organism (a note says so): a 3-layer toy whose numbers say little.
Throughput is real (non-padding) tokens per second; runs are interleaved (ours, bare, floor, ours, ...) after a
warm-up of each, and the medians are compared (also by CPU time, which contention inflates less). Target (issue
21): activation pass >= 0.9x the bare forward."""

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


def random_topk_sae(out: Path, d_in: int, d_sae: int, k: int, layer: int) -> Path:
    """Save a TopK SAE reading ``blocks.{layer}.hook_resid_post`` with seeded random weights to ``out``."""
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k,
                                metadata=SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_post")))
    with torch.no_grad():
        for param in sae.parameters():
            param.normal_(0, d_in ** -0.5)
    sae.save_model(out)
    return out


def conversations(out: Path, n: int) -> Path:
    """A chat JSONL file of the first ``n`` conversations of the English ``harmful`` set."""
    from realmodels.data.english.generate import write_english_datasets

    lines = write_english_datasets(out / "english", n_per_set=n)["harmful"].read_text(encoding="utf-8").splitlines()
    path = out / "conversations.jsonl"
    path.write_text("".join(line + "\n" for line in lines[:n]), encoding="utf-8")
    return path


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``: on one thread the process's CPU time is what contention from other
    processes inflates least."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory or .gguf file (default: the embedded organism)")
    parser.add_argument("--sae", help="saved SAE directory at --layer (default: a random TopK SAE)")
    parser.add_argument("--layer", type=int, help="decoder layer (default: the middle one; the organism's SAE layer)")
    parser.add_argument("--d-sae", type=int, default=2048)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--n-conversations", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    add_results_option(parser)
    args = parser.parse_args()
    bench = BenchmarkResults(__file__)
    torch.set_num_threads(args.threads)
    from transformers.utils import logging

    from realmodels.data.activations import dataset_activations, length_order, pad_right
    from realmodels.data.residual import residual_stream
    from realmodels.loading.bundle import resolve_model_source
    from realmodels.loading.checks import model_shape
    from realmodels.loading.embedded import embedded_default
    from realmodels.loading.session import ModelChoice, Session

    logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        model, layer, sae = args.model, args.layer, args.sae
        if model is None:
            embedded = embedded_default()
            print(f"note: no --model given: the embedded organism ({embedded.model}), a toy; pass --model for a "
                  "real LM")
            model, layer = str(embedded.model), embedded.layer if layer is None else layer
            sae = sae or (str(embedded.sae) if layer == embedded.layer else None)
        source = resolve_model_source(None, model)
        shape = model_shape(source.path, source.repo_id, None)
        layer = shape.n_layers // 2 if layer is None else layer
        sae = sae or str(random_topk_sae(root / "sae", shape.hidden_size, args.d_sae, args.k, layer))
        session = Session(ModelChoice(model=model, sae=sae, layer=layer), batch_size=args.batch_size, progress=False)
        dataset = session.dataset(conversations(root, args.n_conversations))
        bundle = session.bundle
        chats = dataset.tokenized(bundle.tokenizer, session.max_length)
        order = length_order(chats)
        pad_id = bundle.tokenizer.pad_token_id if bundle.tokenizer.pad_token_id is not None else 0
        batches = [pad_right([chats[i] for i in order[lo:lo + args.batch_size]], pad_id)[:2]
                   for lo in range(0, len(chats), args.batch_size)]
        n_tokens = sum(int(mask.sum()) for _, mask in batches)

        def ours():
            dataset_activations(bundle, dataset, batch_size=args.batch_size, cache_dir=None, progress=False,
                                max_length=session.max_length)

        @torch.inference_mode()
        def bare():
            for input_ids, attention_mask in batches:
                bundle.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)

        def floor():
            for input_ids, attention_mask in batches:
                residual_stream(bundle.model, input_ids, attention_mask, layer)

        runs = {"ours": ours, "bare": bare, "floor": floor}
        for fn in runs.values():
            fn()  # warm-up
        times, cpu = {name: [] for name in runs}, {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                wall, used = timed(fn)
                times[name].append(wall)
                cpu[name].append(used)
    rate = {name: n_tokens / statistics.median(t) for name, t in times.items()}
    cpu_rate = {name: n_tokens / statistics.median(t) for name, t in cpu.items()}
    n_layers = bundle.model.config.get_text_config().num_hidden_layers
    print(f"{Path(model).name}: layer {layer} of {n_layers}, SAE d_sae {bundle.d_sae}; {len(chats)} conversations, "
          f"{n_tokens} tokens, batch {args.batch_size}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for name, label in (("ours", "activation pass"), ("bare", "bare forward"), ("floor", f"forward to layer {layer}")):
        print(f"  {label:<22} {rate[name]:9.1f} tok/s ({cpu_rate[name]:.1f} per CPU second)   "
              f"runs (s): {' '.join(f'{t:.2f}' for t in times[name])}")
    ratio = rate["ours"] / rate["bare"]
    print(f"activation pass / bare forward {ratio:.2f}x (CPU time: {cpu_rate['ours'] / cpu_rate['bare']:.2f}x; "
          f"medians of {args.repeats}; target >= 0.9): {'PASS' if ratio >= 0.9 else 'FAIL'}")
    print(f"activation pass / forward to layer {layer} {rate['ours'] / rate['floor']:.2f}x "
          f"(CPU time: {cpu_rate['ours'] / cpu_rate['floor']:.2f}x); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    setting = (f"{Path(model).name}, layer {layer} of {n_layers}, SAE d_sae {bundle.d_sae}, {len(chats)} conversations "
               f"= {n_tokens} tokens, batch {args.batch_size}, median of {args.repeats}")
    for name, label in (("ours", "activation pass"), ("bare", "bare forward"), ("floor", f"forward to layer {layer}")):
        bench.add(label, rate[name], "tokens/s", note=setting if name == "ours" else "")
    bench.add("activation pass / bare forward (wall)", ratio, "×", target=">= 0.9",
              note=f"CPU time: {cpu_rate['ours'] / cpu_rate['bare']:.2f}×")
    bench.add(f"activation pass / forward to layer {layer} (wall)", rate["ours"] / rate["floor"], "×",
              note=f"CPU time: {cpu_rate['ours'] / cpu_rate['floor']:.2f}×; the SAE encoding and averaging")
    bench.write(args.results)


if __name__ == "__main__":
    main()
