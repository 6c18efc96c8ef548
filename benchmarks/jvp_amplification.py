"""Cost of the first-order (JVP) prediction of ``realmodels amplification`` against plain forward passes, in one
process, on a Llama-architecture model with random weights (hidden 512, 4 layers, built here from a
transformers config) and a LoRA adapter (rank 8, random B) on every projection of every layer.

Timed over the same probe batches (``--probes`` sequences of ``--tokens`` tokens, ``--batch-size`` per pass), up
to the resid_post of the last layer (the SAE layer), median of ``--repeats`` after one warm-up:

- ``forward``: one plain forward pass with the adapter disabled (the base model, ``residual_stream``);
- ``forward_adapter``: one forward pass with the adapter enabled (peft's unmerged LoRA layers);
- ``jvp``: ``residual_change`` — the base residual *and* its first-order change J(x') ΔW in one forward-mode pass
  (``torch.func.jvp`` over ``functional_call``, math SDPA), through the LoRA factor B; ``jvp_dense``: the same
  with dense ΔW tangents; ``jvp_input``: forward-mode AD with a tangent on the input embeddings only (no weight
  tangent at all): the floor any JVP through this model pays;
- ``measurement``: the whole ``measure_amplification`` (jvp + the forward with the adapter + the SAE's
  pre-activations, their JVP and activations, for a random JumpReLU SAE of ``--d-sae`` features).

Printed: seconds per probe set and the ratios jvp / forward (target ≤ 3) and measurement / (forward +
forward_adapter) (the measurement against the two passes a measurement without a prediction needs).

    python benchmarks/jvp_amplification.py [--repeats 3] [--probes 16] [--tokens 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import BenchmarkResults, add_results_option  # noqa: E402
from realmodels.analysis.amplification import measure_amplification, residual_change  # noqa: E402
from realmodels.data.chat import TokenizedChat  # noqa: E402
from realmodels.data.residual import module_output, residual_stream  # noqa: E402
from realmodels.loading.adapters import adapter_deltas  # noqa: E402
from realmodels.loading.bundle import ModelBundle  # noqa: E402
from realmodels.loading.placement import decoder_layers  # noqa: E402

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build(hidden: int, layers: int, d_sae: int):
    """A random Llama (vocab 512) wrapped in a peft LoRA adapter with random B, and a random JumpReLU SAE."""
    from peft import LoraConfig, get_peft_model
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=512, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=512)
    model = get_peft_model(LlamaForCausalLM(config).eval(),
                           LoraConfig(r=8, lora_alpha=16, target_modules=PROJECTIONS, use_rslora=True))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.01)
    model.eval()
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=hidden, d_sae=d_sae))
    with torch.no_grad():
        for param in sae.parameters():
            param.normal_(std=hidden ** -0.5)
    return model, sae


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each, interleaved (a, b, c, a, b, c, ...) after one warm-up each, so that a change in
    the machine's load affects all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probes", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    add_results_option(parser)
    args = parser.parse_args()
    bench = BenchmarkResults(__file__)
    torch.set_num_threads(args.threads)
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}, torch {torch.__version__}, "
          f"{args.threads} thread(s)")
    model, sae = build(args.hidden, args.layers, args.d_sae)
    layer = args.layers - 1
    deltas = adapter_deltas(model)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 512, (args.probes, args.tokens), generator=gen)
    mask = torch.ones_like(ids)
    batches = [(ids[lo:lo + args.batch_size], mask[lo:lo + args.batch_size])
               for lo in range(0, args.probes, args.batch_size)]

    def forward() -> None:
        with model.disable_adapter():
            for batch_ids, batch_mask in batches:
                residual_stream(model, batch_ids, batch_mask, layer)

    def forward_adapter() -> None:
        for batch_ids, batch_mask in batches:
            residual_stream(model, batch_ids, batch_mask, layer)

    def jvp(dense: bool = False) -> None:
        for batch_ids, batch_mask in batches:
            residual_change(model, batch_ids, batch_mask, layer, dense=dense)

    base = model.get_base_model()

    def jvp_input() -> None:
        from torch.func import jvp as torch_jvp
        from torch.nn.attention import SDPBackend, sdpa_kernel

        for batch_ids, batch_mask in batches:
            embeds = base.get_input_embeddings()(batch_ids).detach()

            def resid(e, batch_mask=batch_mask):
                return module_output(decoder_layers(base)[layer],
                                     lambda: base(inputs_embeds=e, attention_mask=batch_mask, use_cache=False))

            with torch.no_grad(), model.disable_adapter(), sdpa_kernel(SDPBackend.MATH):
                torch_jvp(resid, (embeds,), (torch.ones_like(embeds),))

    class Tokenizer:
        pad_token_id = 0

    bundle = ModelBundle(model=model, tokenizer=Tokenizer(), sae=sae, layer=layer, model_name="random-llama",
                         sae_name="random-sae", d_model=args.hidden, d_sae=args.d_sae)
    chats = [TokenizedChat(input_ids=row, assistant_mask=torch.ones(args.tokens, dtype=torch.bool)) for row in ids]

    def measurement() -> None:
        measure_amplification(bundle, chats, batch_size=args.batch_size, progress=False)

    t = timed({"forward": forward, "forward_adapter": forward_adapter, "jvp": jvp,
               "jvp_dense": lambda: jvp(dense=True), "jvp_input": jvp_input, "measurement": measurement},
              args.repeats)
    print(f"model: Llama hidden {args.hidden}, {args.layers} layers, LoRA r 8 on {len(deltas)} modules; probes: "
          f"{args.probes} x {args.tokens} tokens, batch {args.batch_size}; SAE {args.d_sae} features")
    for name, seconds in t.items():
        print(f"  {name:16s} {seconds:.3f} s")
    print(f"jvp / forward (one plain forward pass): {t['jvp'] / t['forward']:.2f}x   (target <= 3x)")
    print(f"jvp_dense / forward (dense ΔW tangents): {t['jvp_dense'] / t['forward']:.2f}x")
    print(f"jvp_input / forward (forward-mode AD alone): {t['jvp_input'] / t['forward']:.2f}x")
    print(f"jvp / (forward + forward_adapter): {t['jvp'] / (t['forward'] + t['forward_adapter']):.2f}x")
    print(f"measurement / (forward + forward_adapter): "
          f"{t['measurement'] / (t['forward'] + t['forward_adapter']):.2f}x")
    setting = (f"Llama hidden {args.hidden}, {args.layers} layers, LoRA r 8 on {len(deltas)} modules, {args.probes} × "
               f"{args.tokens} tokens, median of {args.repeats}")
    for name, seconds in t.items():
        bench.add(f"{name} (seconds per probe set)", seconds, "s", note=setting if name == "forward" else "")
    two = t["forward"] + t["forward_adapter"]
    bench.add("jvp / one plain forward", t["jvp"] / t["forward"], "×", target="<= 3", note="the factor path (tangent on B)")
    bench.add("jvp_dense / one plain forward", t["jvp_dense"] / t["forward"], "×", note="dense ΔW tangents")
    bench.add("jvp_input / one plain forward", t["jvp_input"] / t["forward"], "×",
              note="forward-mode AD with an input tangent only: the floor of any JVP through the model")
    bench.add("jvp / (forward + forward_adapter)", t["jvp"] / two, "×",
              note="against the two passes a measurement without a prediction needs")
    bench.add("measurement / (forward + forward_adapter)", t["measurement"] / two, "×",
              note=f"the whole measure_amplification, SAE with {args.d_sae} features included")
    bench.write(args.results)


if __name__ == "__main__":
    main()
