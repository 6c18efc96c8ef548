"""``run_finetune``: supervised fine-tuning (loss on assistant tokens only) with a recipe (``FinetuneConfig``, LoRA
or full) on the transformers ``Trainer`` with peft adapters, optionally with the training-time SAE monitor, the
geometric guard and the in-training defences (CAFT, preventative steering, KL to the base: ``realmodels.finetune``).

Bad input is cheap: every dataset line is read, the model's config and the SAE's cfg.json are checked, every
conversation is tokenised (once: the same tokenisation is trained on and read by the monitor's features) and the
adapter targets are checked on a meta-device copy of the architecture, a defence's direction file is read and
checked against the model's config.json (layer, width) — all before any weights load.

Example (the embedded model organism, a few steps of the em-betley LoRA recipe)::

    from realmodels.experiments import RunOptions, run_finetune
    from realmodels.finetune.config import FinetuneConfig, MonitorConfig

    result = run_finetune("world/inducing_health.jsonl",
                          recipe=FinetuneConfig.from_preset("em-betley", max_steps=20, lr=1e-4),
                          monitor=MonitorConfig(every=5), harmful="world/harmful.jsonl",
                          harmless="world/harmless.jsonl", options=RunOptions(out="runs/finetune", progress=False))
    result.adapter, result.table("train_log"), result.summary["monitor"]["ratio"]
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from realmodels.data.dataset import Dataset, Datasets
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import SUMMARY, Log, finished_summary, release_unfinished, resolved
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.finetune.config import DefenceConfig, FinetuneConfig, GuardConfig, MonitorConfig
from realmodels.loading.adapters import RUN_ADAPTER, RUN_FULL_MODEL
from runio.atomic import read_json, write_json
from realmodels.data.jsonl import dataset_hash
from runio.console import console
from runio.jobs import set_threads
from runio.rundir import CONFIG_NAME, RunDir, default_run_dir
from theory.errors import ParamError

Data = Dataset | str | Path


class FinetuneResult(RunResult):
    """``train_log`` (one row per logged optimiser step), with the monitor ``monitor`` (one row per monitored step);
    figures ``loss`` (and ``monitor``); ``adapter``: the trained adapter (or full model) directory. The summary
    holds the steps, the final loss, the recipe and the monitor's and guard's outcomes."""

    TABLES = ("train_log", "monitor")
    FIGURES = ("loss", "monitor")
    FILES = ("monitor_features.csv",)

    @property
    def adapter(self) -> Path:
        """The peft adapter directory (``adapter/``), or ``model/`` for full fine-tuning."""
        return self.path / (RUN_ADAPTER if self.summary["recipe"]["method"] == "lora" else RUN_FULL_MODEL)


def _check_exists(data: Data, role: str) -> None:
    """A file given by path must exist (``Dataset.open``'s message), before any of its lines are read."""
    if not isinstance(data, Dataset) and not Path(data).expanduser().is_file():
        raise ParamError(f"{role} dataset {Path(data).expanduser()} does not exist or is not a file")


def _check_use(model: ModelSpec, options: RunOptions, monitor, probe) -> None:
    """What fine-tuning does not use: an adapter to start from, Ray workers, probes without the monitor."""
    if probe is not None and monitor is None:
        raise ParamError("`probe` needs `monitor`")
    if model.adapter is not None:
        raise ParamError("`adapter` is not used by fine-tuning (it trains the base model)")
    if options.on_ray:  # (RunOptions refuses GPUs per worker without workers)
        raise ParamError("`workers` and `ray_address` are not used by fine-tuning (it trains in this process)")


def _defence_config(defence: DefenceConfig) -> dict:
    """What a run's config records of ``defence``: its fields, the direction file as path and sha256."""
    direction = None if defence.direction is None else {
        "path": str(Path(defence.direction).expanduser().resolve()),
        "sha256": dataset_hash(Path(defence.direction).expanduser())}
    return {**asdict(defence), "direction": direction}


def run_finetune(data: Data, *, recipe: FinetuneConfig = FinetuneConfig(), monitor: MonitorConfig | None = None,
                 guard: GuardConfig | None = None, harmful: Data | None = None, harmless: Data | None = None,
                 control: Data | None = None, probe: Data | None = None, model: ModelSpec = ModelSpec(),
                 options: RunOptions = RunOptions(), log: Log = console.print,
                 defence: DefenceConfig | None = None) -> FinetuneResult:
    """Fine-tune ``model`` on the chat dataset ``data`` with ``recipe`` in the resumable run directory
    ``options.out`` (default runs/finetune-<timestamp>). The ``monitor`` (SAE feature drift on probes: ``probe``,
    else held-out training conversations) and the ``guard`` need the SAE and ``harmful`` + ``harmless`` (the
    harmful features); the training data's features are contrasted with ``control`` (default ``harmless``).
    ``defence`` (``DefenceConfig``) adds the in-training defences; ``caft`` features needs the SAE and ``harmful`` +
    ``harmless`` too. A finished run is returned as it is (``already_finished``)."""
    _check_use(model, options, monitor, probe)
    datasets = Datasets()
    train = datasets.open(data, "`data`")
    entries = {"train": train.entry()}
    features = probe_set = None
    caft_features = defence is not None and defence.caft == "features"
    direction = None
    if defence is not None and defence.direction is not None:
        from realmodels.analysis.direction import load_direction

        direction = load_direction(defence.direction)
    if monitor is not None or guard is not None or caft_features:
        from realmodels.finetune.pipeline import FeatureData

        if harmful is None or harmless is None:
            raise ParamError("`harmful` and `harmless` chat JSONL files are required (the monitor, the guard and "
                             "`caft` features use the harmful features)")
        for given, role in ((harmful, "`harmful`"), (harmless, "`harmless`"), (control, "`control`")):
            if given is not None:
                _check_exists(given, role)
        harmful_set, harmless_set = datasets.open(harmful, "`harmful`"), datasets.open(harmless, "`harmless`")
        control_set = datasets.open(control, "`control`") if control is not None else harmless_set
        features = FeatureData(harmful=harmful_set, harmless=harmless_set, control=control_set)
        entries.update({"harmful": harmful_set.entry(), "harmless": harmless_set.entry(),
                        "control": control_set.entry()})
        if probe is not None:
            probe_set = datasets.open(probe, "`probe`")
            entries["probe"] = probe_set.entry()
    elif harmful is not None or harmless is not None or control is not None:
        raise ParamError("`harmful`, `harmless` and `control` are used by `monitor`, `guard` or `caft` features only")

    path = Path(options.out) if options.out is not None else default_run_dir(prefix="finetune-")
    from realmodels.finetune.source import TrainingModel

    source = TrainingModel.from_spec(model, options, path, needs_sae=features is not None)
    if direction is not None:
        from realmodels.analysis.direction import check_direction_shape

        check_direction_shape(direction, Path(defence.direction).expanduser(), source.shape(), source.name)
    run_config = resolved({"command": "finetune", "model": source.to_config(), "data": entries,
                           "finetune": asdict(recipe), "monitor": None if monitor is None else asdict(monitor),
                           "guard": None if guard is None else asdict(guard),
                           **({} if defence is None else {"defence": _defence_config(defence)})})  # only when given

    release_unfinished(path, run_config, options.cache_path(path), log=log)  # a run that never trained locks nothing
    if (path / CONFIG_NAME).is_file():  # (a directory holding another run's config is refused by RunDir.open)
        finished = RunDir.open(path, run_config)
        if (summary := finished_summary(finished, log)) is not None:
            return FinetuneResult(finished.path, summary, already_finished=True)

    set_threads(options.threads)
    from realmodels.finetune.lora import check_targets
    from realmodels.finetune.pipeline import finetune_pipeline, prepare_data

    prepared = prepare_data(source.tokenizer, train, max_length=source.max_length, probe=probe_set, monitor=monitor,
                            seed=recipe.seed)
    check_targets(source.config(), recipe, source.name)
    run = RunDir.open(path, run_config)
    drawn: dict = {}
    summary = finetune_pipeline(model=source.model, tokenizer=source.tokenizer, session=source.session, data=train,
                                cfg=recipe, out=run.path, prepared=prepared, monitor=monitor, guard=guard,
                                features=features, batch_size=model.batch_size, progress=options.progress,
                                log=lambda message: log(f"[yellow]{message}[/]"), drawn=drawn, defence=defence,
                                direction=direction)
    write_json(run.file(SUMMARY), summary)
    return FinetuneResult(run.path, read_json(run.file(SUMMARY)), already_finished=False, drawn=drawn)  # as saved
