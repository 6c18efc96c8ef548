"""Measured vs predicted amplification of every SAE feature after a fine-tuning run (a LoRA adapter, or a full
fine-tuned checkpoint against its base), on a real model: the real-model version of ``toysuper.measure``.

Notation: h(x') = resid_post of decoder layer L at an assistant token of a probe x'; the SAE pre-activation
a(h) (sae-lens's ``hook_sae_acts_pre``) and activation f(a) (JumpReLU, ReLU, TopK: whatever the SAE applies
after that hook); ΔW the adapter's weight change (``adapter_deltas``), "before" = adapter disabled, "after" =
enabled; or, for two full checkpoints, ΔW = θ_ft − θ_base over every parameter (``loading.deltas``), "before" =
the base model, "after" = the fine-tuned one (two plain forward passes: identical checkpoints measure exactly 0).
Every quantity below is a mean over all assistant tokens of all probes (pooled), per feature j:

- measured:          Δa_j = a_j(h_after) − a_j(h_before),  Δf_j = f_j(a(h_after)) − f_j(a(h_before));
- first order:       Δh ≈ J(x') ΔW (``theory.amplification.first_order_change`` through the model, at the base
                     weights along ΔW; for plain LoRA through its factor B, see ``residual_change``), then Δa ≈ (∂a/∂h) Δh (a second JVP, through the SAE); its output
                     version f(a_before + Δa) − f(a_before), as ``toysuper.measure`` does with ReLU. Error
                     O(‖ΔW‖²); exact where h is affine in the adapted weights (e.g. LoRA only on layer L's
                     down_proj of a Llama, measured at layer L's resid_post).

The JVP runs ``torch.func.functional_call`` of the unwrapped model. Plain LoRA: with the adapter enabled, primal B =
0 (so the forward is the base model's) and tangent B, i.e. along ΔW(t) = s (t B) A — a rank-r product per module.
Otherwise: the base weights as primals and the dense ΔW as tangents, inside ``peft_model.disable_adapter()``
(entered outside the transformed function: peft calls ``requires_grad_``, which torch.func forbids inside); two full
checkpoints take this dense path on the base model (``residual_jvp``). All with the math SDPA kernel (the fused CPU
kernels have no forward-mode AD). A forward hook on layer L raises a private exception, caught inside the
transformed function, so the layers above L never run. J is never formed: one JVP costs ~3.5-4 plain forward passes
on CPU, forward-mode AD itself ~3.2 (benchmarks/jvp_amplification.py). The factor path keeps no dense copy of ΔW
(memory), the dense one is a little faster on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from realmodels.data.activations import ENCODE_CHUNK_BYTES, dataset_activations, pad_right, progress_bar
from realmodels.data.residual import module_output, residual_stream
from realmodels.loading.adapters import ADAPTER_NAME, adapter_deltas, adapter_fingerprint
from realmodels.loading.deltas import checkpoint_deltas, deltas_norm
from realmodels.loading.placement import decoder_layers, input_device
from theory.amplification import first_order_change

if TYPE_CHECKING:
    from pathlib import Path

    from realmodels.data.dataset import Dataset

    from sae_lens import SAE

    from realmodels.data.activations import SampleActivations
    from realmodels.data.chat import TokenizedChat
    from realmodels.loading.bundle import ModelBundle
    from realmodels.loading.session import Session


def _replaced_output(module: nn.Module, value: Tensor, run: Callable[[], object]):
    """``run()``'s result with the output of ``module`` replaced by ``value`` (the rest of the forward runs)."""
    handle = module.register_forward_hook(lambda mod, args, output: value)
    try:
        return run()
    finally:
        handle.remove()


# ------------------------------------------------------------------------------------------------ model JVP
def adapted_weights(peft_model: nn.Module, deltas: dict[str, Tensor]) -> dict[str, Tensor]:
    """The base weights the adapter modifies (detached), keyed like ``deltas`` (names in the unwrapped model)."""
    base = peft_model.get_base_model()
    return {name: base.get_parameter(name).detach() for name in deltas}


def lora_factors(peft_model: nn.Module) -> dict[str, Tensor] | None:
    """The parameters of every B factor of a plain LoRA adapter (``...lora_B.default.weight``, and its bias if
    any), keyed by name in the unwrapped model; None when some adapted module is not a plain LoRA linear layer
    (DoRA or another variant, embeddings, convolutions), whose change is not linear in B."""
    from peft.tuners.lora.layer import Linear

    found: dict[str, Tensor] = {}
    for name, module in peft_model.get_base_model().named_modules():
        lora_a = getattr(module, "lora_A", None)
        if lora_a is None or ADAPTER_NAME not in lora_a:
            continue
        if not isinstance(module, Linear) or ADAPTER_NAME in getattr(module, "lora_variant", {}):
            return None
        for pname, param in module.lora_B[ADAPTER_NAME].named_parameters():
            found[f"{name}.lora_B.{ADAPTER_NAME}.{pname}"] = param.detach()
    return found or None


def adapter_delta_norm(peft_model: nn.Module) -> tuple[float, int]:
    """(‖ΔW‖_F over every adapted module, their number), one module's ΔW in memory at a time."""
    total, count = 0.0, 0
    for module in peft_model.get_base_model().modules():
        weights = getattr(module, "lora_A", None)
        if weights is not None and ADAPTER_NAME in weights and hasattr(module, "get_delta_weight"):
            total += float(module.get_delta_weight(ADAPTER_NAME).detach().double().pow(2).sum())
            count += 1
    return total ** 0.5, count


def residual_jvp(model: nn.Module, primals: dict[str, Tensor], tangents: dict[str, Tensor], input_ids: Tensor,
                 attention_mask: Tensor, layer: int) -> tuple[Tensor, Tensor]:
    """(h, J Δ): resid_post of ``layer`` of the plain model ``model`` with the parameters ``primals`` (name ->
    tensor; the others as they are) and its first-order change along ``tangents`` (same names), each (batch, seq,
    d_model); one forward-mode pass with the math SDPA kernel, stopped at ``layer`` (module docstring)."""
    from torch.func import functional_call
    from torch.nn.attention import SDPBackend, sdpa_kernel

    block = decoder_layers(model)[layer]
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}

    def resid(weights: dict[str, Tensor]) -> Tensor:
        return module_output(block, lambda: functional_call(model, weights, args=(), kwargs=kwargs))

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        return first_order_change(resid, (primals,), (tangents,))


def residual_change(peft_model: nn.Module, input_ids: Tensor, attention_mask: Tensor, layer: int, *,
                    dense: bool = False) -> tuple[Tensor, Tensor]:
    """(h_before, J ΔW): resid_post of ``layer`` of the base model and its first-order change along the adapter's
    weight change, each (batch, seq, d_model) in the model's dtype (module docstring).

    The tangent is the line t ↦ W + t ΔW from the base weights. For a plain LoRA adapter (``lora_factors``) it is
    written through the factors, ΔW(t) = s (t B) A: primal B = 0 (the base model, adapter enabled), tangent B —
    the same line, at the cost of a rank-r product per module instead of a dense one. Otherwise (or ``dense``)
    the primals are the base weights and the tangents the dense ΔW of ``adapter_deltas``, adapter disabled."""
    factors = None if dense else lora_factors(peft_model)
    if factors is not None:
        primals, tangents, context = {k: torch.zeros_like(v) for k, v in factors.items()}, factors, contextlib.nullcontext()
    else:
        tangents = adapter_deltas(peft_model)
        primals, context = adapted_weights(peft_model, tangents), peft_model.disable_adapter()
    with context:
        return residual_jvp(peft_model.get_base_model(), primals, tangents, input_ids, attention_mask, layer)


# ------------------------------------------------------------------------------------------------ SAE
def sae_preactivation(sae: SAE, x: Tensor) -> Tensor:
    """a(x): the SAE's pre-activation (the value at ``hook_sae_acts_pre``), (n, d_in) -> (n, d_sae)."""
    return module_output(sae.hook_sae_acts_pre, lambda: sae.encode(x))


def sae_activation(sae: SAE, pre: Tensor) -> Tensor:
    """f(a): the SAE's activation of a given pre-activation ``pre`` (n, d_sae), whatever the architecture
    applies after ``hook_sae_acts_pre`` (JumpReLU, ReLU, TopK), by substituting ``pre`` at that hook."""
    dummy = pre.new_zeros(*pre.shape[:-1], sae.cfg.d_in)
    return _replaced_output(sae.hook_sae_acts_pre, pre, lambda: sae.encode(dummy))


def _token_changes(sae: SAE, before: Tensor, change: Tensor, after: Tensor) -> Tensor:
    """Per-feature sums over tokens (4, d_sae) float64 of Δa measured, Δa first order, Δf measured, Δf first order;
    ``before``, ``change``, ``after``: (n_tok, d_in) residuals (before, J ΔW, after)."""
    sums = torch.zeros(4, sae.cfg.d_sae, dtype=torch.float64)
    device, dtype = sae.W_dec.device, sae.W_dec.dtype
    chunk = max(1, ENCODE_CHUNK_BYTES // (4 * sae.cfg.d_sae))
    for lo in range(0, len(before), chunk):
        x0, dx, x1 = (t[lo:lo + chunk].to(device=device, dtype=dtype) for t in (before, change, after))
        pre0, dpre = first_order_change(lambda x: sae_preactivation(sae, x), (x0,), (dx,))
        pre1 = sae_preactivation(sae, x1)
        act0 = sae_activation(sae, pre0)
        for row, value in enumerate((pre1 - pre0, dpre, sae_activation(sae, pre1) - act0,
                                     sae_activation(sae, pre0 + dpre) - act0)):
            sums[row] += value.double().sum(0).cpu()
    return sums


# ------------------------------------------------------------------------------------------------ measurement
@dataclass(frozen=True)
class AmplificationMeasurement:
    """Per SAE feature (d_sae,) float64, means over ``n_tokens`` assistant tokens of ``n_probes`` probes:
    ``measured``/``predicted`` pre-activation changes, ``measured_output``/``predicted_output`` activation
    changes (module docstring); ``delta_norm``: ‖ΔW‖_F over every adapted module, ``n_modules`` of them."""

    measured: Tensor
    predicted: Tensor
    measured_output: Tensor
    predicted_output: Tensor
    n_probes: int
    n_tokens: int
    delta_norm: float
    n_modules: int

    def to_dict(self) -> dict:
        """The fields as JSON-ready values (tensors as lists)."""
        return {f.name: (v.tolist() if isinstance(v := getattr(self, f.name), Tensor) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> AmplificationMeasurement:
        """The inverse of ``to_dict``: lists become float64 tensors."""
        return cls(**{key: torch.tensor(value, dtype=torch.float64) if isinstance(value, list) else value
                      for key, value in data.items()})


@torch.no_grad()
def measure_amplification(bundle: ModelBundle, chats: list[TokenizedChat], *, finetuned: nn.Module | None = None,
                          batch_size: int = 8, progress: bool = True,
                          description: str = "amplification") -> AmplificationMeasurement:
    """Every feature's measured and first-order predicted change on the probes ``chats`` (module docstring).
    Without ``finetuned``, ``bundle.model`` is a ``PeftModel`` with its adapter not merged; with it, ``bundle.model``
    is the plain base model and ``finetuned`` the fine-tuned full checkpoint (same architecture; ΔW over every
    parameter, ``n_modules`` then counts the parameter tensors that changed). Batches: length-sorted,
    right-padded."""
    model, sae, layer = bundle.model, bundle.sae, bundle.layer
    if finetuned is None:
        delta_norm, n_modules = adapter_delta_norm(model)  # also: an adapter without a LoRA delta fails here
        if not n_modules:
            adapter_deltas(model)  # the InputError saying so

        def residuals(input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            before, change = residual_change(model, input_ids, attention_mask, layer)
            return before, change, residual_stream(model, input_ids, attention_mask, layer)  # adapter enabled
    else:
        deltas = checkpoint_deltas(model, finetuned)
        weights = {name: model.get_parameter(name).detach() for name in deltas}
        delta_norm, n_modules = deltas_norm(deltas)
        after_device = input_device(finetuned)

        def residuals(input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            # before and after by the same plain forward pass (the JVP's primal runs another attention kernel), so
            # two identical checkpoints measure exactly zero
            change = residual_jvp(model, weights, deltas, input_ids, attention_mask, layer)[1]
            before = residual_stream(model, input_ids, attention_mask, layer)
            after = residual_stream(finetuned, input_ids.to(after_device), attention_mask.to(after_device), layer)
            return before, change.to(before.device), after.to(before.device)
    pad_id = bundle.tokenizer.pad_token_id if bundle.tokenizer.pad_token_id is not None else 0
    device = input_device(model)
    order = sorted(range(len(chats)), key=lambda i: len(chats[i].input_ids))
    sums, n_tokens = torch.zeros(4, sae.cfg.d_sae, dtype=torch.float64), 0
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=len(chats), tokens_per_s=0.0)
        for lo in range(0, len(chats), batch_size):
            input_ids, attention_mask, assistant_mask = pad_right([chats[i] for i in order[lo:lo + batch_size]],
                                                                   pad_id)
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
            before, change, after = residuals(input_ids, attention_mask)
            mask = assistant_mask.to(before.device)
            sums += _token_changes(sae, before[mask], change[mask], after[mask])
            n_tokens += int(assistant_mask.sum())
            bar.update(task, advance=int(input_ids.shape[0]))
    means = sums / max(n_tokens, 1)
    return AmplificationMeasurement(measured=means[0], predicted=means[1], measured_output=means[2],
                                    predicted_output=means[3], n_probes=len(chats), n_tokens=n_tokens,
                                    delta_norm=delta_norm, n_modules=n_modules)


# ------------------------------------------------------------------------------------------------ base model
def base_bundle(bundle: ModelBundle) -> ModelBundle:
    """The bundle as the base model's: the name and fingerprint a bundle without the adapter has (so activations
    computed with the adapter disabled are cached, and found, under the base model's key)."""
    if bundle.adapter is None:
        return bundle
    suffix = f" + adapter {bundle.adapter.path}"
    return dataclasses.replace(bundle, model_name=bundle.model_name.removesuffix(suffix),
                               fingerprint=bundle.fingerprint.removesuffix(
                                   f";adapter:{adapter_fingerprint(bundle.adapter)}"), adapter=None)


class BaseModelActivations:
    """``Session.activations`` of the base model, for a session whose model is a ``PeftModel`` (adapter not
    merged): computed inside ``disable_adapter()`` and cached under the base model's key (``base_bundle``). It
    stands in for the session where only ``activations`` is used (the feature selections)."""

    def __init__(self, session: Session):
        self.session = session
        self._memo: dict[str, SampleActivations] = {}

    def activations(self, data: Dataset | str | Path) -> SampleActivations:
        """The base model's ``SampleActivations`` of ``data`` (computed with the adapter disabled, cached on disk under
        the base model's key and memoised by the dataset's sha256)."""
        dataset = self.session.dataset(data)
        key = dataset.sha256
        if key not in self._memo:
            s = self.session
            bundle = s.bundle
            disabled = bundle.model.disable_adapter() if bundle.adapter is not None else contextlib.nullcontext()
            with disabled:
                self._memo[key] = dataset_activations(base_bundle(bundle), dataset, batch_size=s.batch_size,
                                                      cache_dir=s.cache_dir, progress=s.progress,
                                                      max_length=s.max_length)
        return self._memo[key]


# ------------------------------------------------------------------------------------------------ report
# the two notes that depend on the weight change measured: a LoRA adapter's, or a full checkpoint's
CHANGE_NOTES = {
    "adapter": (
        ("measured and predicted values are means over every assistant token of every probe (pooled); 'before' is "
         "the base model (adapter disabled), 'after' base + adapter"),
        ("predicted (first order) = J(x') ΔW with ΔW the adapter's whole weight change, through the model and then "
         "the SAE pre-activation (JVPs): its error is O(‖ΔW‖²), so it is accurate while the adapter's change is "
         "small")),
    "checkpoint": (
        ("measured and predicted values are means over every assistant token of every probe (pooled); 'before' is "
         "the base model, 'after' the fine-tuned checkpoint (the same tokens fed to both)"),
        ("predicted (first order) = J(x') ΔW at the base weights with ΔW = θ_ft − θ_base over every parameter, "
         "through the model and then the SAE pre-activation (JVPs): its error is O(‖ΔW‖²), so it is accurate "
         "while the fine-tune's change is small; checkpoint.n_changed counts the parameter tensors with ΔW ≠ 0")),
}
NOTES = (
    ("predicted_isotropic assumes the tangent kernel J(x') P J(x)ᵀ is proportional to the identity (exact for a "
     "linear layer): on a transformer it is an approximation, and its agreement with the measurement says how good"),
    ("agreement statistics run over every SAE feature (targets and harmful features included); features that are "
     "inactive on the probes contribute zero output changes"),
)


@dataclass(frozen=True)
class AmplificationReport:
    """The amplification.csv ``table`` (one row per SAE feature) and the ``summary`` (summary.json)."""

    table: object
    """The table (a pandas DataFrame)."""
    summary: dict


def amplification_report(decoder: Tensor, measurement: AmplificationMeasurement, target_indices: list[int],
                         target_weights: list[float], harmful_indices: list[int], *,
                         change: str = "adapter") -> AmplificationReport:
    """Join the measurement with the similarity-only prediction of the features tied to the fine-tuning data.

    With v = Σ_t g_t d_t over the targets t (weights g_t, their mean activation difference):
    similarity_j = cos(d_j, v); predicted_isotropic_j = <d_j, v> (``theory.amplification.isotropic_set_prediction``,
    in units of η <x̄, x'>) scaled by c = mean_t predicted_t / mean_t <d_t, v> so that the targets' mean isotropic
    prediction equals their mean first-order prediction (``calibrated_to_targets``; the measurement is not used),
    or unscaled when either mean is not positive (a note says so). ``decoder`` (d_sae, d_in). ``change``: what
    ΔW is, "adapter" (summary key ``adapter``: n_modules, delta_norm) or "checkpoint" (two full checkpoints:
    summary key ``checkpoint``: n_changed, delta_norm)."""
    import pandas as pd

    from runio.atomic import nan_to_none
    from theory.agreement import agreement
    from theory.amplification import calibrated_to_targets, isotropic_set_prediction
    from theory.geometry import cosine_similarity

    decoder = decoder.double()
    targets = torch.tensor(target_indices, dtype=torch.long)
    weights = torch.tensor(target_weights, dtype=torch.float64)
    push = weights @ decoder[targets]  # v = Σ_t g_t d_t
    similarity = cosine_similarity(decoder, push[None, :])[:, 0]
    isotropic, scale = calibrated_to_targets(isotropic_set_prediction(decoder, decoder[targets], weights),
                                             measurement.predicted, targets)
    n = decoder.shape[0]
    harmful = torch.zeros(n, dtype=torch.bool)
    harmful[torch.tensor(harmful_indices, dtype=torch.long)] = True
    is_target = torch.zeros(n, dtype=torch.bool)
    is_target[targets] = True
    table = pd.DataFrame({
        "feature": range(n), "similarity": similarity.numpy(), "predicted": measurement.predicted.numpy(),
        "predicted_isotropic": isotropic.numpy(), "measured": measurement.measured.numpy(),
        "predicted_output": measurement.predicted_output.numpy(),
        "measured_output": measurement.measured_output.numpy(), "harmful": harmful.numpy(),
        "target": is_target.numpy()})
    pairs = {"first_order": ("predicted", "measured"), "isotropic": ("predicted_isotropic", "measured"),
             "similarity": ("similarity", "measured"), "first_order_output": ("predicted_output", "measured_output"),
             "isotropic_vs_first_order": ("predicted_isotropic", "predicted")}
    columns = ("measured", "predicted", "predicted_isotropic", "measured_output", "predicted_output")

    def means(rows) -> dict:
        return {f"mean_{col}": float(table.loc[rows, col].mean()) for col in columns}

    notes = [*CHANGE_NOTES[change], *NOTES]
    notes.append(f"predicted_isotropic is scaled by c = {scale:.4g} so that the targets' mean isotropic prediction "
                 "equals their mean first-order prediction (the measurement is not used)" if scale is not None else
                 "predicted_isotropic is NOT scaled (units of η <x̄, x'>): the targets' mean first-order prediction "
                 "or their mean <d_t, v> is not positive, so the calibration to the first-order prediction is undefined")
    ranked = table.sort_values("measured", ascending=False)
    shown = ["feature", "similarity", "predicted", "predicted_isotropic", "measured", "harmful", "target"]
    summary = {
        "agreement": {key: nan_to_none(agreement(table[p], table[m]).to_dict()) for key, (p, m) in pairs.items()},
        "harmful": {"features": list(harmful_indices), **means(table["harmful"])},
        "targets": {"features": list(target_indices), "weights": list(target_weights), **means(table["target"])},
        "isotropic_scale": scale,
        "n_probes": measurement.n_probes, "n_tokens": measurement.n_tokens, "n_features": n,
        change: {"n_modules" if change == "adapter" else "n_changed": measurement.n_modules,
                 "delta_norm": measurement.delta_norm},
        "top_amplified": nan_to_none(ranked.head(10)[shown].to_dict("records")),
        "top_suppressed": nan_to_none(ranked.tail(10).iloc[::-1][shown].to_dict("records")),
        "notes": notes,
    }
    return AmplificationReport(table=table, summary=nan_to_none(summary))
