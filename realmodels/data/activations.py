"""Per-sample SAE feature activations of a chat dataset, averaged over assistant tokens, cached on disk.

For sample s with assistant tokens T_s and residual r_t = resid_post at the bundle's layer:
    residual_mean[s] = (1/|T_s|) Σ_{t∈T_s} r_t,      feature_acts[s] = (1/|T_s|) Σ_{t∈T_s} sae.encode(r_t)
(the mean of the SAE code, not the code of the mean). Batches are right-padded, which leaves every real
token's causal forward pass unchanged. The cache key is (model, SAE, layer, dataset content hash, loaded
files' fingerprint, chat template, max_length); cache files are written to a temp file and renamed.
While a dataset is being computed, the finished samples are checkpointed to ``<cache file>.partial``
(every ``PARTIAL_EVERY_S`` seconds, atomically), so a killed run resumes where it stopped. The same cache file
can be computed by a pool of model workers instead (``realmodels.data.shards``)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from realmodels.data.chat import TokenizedChat
from realmodels.data.dataset import Dataset, as_dataset
from realmodels.loading.bundle import ModelBundle
from realmodels.data.residual import residual_stream
from realmodels.loading.placement import input_device
from runio.atomic import save_torch
from theory.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CACHE_FORMAT = 1
ENCODE_CHUNK_BYTES = 256 * 2**20  # bound on one sae.encode output (tokens x d_sae float32)
PARTIAL_EVERY_S = 60.0  # seconds between checkpoints of a dataset's finished samples


@dataclass
class SampleActivations:
    """``feature_acts`` sparse COO float32 (n_samples, d_sae), ``residual_mean`` float32 (n_samples, d_model),
    ``n_tokens`` long (n_samples,): assistant tokens averaged over per sample."""

    feature_acts: Tensor
    residual_mean: Tensor
    n_tokens: Tensor

    def dense_features(self) -> Tensor:
        """``feature_acts`` as a dense (n_samples, d_sae) float32 tensor."""
        return self.feature_acts.to_dense()

    def __len__(self) -> int:
        return int(self.n_tokens.shape[0])


def pad_right(chats: list[TokenizedChat], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """``input_ids``, ``attention_mask`` (long) and ``assistant_mask`` (bool), each (batch, max_seq)."""
    width = max(len(chat.input_ids) for chat in chats)
    input_ids = torch.full((len(chats), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(chats), width), dtype=torch.long)
    assistant_mask = torch.zeros((len(chats), width), dtype=torch.bool)
    for row, chat in enumerate(chats):
        n = len(chat.input_ids)
        input_ids[row, :n], attention_mask[row, :n], assistant_mask[row, :n] = chat.input_ids, 1, chat.assistant_mask
    return input_ids, attention_mask, assistant_mask


def row_means(resid: Tensor, assistant_mask: Tensor) -> Tensor:
    """Per-row means of ``resid`` (batch, seq, d) over the assistant tokens: (batch, d), float32 on the CPU."""
    rows = assistant_mask.nonzero()[:, 0]  # (n_tok,) batch row of each assistant token
    tokens = resid[assistant_mask.to(resid.device)]  # (n_tok, d_model), on the model's device
    counts = assistant_mask.sum(1).to(torch.float32)  # (batch,)
    return torch.zeros(len(counts), resid.shape[-1]).index_add_(0, rows, tokens.float().cpu()) / counts[:, None]


def _batch_means(bundle: ModelBundle, resid: Tensor, assistant_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row means over assistant tokens: residual (batch, d_model) (``row_means``) and SAE code
    (batch, d_sae), float32."""
    rows = assistant_mask.nonzero()[:, 0]  # (n_tok,) batch row of each assistant token
    tokens = resid[assistant_mask.to(resid.device)]  # (n_tok, d_model), on the model's device
    counts = assistant_mask.sum(1).to(torch.float32)  # (batch,)
    code_sum = torch.zeros(len(counts), bundle.d_sae)
    chunk = max(1, ENCODE_CHUNK_BYTES // (4 * bundle.d_sae))
    sae_device = bundle.sae.W_dec.device
    for lo in range(0, len(tokens), chunk):
        code = bundle.sae.encode(tokens[lo:lo + chunk].to(sae_device))  # (chunk, d_sae)
        code_sum.index_add_(0, rows[lo:lo + chunk], code.float().cpu())
    return row_means(resid, assistant_mask), code_sum / counts[:, None]


@torch.inference_mode()
def layer_residual_means(model, chats: list[TokenizedChat], layers, pad_id: int, *,
                         batch_size: int = 8) -> dict[int, Tensor]:
    """{L: (n, d_model)}: each chat's mean residual over its assistant tokens after decoder layer L, float32, in
    the chats' order; batched as ``compute_activations`` batches (length-sorted, right-padded, ``row_means``), so at
    a session's layer it equals the session's ``residual_mean``. No SAE is needed."""

    device, order = input_device(model), length_order(chats)
    means = {layer: torch.zeros(len(chats), model.config.get_text_config().hidden_size) for layer in layers}
    for lo in range(0, len(chats), batch_size):
        batch = order[lo:lo + batch_size]
        input_ids, attention_mask, assistant_mask = pad_right([chats[i] for i in batch], pad_id)
        for layer in layers:
            resid = residual_stream(model, input_ids.to(device), attention_mask.to(device), layer)
            means[layer][torch.tensor(batch, dtype=torch.long)] = row_means(resid, assistant_mask)
    return means


def length_order(chats: list[TokenizedChat]) -> list[int]:
    """Sample indices by increasing token count (a stable sort: ties keep file order). Batches are consecutive
    runs of this order, so batch composition — and with it each batch's padding width — is a function of the
    dataset and the batch size alone."""
    return sorted(range(len(chats)), key=lambda i: len(chats[i].input_ids))


def progress_bar(enabled: bool) -> Progress:
    """The rich progress bar of the activation passes (samples, tokens/s, elapsed, remaining; stderr)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[tokens_per_s]:,.0f} tok/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


@torch.inference_mode()
def compute_activations(bundle: ModelBundle, chats: list[TokenizedChat], *, batch_size: int = 8,
                        progress: bool = True, description: str = "activations", partial: Path | None = None,
                        partial_key: dict | None = None, partial_every_s: float | None = None) -> SampleActivations:
    """Run the model to the bundle's layer on every chat (length-sorted, right-padded batches) and
    average residuals and SAE codes over each chat's assistant tokens.

    With ``partial`` (a file) and its ``partial_key``: resume from the samples it holds for that key, and
    checkpoint the finished ones there every ``partial_every_s`` seconds (default ``PARTIAL_EVERY_S``) and on
    interruption."""
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    partial_every_s = PARTIAL_EVERY_S if partial_every_s is None else partial_every_s
    n = len(chats)
    pad_id = bundle.tokenizer.pad_token_id if bundle.tokenizer.pad_token_id is not None else 0
    device = input_device(bundle.model)
    order = length_order(chats)
    n_tokens = torch.tensor([int(chat.assistant_mask.sum()) for chat in chats], dtype=torch.long)
    done, residual_mean, indices, values = _load_partial(partial, partial_key, n, bundle.d_model)
    saved = done  # samples finished (in the length-sorted order) / already in the checkpoint

    def checkpoint() -> None:
        nonlocal saved
        if partial is not None and done > saved:
            save_torch(partial, {"key": partial_key, "done": done, "residual_mean": residual_mean,
                                   "indices": torch.cat(indices, 1), "values": torch.cat(values)})
            saved = done

    seen_tokens, started, saved_at = 0, time.perf_counter(), time.monotonic()
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=n, completed=done, tokens_per_s=0.0)
        try:
            for lo in range(done, n, batch_size):
                batch = order[lo:lo + batch_size]
                input_ids, attention_mask, assistant_mask = pad_right([chats[i] for i in batch], pad_id)
                resid = residual_stream(bundle.model, input_ids.to(device), attention_mask.to(device), bundle.layer)
                resid_mean, code_mean = _batch_means(bundle, resid, assistant_mask)
                samples = torch.tensor(batch, dtype=torch.long)
                residual_mean[samples] = resid_mean
                row, feature = code_mean.nonzero(as_tuple=True)
                indices.append(torch.stack([samples[row], feature]))
                values.append(code_mean[row, feature])
                seen_tokens += int(attention_mask.sum())
                done = lo + len(batch)
                bar.update(task, advance=len(batch), tokens_per_s=seen_tokens / (time.perf_counter() - started))
                if time.monotonic() - saved_at >= partial_every_s:
                    checkpoint()
                    saved_at = time.monotonic()
        except BaseException:  # killed (Ctrl-C, OOM in the model, ...): keep what is finished
            checkpoint()
            raise
    feature_acts = torch.sparse_coo_tensor(torch.cat(indices, 1), torch.cat(values), (n, bundle.d_sae),
                                           dtype=torch.float32, check_invariants=False).coalesce()
    return SampleActivations(feature_acts=feature_acts, residual_mean=residual_mean, n_tokens=n_tokens)


@dataclass(frozen=True)
class ModelIdentity:
    """The attributes of a ``ModelBundle`` that key its activation caches, known without loading weights
    (``realmodels.loading.bundle.cache_names`` of its sources, and its tokenizer): ``cache_key`` takes either."""

    model_name: str
    sae_name: str
    layer: int
    fingerprint: str
    tokenizer: PreTrainedTokenizerBase


def cache_key(bundle: ModelBundle | ModelIdentity, dataset_sha256: str, max_length: int | None) -> dict:
    """Everything the activations depend on besides the code: the cache file stores and checks it."""
    template = bundle.tokenizer.chat_template or ""
    return {"format": CACHE_FORMAT, "model": bundle.model_name, "sae": bundle.sae_name, "layer": bundle.layer,
            "dataset_sha256": dataset_sha256, "fingerprint": bundle.fingerprint, "max_length": max_length,
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest()}


def cache_file(cache_dir: Path, key: dict) -> Path:
    """``cache_dir/activations-<sha256 of the key>.pt``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return Path(cache_dir) / f"activations-{digest}.pt"


def _load_partial(path: Path | None, key: dict | None, n: int,
                  d_model: int) -> tuple[int, Tensor, list[Tensor], list[Tensor]]:
    """The finished samples a ``.partial`` checkpoint holds for ``key`` (nothing when absent, foreign or
    unreadable): ``done`` (count, length-sorted order), ``residual_mean`` (n, d_model), lists of COO
    ``indices`` (2, nnz) and ``values`` (nnz,) to append to."""
    empty = 0, torch.zeros(n, d_model), [torch.zeros(2, 0, dtype=torch.long)], [torch.zeros(0)]
    if path is None or not path.is_file():
        return empty
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign checkpoint: start over
        return empty
    if not isinstance(payload, dict) or payload.get("key") != key or payload["residual_mean"].shape != (n, d_model):
        return empty
    return int(payload["done"]), payload["residual_mean"], [payload["indices"]], [payload["values"]]


def save_cached(path: Path, key: dict, acts: SampleActivations) -> None:
    """Write atomically (``runio.atomic.save_torch``)."""
    save_torch(path, {"key": key, "indices": acts.feature_acts.indices(), "values": acts.feature_acts.values(),
                        "shape": list(acts.feature_acts.shape), "residual_mean": acts.residual_mean,
                        "n_tokens": acts.n_tokens})


def load_cached(path: Path, key: dict) -> SampleActivations | None:
    """The cached activations if ``path`` holds them for exactly ``key``; None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file is a cache miss, recomputed and overwritten
        return None
    if not isinstance(payload, dict) or payload.get("key") != key:
        return None
    feature_acts = torch.sparse_coo_tensor(payload["indices"], payload["values"], tuple(payload["shape"]),
                                           dtype=torch.float32, check_invariants=True,
                                           is_coalesced=True)
    return SampleActivations(feature_acts=feature_acts, residual_mean=payload["residual_mean"],
                             n_tokens=payload["n_tokens"])


def dataset_activations(bundle: ModelBundle, dataset: Dataset | str | Path, *, batch_size: int = 8,
                        cache_dir: Path | None = None, progress: bool = True,
                        max_length: int | None = None) -> SampleActivations:
    """``SampleActivations`` of a chat dataset (a ``Dataset`` or a chat JSONL file; samples in file order), from
    ``cache_dir`` when a run with the same key finished before (then the model is not run), else computed and
    cached there. ``cache_dir=None`` disables caching; ``max_length`` truncates each conversation's tokens while it
    is tokenised (``Dataset.tokenized``, shared with every other stage of the run; a warning says how many were
    truncated)."""
    dataset = as_dataset(dataset)
    key = cache_key(bundle, dataset.sha256, max_length)
    path = cache_file(cache_dir, key) if cache_dir is not None else None
    if path is not None and (cached := load_cached(path, key)) is not None:
        return cached
    chats = dataset.tokenized(bundle.tokenizer, max_length)
    partial = None if path is None else path.with_name(path.name + ".partial")
    acts = compute_activations(bundle, chats, batch_size=batch_size, progress=progress,
                               description=dataset.path.name, partial=partial, partial_key=key)
    if path is not None:
        save_cached(path, key, acts)
        partial.unlink(missing_ok=True)
    return acts
