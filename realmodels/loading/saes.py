"""SAEs from a sae-lens release (hub cache) or a local ``SAE.save_model`` directory: resolve which one,
load it through sae-lens, read its hook layer, and read only its decoder when that is all that is needed.

Decoder-only reads follow the sae-lens converters exactly (tested against ``SAE.from_pretrained``):
gemma_2 reads W_dec from ``params.npz``; llama_scope reads ``decoder.weight``ᵀ from
``checkpoints/final.safetensors`` divided by the release's ``norm_scaling_factor`` (sae-lens folds it);
dictionary_learning_1 reads ``W_dec`` or ``decoder.weight``ᵀ from a memory-mapped ``ae.pt``.

A saved directory is checked before anything loads (``check_saved_sae``): its cfg.json (UTF-8 JSON, positive
integer ``d_in`` / ``d_sae``, a string hook) and its weights file (an intact safetensors file holding ``W_dec``
of shape (d_sae, d_in)); loading it wraps sae-lens so that a damaged file is one InputError naming it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import safe_open

from realmodels.loading import hub
from realmodels.loading.checks import is_int
from realmodels.loading.registry import REGISTRY, get_checkpoint
from realmodels.loading.sae_releases import ReleaseInfo, release_info
from realmodels.loading.weights import loading, safetensors_shapes
from runio.reading import read_json_file
from theory.errors import InputError

if TYPE_CHECKING:  # torch and sae-lens (~9 s) are imported only where weights are read
    from sae_lens import SAE
    from torch import Tensor

SAVED_CFG = "cfg.json"
SAVED_WEIGHTS = "sae_weights.safetensors"
RESID_POST_HOOK = re.compile(r"^blocks\.(\d+)\.hook_resid_post$")


@dataclass(frozen=True)
class SaeSource:
    """Where an SAE comes from: a sae-lens ``release`` + ``sae_id``, or a saved directory ``path``."""

    release: str | None = None
    sae_id: str | None = None
    path: Path | None = None

    @property
    def name(self) -> str:
        """The SAE's path, or ``<release>/<sae_id>``."""
        return str(self.path) if self.path is not None else f"{self.release}/{self.sae_id}"


def resolve_sae_source(*, checkpoint: str | None = None, sae_path: str | Path | None = None,
                       sae_release: str | None = None, sae_id: str | None = None,
                       layer: int | None = None) -> SaeSource:
    """Pick the SAE: ``sae_path``, else ``sae_release`` + ``sae_id`` (the id may come from the registry
    template and ``layer``), else the checkpoint's release at ``layer``. Unknown names are InputErrors."""
    if sae_path is not None:
        if sae_release is not None or sae_id is not None:
            raise InputError("pass either an SAE path or an SAE release and id, not both")
        if not Path(sae_path).expanduser().is_dir():
            raise InputError(f"SAE directory {sae_path} does not exist (expected a directory saved by SAE.save_model)")
        path = Path(sae_path).expanduser().resolve()
        if not (path / SAVED_CFG).is_file() or not (path / SAVED_WEIGHTS).is_file():
            raise InputError(f"SAE path {path} is not a directory written by sae-lens SAE.save_model "
                             f"(it needs {SAVED_CFG} and {SAVED_WEIGHTS})")
        check_saved_sae(path)
        return SaeSource(path=path)
    spec = get_checkpoint(checkpoint) if checkpoint is not None else None
    if sae_release is None:
        if spec is None:
            raise InputError("no SAE given: pass a checkpoint name, an SAE path, or an SAE release and id")
        sae_release = spec.sae_release
    info = release_info(sae_release)
    if sae_id is None:
        spec = spec if spec is not None and spec.sae_release == sae_release else next(
            (s for s in REGISTRY.values() if s.sae_release == sae_release), None)
        if spec is None or layer is None:
            raise InputError(f"pass an SAE id for release '{sae_release}'; valid ids: {', '.join(info.sae_paths)}")
        sae_id = spec.sae_id(layer)
    info.folder(sae_id)
    return SaeSource(release=sae_release, sae_id=sae_id)


@dataclass(frozen=True)
class SavedSaeConfig:
    """What a saved SAE's cfg.json says: its input width, its width and the hook it reads (None: unsaid)."""

    d_in: int
    """Width of the vectors the SAE reads."""
    d_sae: int
    """Number of SAE features."""
    hook_name: str | None
    """The hook it reads (``blocks.L.hook_resid_post``), None when cfg.json does not say."""


def saved_sae_config(path: Path) -> SavedSaeConfig:
    """The cfg.json of a saved SAE directory (sae-lens 6 keeps the hook in ``metadata``, older ones at top);
    anything but positive integer sizes and a string (or absent) hook is an InputError naming the file."""
    file = Path(path) / SAVED_CFG
    cfg = read_json_file(file, "SAE config")
    if not isinstance(cfg, dict):
        raise InputError(f"{file} is not a valid sae-lens config (not a JSON object)")
    for key in ("d_in", "d_sae"):
        if not (is_int(cfg.get(key)) and cfg[key] > 0):
            raise InputError(f"{file} is not a valid sae-lens config ({key} must be a positive integer)")
    metadata = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    hook_name = metadata.get("hook_name", cfg.get("hook_name"))
    if hook_name is not None and not isinstance(hook_name, str):
        raise InputError(f"{file} is not a valid sae-lens config (hook_name must be a string)")
    return SavedSaeConfig(d_in=cfg["d_in"], d_sae=cfg["d_sae"], hook_name=hook_name)


def check_saved_sae(path: Path) -> SavedSaeConfig:
    """A saved SAE directory's config (``saved_sae_config``), once its weights file is intact and holds
    ``W_dec`` of shape (d_sae, d_in); every problem is an InputError naming the file."""
    cfg = saved_sae_config(path)
    file = Path(path) / SAVED_WEIGHTS
    shapes = safetensors_shapes(file, "SAE weights")
    if shapes.get("W_dec") != (cfg.d_sae, cfg.d_in):
        found = "no W_dec" if "W_dec" not in shapes else f"W_dec of shape {list(shapes['W_dec'])}"
        raise InputError(f"SAE weights {file} hold {found}, but its {SAVED_CFG} says (d_sae, d_in) = "
                         f"({cfg.d_sae}, {cfg.d_in})")
    return cfg


def saved_sae_shape(path: Path) -> tuple[int, int]:
    """(d_in, d_sae) of a saved SAE directory, from its cfg.json."""
    cfg = saved_sae_config(path)
    return cfg.d_in, cfg.d_sae


def load_sae(source: SaeSource, *, device: str = "cpu") -> SAE:
    """The sae-lens ``SAE`` (float32): ``SAE.load_from_disk`` or ``SAE.from_pretrained`` (cache first)."""
    from sae_lens import SAE

    if source.path is not None:
        with loading("the SAE", source.path):
            return SAE.load_from_disk(source.path, device=device)
    info = release_info(source.release)
    return hub.cached_first(lambda: SAE.from_pretrained(source.release, source.sae_id, device=device),
                            what=f"SAE {source.name}", repo_id=info.repo_id,
                            include=f"{info.folder(source.sae_id)}/*")


def sae_layer(sae: SAE, name: str) -> int:
    """The layer L of an SAE hooked at ``blocks.L.hook_resid_post``; any other hook is an InputError."""
    return hook_layer(sae.cfg.metadata.hook_name, name)


def hook_layer(hook_name: str | None, name: str) -> int:
    """L of the hook name ``blocks.L.hook_resid_post`` of SAE ``name``; any other hook is an InputError."""
    match = RESID_POST_HOOK.match(hook_name or "")
    if match is None:
        raise InputError(f"SAE {name} reads hook '{hook_name}', not a residual stream "
                         "'blocks.L.hook_resid_post'; only residual-stream SAEs are supported")
    return int(match.group(1))


def _gemma_2_decoder(info: ReleaseInfo, sae_id: str, folder: str) -> Tensor:
    import numpy as np
    import torch
    from huggingface_hub import hf_hub_download

    with np.load(hf_hub_download(info.repo_id, "params.npz", subfolder=folder)) as params:
        return torch.from_numpy(params["W_dec" if "W_dec" in params.files else "w_dec"]).float()


def _llama_scope_decoder(info: ReleaseInfo, sae_id: str, folder: str) -> Tensor:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(info.repo_id, "final.safetensors", subfolder=f"{folder}/checkpoints")
    with safe_open(path, framework="pt") as weights:
        decoder = weights.get_tensor("decoder.weight").float().T.contiguous()
    factor = info.norm_scaling_factors.get(sae_id)
    return decoder / factor if factor is not None else decoder


def _dictionary_learning_decoder(info: ReleaseInfo, sae_id: str, folder: str) -> Tensor:
    import torch
    from huggingface_hub import hf_hub_download

    state = torch.load(hf_hub_download(info.repo_id, f"{folder}/ae.pt"), map_location="cpu", mmap=True,
                       weights_only=True)
    decoder = state["W_dec"] if "W_dec" in state else state["decoder.weight"].T
    return decoder.float().contiguous()


DECODER_READERS: dict[str, Callable[[ReleaseInfo, str, str], Tensor]] = {
    "gemma_2": _gemma_2_decoder,
    "llama_scope": _llama_scope_decoder,
    "dictionary_learning_1": _dictionary_learning_decoder,
}


def load_decoder(*, checkpoint: str | None = None, sae_path: str | Path | None = None,
                 sae_release: str | None = None, sae_id: str | None = None, layer: int | None = None) -> Tensor:
    """``read_decoder`` of the SAE that ``resolve_sae_source`` picks for these arguments."""
    return read_decoder(resolve_sae_source(checkpoint=checkpoint, sae_path=sae_path, sae_release=sae_release,
                                           sae_id=sae_id, layer=layer))


def read_decoder(source: SaeSource) -> Tensor:
    """Decoder rows ``W_dec`` (d_sae, d_in), float32, equal to ``SAE.from_pretrained(...).W_dec``.

    Reads only the decoder tensor for saved directories and the gemma_2 / llama_scope /
    dictionary_learning_1 layouts; other converters fall back to loading the whole SAE."""
    if source.path is not None:
        with loading("the SAE decoder", source.path / SAVED_WEIGHTS), \
                safe_open(source.path / SAVED_WEIGHTS, framework="pt") as weights:
            return weights.get_tensor("W_dec").float()
    info = release_info(source.release)
    folder = info.folder(source.sae_id)
    reader = DECODER_READERS.get(info.conversion_func)
    if reader is None or "embedding" in folder:  # embedding SAEs get rescaled by the converter
        return load_sae(source).W_dec.detach().float()
    return hub.cached_first(lambda: reader(info, source.sae_id, folder), what=f"SAE {source.name}",
                            repo_id=info.repo_id, include=f"{folder}/*")
