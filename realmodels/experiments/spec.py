"""The two descriptions every runner takes besides its experiment's config: which model (``ModelSpec``) and how
to run (``RunOptions``). One definition each: the runners read them, the CLI generates its options from their
fields and docstrings (``cli.dataclass_options``), mitigate and the organism study pass them on.

Only part of a ``ModelSpec`` changes results and enters a run's config (``ModelChoice.to_config``: the model,
SAE, layer, dtype, chat template, ``max_length``, adapter); placement, batch size and memory check do not, nor
does anything in ``RunOptions``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.finetune.config import check_count
from runio import jobs
from theory.errors import ParamError

if TYPE_CHECKING:
    from realmodels.loading.plain import PlainModel
    from realmodels.loading.session import ModelChoice, Session

DEFAULT_CACHE = "activations"  # the activation cache below a run directory unless cache_dir says otherwise


@dataclass(frozen=True)
class ModelSpec:
    """Which model a runner uses: a registered ``checkpoint``, or a local/hub ``model`` (with a saved ``sae`` and
    its ``layer`` when the runner reads SAE features), or neither (the embedded model organism); plus an optional
    peft ``adapter`` and how the model is loaded and batched. Nothing is read until a runner opens it."""

    checkpoint: str | None = None
    """Registered checkpoint (see `realmodels checkpoints`)."""
    model: str | None = None
    """Local HF model directory, GGUF file, packaged offline model (see `realmodels models list`) or hub id
    (with --sae)."""
    sae: Path | None = None
    """SAE directory saved by sae-lens SAE.save_model."""
    layer: int | None = None
    """Layer whose resid_post the SAE reads (default: the checkpoint's only SAE layer)."""
    dtype: str = "auto"
    """Model weights: auto | float32 | bfloat16 | float16."""
    device_map: str | None = None
    """transformers/accelerate device_map: auto | balanced | balanced_low_0 | sequential | cpu, or a JSON file
    {module: device} (default: CPU). Disk offload goes to <cache-dir>/offload."""
    batch_size: int = 8
    """Conversations per forward pass."""
    chat_template: Path | None = None
    """Jinja chat template replacing the tokenizer's."""
    max_length: int | None = None
    """Tokens kept of each conversation, truncated while tokenising (a warning counts the truncated ones; one
    left without assistant tokens is an error) [default: the model's context, at most 2048]."""
    adapter: Path | None = None
    """peft adapter directory (or a `realmodels finetune` run directory): run on base model + adapter."""
    ignore_memory_check: bool = False
    """Load even if the RAM estimate exceeds what is available."""

    def __post_init__(self):
        check_count(self.batch_size, "batch_size")
        if self.max_length is not None:
            check_count(self.max_length, "max_length")
        if self.layer is not None:
            check_count(self.layer, "layer", minimum=0)

    def choice(self) -> ModelChoice:
        """The model + SAE this spec names (``realmodels.loading.session.ModelChoice``: the embedded organism
        when neither a checkpoint nor a model is given); checked, nothing read."""
        from realmodels.loading.session import ModelChoice

        return ModelChoice(checkpoint=self.checkpoint, model=self.model,
                           sae=None if self.sae is None else str(self.sae), layer=self.layer, dtype=self.dtype,
                           chat_template=None if self.chat_template is None else str(self.chat_template),
                           max_length=self.max_length, adapter=None if self.adapter is None else str(self.adapter))

    def plain(self) -> PlainModel:
        """The model alone (no SAE: ``sae`` and ``layer`` must be unset), resolved from files, nothing loaded."""
        from realmodels.loading.plain import PlainModel

        if self.sae is not None or self.layer is not None:
            raise ParamError("`sae` and `layer` are not used here (this model is used without an SAE)")
        return PlainModel.resolve(checkpoint=self.checkpoint, model=self.model, dtype=self.dtype,
                                  chat_template=self.chat_template, max_length=self.max_length,
                                  adapter=self.adapter, device_map=self.device_map)

    def without_sae(self) -> ModelSpec:
        """This spec with ``sae`` and ``layer`` unset (for a stage that needs the model alone)."""
        return replace(self, sae=None, layer=None)


@dataclass(frozen=True)
class RunOptions:
    """Where and how a runner runs; nothing here changes a result."""

    out: Path | None = None
    """Run directory (default runs/<command>-<timestamp>); rerun to resume."""
    cache_dir: Path | None = None
    """Activation cache (default: <out>/activations)."""
    threads: int = 1
    """Torch threads on CPU (results do not depend on it). 1 is the measured safe default: with another CPU-bound
    process on a 2-core box 2 threads ran 1.5-3.8x slower, while a quiet box gains at most 1.8x from a second
    (benchmarks/threads.py)."""
    progress: bool = True
    """Show progress bars."""
    workers: int = 1
    """Model workers computing the activations: 1 in this process, without Ray; N: N Ray actors (a local Ray
    started for the command), each loading the model once, on contiguous shards of each dataset, merged into the
    same cache (equal tensors)."""
    ray_address: str | None = None
    """Compute the activations on a running Ray cluster (auto, ray://HOST:PORT or HOST:PORT), --workers actors;
    shards and caches go under --cache-dir, which must then be on a filesystem every node shares."""
    num_gpus_per_worker: float = 0.0
    """GPUs each Ray worker of --workers/--ray-address reserves (fractions share a GPU; without --device-map a GPU
    worker places its model with auto on them). 0: CPU workers."""

    def __post_init__(self):
        for name in ("out", "cache_dir"):  # a str (as the docstring examples pass) is a path
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Path(value))
        jobs.check_threads(self.threads)  # before any heavy import, with the other option checks
        jobs.check_workers(self.workers)
        jobs.check_reachable(self.ray_address)
        from realmodels.data.pool import check_gpus

        check_gpus(self.num_gpus_per_worker)
        if self.num_gpus_per_worker > 0 and not self.on_ray:
            raise ParamError("`num_gpus_per_worker` is for Ray workers (`workers` > 1 or `ray_address`); in this "
                             "process the model goes where `device_map` puts it")

    @property
    def on_ray(self) -> bool:
        """Activations computed by Ray actors (``realmodels.data.pool``) rather than this process."""
        return self.workers > 1 or self.ray_address is not None

    def cache_path(self, run_path: Path) -> Path:
        """The activation cache directory: ``cache_dir`` when set, else ``DEFAULT_CACHE`` inside the run directory."""
        return self.cache_dir if self.cache_dir is not None else run_path / DEFAULT_CACHE

    def session(self, model: ModelSpec, run_path: Path, *, merge_adapter: bool = True,
                finetuned: str | Path | None = None) -> Session:
        """A ``Session`` on ``model`` (its adapter merged into the weights unless ``merge_adapter`` is False; with
        ``finetuned``, a full fine-tuned checkpoint of the same architecture, its weights in place of the model's:
        ``realmodels.loading.bundle.resolve_finetuned``);
        activations cached in ``cache_dir`` or the run's ``activations/``. Every model option is checked here (the
        device map and the adapter too), nothing is loaded. With ``workers`` > 1 or ``ray_address`` the
        activations are computed by Ray actors (started at the first dataset not cached, stopped by
        ``Session.close``)."""
        from realmodels.loading.session import Session

        pool = None
        if self.on_ray:
            from realmodels.data.pool import ActivationPool

            pool = ActivationPool(self.workers, self.ray_address, self.num_gpus_per_worker, self.threads)
        choice = model.choice()
        if finetuned is not None:
            choice = replace(choice, finetuned=str(finetuned))
        return Session(choice, device_map=model.device_map, batch_size=model.batch_size,
                       cache_dir=self.cache_path(run_path), progress=self.progress,
                       ignore_memory_check=model.ignore_memory_check, merge_adapter=merge_adapter, shard_runner=pool)
