"""The five checkpoints of Minegishi et al. (2026), each HF model with the sae-lens SAE release used on it, and
``gemma-3-270m`` (Gemma 3 270M base with Gemma Scope 2's residual SAEs) for hub users.

``--checkpoint gemma-3-270m`` is the hub model ``google/gemma-3-270m`` (gated: accept its licence) with the
Gemma Scope 2 SAEs; ``--model gemma-3-270m`` is the offline Q4_K_M weights of the ``real`` extra
(``realmodels.loading.packaged``), used without these SAEs.

``layers`` are read from sae-lens's ``pretrained_saes.yaml`` (the ids matching ``sae_id_template``), so
they are exactly the layers ``SAE.from_pretrained`` can load. Sizes are the published model configs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from realmodels.loading.sae_releases import did_you_mean, release_info
from theory.errors import InputError

if TYPE_CHECKING:
    import torch

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class CheckpointSpec:
    """A model + SAE release pair. ``sae_id_template.format(layer=L)`` is the SAE id for layer L."""

    name: str
    """The registry name (``--checkpoint`` NAME)."""
    model_id: str
    """The model's Hugging Face repository id."""
    sae_release: str
    """The sae-lens release of its SAEs."""
    sae_id_template: str
    """The SAE id of a layer with ``{layer}`` in place of its index."""
    layers: tuple[int, ...]
    """The layers the release has an SAE for."""
    hidden_size: int
    """d_model of the published config."""
    n_params: int
    """Parameter count (for the memory estimate)."""
    default_dtype: str
    """The dtype ``auto`` loads it in."""
    n_layers: int
    """Decoder layers of the published config."""
    d_sae: int | None
    """SAE width, None when the release does not record it."""
    context: int
    """max_position_embeddings of the published config."""

    def sae_id(self, layer: int) -> str:
        """The SAE id for ``layer``; a layer without an SAE in the release is an InputError."""
        if layer not in self.layers:
            raise InputError(f"checkpoint '{self.name}' has no SAE at layer {layer} in release "
                             f"'{self.sae_release}'; layers with an SAE: {', '.join(map(str, self.layers))}")
        return self.sae_id_template.format(layer=layer)


def _layers_in_release(release: str, template: str) -> tuple[int, ...]:
    pattern = re.compile(re.escape(template).replace(re.escape("{layer}"), r"(\d+)") + "$")
    matches = (pattern.match(sae_id) for sae_id in release_info(release).sae_paths)
    return tuple(sorted(int(m.group(1)) for m in matches if m))


def _spec(name: str, model_id: str, release: str, template: str, *, hidden_size: int, n_params: int,
          n_layers: int, d_sae: int | None, context: int, default_dtype: str = "bfloat16") -> CheckpointSpec:
    return CheckpointSpec(name=name, model_id=model_id, sae_release=release, sae_id_template=template,
                          layers=_layers_in_release(release, template), hidden_size=hidden_size, n_params=n_params,
                          default_dtype=default_dtype, n_layers=n_layers, d_sae=d_sae, context=context)


REGISTRY: dict[str, CheckpointSpec] = {spec.name: spec for spec in (
    _spec("gemma-2-2b", "google/gemma-2-2b", "gemma-scope-2b-pt-res-canonical", "layer_{layer}/width_16k/canonical",
          hidden_size=2304, n_params=2_614_341_888, n_layers=26, d_sae=16_384, context=8192),
    _spec("gemma-2-9b", "google/gemma-2-9b", "gemma-scope-9b-pt-res-canonical", "layer_{layer}/width_16k/canonical",
          hidden_size=3584, n_params=9_241_705_984, n_layers=42, d_sae=16_384, context=8192),
    _spec("gemma-2-27b", "google/gemma-2-27b", "gemma-scope-27b-pt-res-canonical", "layer_{layer}/width_131k/canonical",
          hidden_size=4608, n_params=27_227_128_320, n_layers=46, d_sae=131_072, context=8192),
    _spec("llama-3.1-8b", "meta-llama/Llama-3.1-8B", "llama_scope_lxr_8x", "l{layer}r_8x",
          hidden_size=4096, n_params=8_030_261_248, n_layers=32, d_sae=32_768, context=131_072),
    # gpt-oss ships MXFP4 experts; on CPU transformers dequantises them, so bfloat16 is the real footprint.
    _spec("gpt-oss-20b", "openai/gpt-oss-20b", "gpt-oss-20b-andyrdt", "resid_post_layer_{layer}_trainer_0",
          hidden_size=2880, n_params=20_914_757_184, n_layers=24, d_sae=None, context=131_072),
    # Gemma Scope 2: every width and L0 family of this release covers layers 5, 9, 12, 15; 16k with the larger L0
    _spec("gemma-3-270m", "google/gemma-3-270m", "gemma-scope-2-270m-pt-res", "layer_{layer}_width_16k_l0_big",
          hidden_size=640, n_params=268_098_176, n_layers=18, d_sae=16_384, context=32_768),
)}


def get_checkpoint(name: str) -> CheckpointSpec:
    """The registered checkpoint ``name``; an unknown name is an InputError listing the valid ones."""
    if name not in REGISTRY:
        raise InputError(f"unknown checkpoint '{name}'{did_you_mean(name, REGISTRY)}; "
                         f"valid checkpoints: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def check_dtype(dtype: str, *, allow_auto: bool = True) -> str:
    """``dtype`` if it is a known dtype name (or "auto", when allowed); otherwise an InputError listing them."""
    if dtype not in DTYPE_BYTES and not (allow_auto and dtype == "auto"):
        raise InputError(f"unknown dtype '{dtype}'; valid dtypes: auto, {', '.join(DTYPE_BYTES)}")
    return dtype


def dtype_bytes(dtype: str | torch.dtype) -> int:
    """Bytes per parameter of a dtype name (float32, bfloat16, float16) or torch dtype."""
    if not isinstance(dtype, str):  # a torch.dtype
        return dtype.itemsize
    return DTYPE_BYTES[check_dtype(dtype, allow_auto=False)]


def memory_estimate_gb(spec_or_n_params: CheckpointSpec | int, dtype: str | torch.dtype = "auto") -> float:
    """Model weights in GB (1e9 bytes): n_params x bytes per parameter.

    ``dtype="auto"`` means the checkpoint's default dtype; for a bare parameter count it means float32
    (an upper bound, since "auto" then depends on the model's config)."""
    if isinstance(spec_or_n_params, CheckpointSpec):
        n_params = spec_or_n_params.n_params
        dtype = spec_or_n_params.default_dtype if dtype == "auto" else dtype
    else:
        n_params = int(spec_or_n_params)
        dtype = "float32" if dtype == "auto" else dtype
    return n_params * dtype_bytes(dtype) / 1e9
