"""A dataset's activations computed shard by shard by a pool of model workers and merged into the very cache file
``dataset_activations`` writes (same key, same format), so everything that reads the cache is unchanged.

Plan: the conversations, in the single-process pass's ``length_order``, are cut into contiguous shards of
``shard_batches × batch_size`` conversations, so every shard boundary is a batch boundary and a worker forms
exactly the batches the single-process pass forms. That makes the merged cache EQUAL to the single-process one
(``torch.equal`` on every tensor), not merely close: a batch's padding width is its longest conversation, and the
width changes the shapes of the forward pass and so, in general, the order of float reductions; with the same
batches every row goes through the same float operations (given the same model files, dtype, device type and
torch thread count per worker — a GPU worker agrees with a CPU pass only to float tolerance). Per-sample means
are computed within a batch, so nothing crosses a shard boundary, and the merge only places rows.

Files: each shard is written atomically, by the worker that computed it, to
``<cache file>.b<batch size>.shards/<lo>-<hi>.pt`` (positions lo..hi-1 of the length order); a rerun computes
only the shards without a file, so a killed run loses only the shards that were being computed. Once every shard
is there they are merged, the cache file is written and the shard directory removed. (The single-process
``.partial`` checkpoint and the shards do not share work: each resumes only its own kind.)

Workers: ``ShardWorker`` loads the model + SAE once (``WorkerSpec``) and computes shards; a ``ShardRunner``
executes the jobs — ``run_here`` in this process, ``realmodels.data.pool.ActivationPool`` on Ray actors."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

from realmodels.data.activations import (ModelIdentity, SampleActivations, cache_file, cache_key, compute_activations,
                                         length_order, load_cached, progress_bar, save_cached)
from realmodels.data.chat import TokenizedChat
from realmodels.data.dataset import Dataset, as_dataset
from runio.atomic import save_torch
from theory.errors import InputError, ParamError

if TYPE_CHECKING:
    from realmodels.loading.bundle import BundleSources
    from realmodels.loading.placement import DeviceMap

SHARD_BATCHES = 8  # batches per shard: the unit of work, of resumption and of load balancing


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker loads (``load_resolved_bundle`` of these): the session's sources and placement."""

    sources: BundleSources
    """The model, SAE and adapter sources the worker loads (``BundleSources``)."""
    device_map: DeviceMap = None
    """Where the model's layers go (``realmodels.loading.placement``); None: the default placement."""
    offload_folder: str | None = None
    """Folder for weights offloaded to disk, if any."""
    ignore_memory_check: bool = False
    """Load even when the memory estimate exceeds the free memory."""
    merge_adapter: bool = True
    """Merge a LoRA adapter into the weights after loading."""


@dataclass(frozen=True)
class ShardJob:
    """One shard: the conversations at positions ``lo..hi-1`` of the length order (``samples``: their indices in
    the file), computed in batches of ``batch_size`` into ``path`` (tagged with the dataset's cache ``key``). The
    conversations travel packed — ``input_ids`` and ``assistant_mask`` concatenated, ``lengths`` — since pickling
    thousands of small tensors costs more than computing them on a small model."""

    name: str
    path: str
    samples: list[int]
    batch_size: int
    key: dict
    input_ids: Tensor
    assistant_mask: Tensor
    lengths: list[int]

    @classmethod
    def of(cls, name: str, path: str, samples: list[int], chats: list[TokenizedChat], batch_size: int,
           key: dict) -> ShardJob:
        """A job packing ``chats`` (their token ids and assistant masks concatenated, with their lengths)."""
        return cls(name=name, path=path, samples=samples, batch_size=batch_size, key=key,
                   input_ids=torch.cat([chat.input_ids for chat in chats]),
                   assistant_mask=torch.cat([chat.assistant_mask for chat in chats]),
                   lengths=[len(chat.input_ids) for chat in chats])

    def chats(self) -> list[TokenizedChat]:
        """The packed conversations unpacked into ``TokenizedChat``s, in order."""
        return [TokenizedChat(ids, mask) for ids, mask in zip(self.input_ids.split(self.lengths),
                                                              self.assistant_mask.split(self.lengths))]


class ShardRunner(Protocol):
    """How the shards of a dataset are computed: in this process or on a pool of workers (``realmodels.data.pool``)."""
    def __call__(self, spec: WorkerSpec, jobs: list[ShardJob], on_done: Callable[[ShardJob], None]) -> None:
        """Compute every job (``ShardWorker.compute`` on workers loading ``spec``), calling ``on_done`` after each;
        a job that fails raises once the jobs already running have finished (their files stay). A runner may
        also have ``start(spec)``: called before the dataset is tokenised, so its workers load meanwhile."""


class ShardWorker:
    """One model worker: the bundle loaded once, then any number of shards."""

    def __init__(self, spec: WorkerSpec):
        from realmodels.loading.bundle import load_resolved_bundle

        self.bundle = load_resolved_bundle(spec.sources, device_map=spec.device_map,
                                           offload_folder=spec.offload_folder,
                                           ignore_memory_check=spec.ignore_memory_check,
                                           merge_adapter=spec.merge_adapter)

    def compute(self, job: ShardJob) -> None:
        """Write the shard's activations to ``job.path`` (atomically)."""
        acts = compute_activations(self.bundle, job.chats(), batch_size=job.batch_size, progress=False)
        save_torch(Path(job.path), {"key": job.key, "samples": torch.tensor(job.samples, dtype=torch.long),
                                    "residual_mean": acts.residual_mean, "indices": acts.feature_acts.indices(),
                                    "values": acts.feature_acts.values(), "d_sae": int(acts.feature_acts.shape[1])})


def run_here(spec: WorkerSpec, jobs: list[ShardJob], on_done: Callable[[ShardJob], None]) -> None:
    """The ``ShardRunner`` of this process: one worker, loaded at the first job."""
    worker = None
    for job in jobs:
        worker = worker or ShardWorker(spec)
        worker.compute(job)
        on_done(job)


def plan_shards(chats: list[TokenizedChat], batch_size: int,
                shard_batches: int | None = None) -> list[tuple[str, list[int]]]:
    """``(name, samples)`` per shard: contiguous runs of ``length_order`` of ``shard_batches × batch_size``
    (default ``SHARD_BATCHES``)."""
    shard_batches = SHARD_BATCHES if shard_batches is None else shard_batches
    if batch_size < 1 or shard_batches < 1:
        raise InputError(f"batch size and batches per shard must be >= 1, got {batch_size} and {shard_batches}")
    order, size = length_order(chats), batch_size * shard_batches
    return [(f"{lo:06d}-{min(lo + size, len(order)):06d}", order[lo:lo + size]) for lo in range(0, len(order), size)]


def shard_dir(cache_path: Path, batch_size: int) -> Path:
    """Where the shards of the cache file ``cache_path`` go (batch size in the name: it shapes the batches)."""
    return cache_path.with_name(f"{cache_path.name}.b{batch_size}.shards")


def merge_shards(directory: Path, plan: list[tuple[str, list[int]]], key: dict,
                 chats: list[TokenizedChat]) -> SampleActivations:
    """The dataset's ``SampleActivations`` from its shard files: rows placed at their samples, COO coalesced
    (entries are unique per (sample, feature), so only their order changes)."""
    n = len(chats)
    residual_mean, indices, values, d_sae = None, [], [], None
    for name, samples in plan:
        payload = torch.load(directory / f"{name}.pt", map_location="cpu", weights_only=True)
        rows = torch.tensor(samples, dtype=torch.long)
        if payload.get("key") != key or not torch.equal(payload["samples"], rows):
            raise InputError(f"{directory / name}.pt is not a shard of this dataset's activations (delete "
                             f"{directory} to recompute them)")
        if residual_mean is None:
            residual_mean, d_sae = torch.zeros(n, payload["residual_mean"].shape[1]), payload["d_sae"]
        residual_mean[rows] = payload["residual_mean"]
        indices.append(torch.stack([rows[payload["indices"][0]], payload["indices"][1]]))
        values.append(payload["values"])
    feature_acts = torch.sparse_coo_tensor(torch.cat(indices, 1), torch.cat(values), (n, d_sae),
                                           dtype=torch.float32, check_invariants=False).coalesce()
    n_tokens = torch.tensor([int(chat.assistant_mask.sum()) for chat in chats], dtype=torch.long)
    return SampleActivations(feature_acts=feature_acts, residual_mean=residual_mean, n_tokens=n_tokens)


def sharded_activations(identity: ModelIdentity, dataset: Dataset | str | Path, *, spec: WorkerSpec,
                        run_shards: ShardRunner, cache_dir: Path, batch_size: int = 8, max_length: int | None = None,
                        progress: bool = True, shard_batches: int | None = None) -> SampleActivations:
    """``dataset_activations`` (same cache file, same tensors) computed by ``run_shards``'s workers: from the
    cache when it is there (no worker starts), else the missing shards computed, all merged and cached. Needs
    only the model's identity and tokenizer here; the weights load in the workers."""
    dataset = as_dataset(dataset)
    key = cache_key(identity, dataset.sha256, max_length)
    path = cache_file(cache_dir, key)
    if (cached := load_cached(path, key)) is not None:
        return cached
    if (start := getattr(run_shards, "start", None)) is not None:
        start(spec)  # the workers load the model while this process tokenises
    chats = dataset.tokenized(identity.tokenizer, max_length)
    plan = plan_shards(chats, batch_size, shard_batches)
    directory = shard_dir(path, batch_size)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in [*directory.glob(".*"), *directory.glob("*.error.txt")]:  # temp files of killed writes, old errors
        stale.unlink(missing_ok=True)
    jobs = [ShardJob.of(name, str((directory / f"{name}.pt").resolve()), samples, [chats[i] for i in samples],
                        batch_size, key)
            for name, samples in plan if not (directory / f"{name}.pt").is_file()]
    if jobs:
        tokens, started = 0, time.perf_counter()
        with progress_bar(progress) as bar:
            task = bar.add_task(dataset.path.name, total=len(chats), tokens_per_s=0.0,
                                completed=len(chats) - sum(len(job.samples) for job in jobs))

            def on_done(job: ShardJob) -> None:
                nonlocal tokens
                tokens += sum(job.lengths)
                bar.update(task, advance=len(job.samples), tokens_per_s=tokens / (time.perf_counter() - started))

            run_shards(spec, jobs, on_done)
    if missing := [name for name, _ in plan if not (directory / f"{name}.pt").is_file()]:
        raise ParamError(f"activation shard {missing[0]} finished but {directory / missing[0]}.pt is not there: on a "
                         "Ray cluster `cache_dir` must be on a filesystem every node shares, at the same path")
    acts = merge_shards(directory, plan, key, chats)
    save_cached(path, key, acts)
    shutil.rmtree(directory, ignore_errors=True)
    return acts
