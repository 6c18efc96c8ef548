"""``realmodels finetune`` as one function: tokenise, hold out the monitor's probes, pick the monitored and
guarded SAE features on the base model, build the monitor, the guard's cached pass and the defences' state, make
the model trainable, train (resuming), and write the figures and the summary.

Order (bad input before weights): the recipe's targets are checked against the architecture on the meta
device (``lora.check_targets``) and every conversation is tokenised before the model loads; the SAE (and the
harmful / control data) are needed only with the monitor, the guard or CAFT on the harmful features."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from realmodels.finetune.config import DefenceConfig, FinetuneConfig, GuardConfig, MonitorConfig
from realmodels.data.dataset import Dataset, as_dataset
from realmodels.finetune.data import SftDataset, end_of_turn_ids, holdout_split
from theory.errors import ParamError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, TrainerCallback

    from realmodels.analysis.configs import Criterion
    from realmodels.loading.session import Session


@dataclass(frozen=True)
class FeatureData:
    """The chat datasets (opened ``Dataset``s, or JSONL files) that define the monitored / guarded features: harmful
    vs harmless responses (the harmful features) and the control the training data is contrasted with (its target
    features)."""

    harmful: Dataset | Path
    harmless: Dataset | Path
    control: Dataset | Path
    criterion: Criterion = "mean_diff"


@dataclass
class Prepared:
    """Everything tokenised and checked before the model loads."""

    train: list
    probes: list
    n_conversations: int
    n_truncated: int


def prepare_data(tokenizer: PreTrainedTokenizerBase, data: Dataset | Path, *, max_length: int,
                 probe: Dataset | Path | None, monitor: MonitorConfig | None, seed: int) -> Prepared:
    """The training data (and the probe file) tokenised (``Dataset.tokenized``: once per run, shared with the
    input check); without a probe file the monitor holds out ``probe_fraction`` of the training conversations
    (not trained on)."""
    chats = as_dataset(data).tokenized(tokenizer, max_length)
    probes: list = []
    train = chats
    if monitor is not None:
        if probe is not None:
            probes = as_dataset(probe).tokenized(tokenizer, max_length)
        else:
            keep, held = holdout_split(len(chats), monitor.probe_fraction, seed=seed, max_out=monitor.max_probes)
            train, probes = [chats[i] for i in keep], [chats[i] for i in held]
    return Prepared(train=train, probes=probes, n_conversations=len(chats),
                    n_truncated=sum(chat.truncated for chat in chats))


def feature_sets(session: Session, data: Dataset | Path, features: FeatureData, *, k: int,
                 harmful_k: int) -> tuple[list, list]:
    """(harmful features, target features) on the base model: top ``harmful_k`` of harmful vs harmless, top
    ``k`` of the training data vs the control (``realmodels.analysis.features``)."""
    from realmodels.analysis.features import dataset_features, harmful_features

    harmful = harmful_features(session.activations(features.harmful), session.activations(features.harmless),
                               harmful_k, features.criterion)
    targets = dataset_features(session.activations(data), session.activations(features.control), k,
                               features.criterion, names=("the training data", "the control"))
    return harmful.tolist(), targets.tolist()


def finetune_pipeline(*, model, tokenizer, session: Session | None, data: Dataset | Path, cfg: FinetuneConfig,
                      out: Path, prepared: Prepared, monitor: MonitorConfig | None = None,
                      guard: GuardConfig | None = None, features: FeatureData | None = None, batch_size: int = 8,
                      progress: bool = True, log: Callable[[str], None] = print,
                      callbacks: Sequence[TrainerCallback] = (), drawn: dict | None = None,
                      defence: DefenceConfig | None = None, direction=None) -> dict:
    """Train and return the run's summary (module docstring). ``model`` is the loaded base model (the
    session's bundle model when ``session`` is given: the monitor and the guard read its SAE). ``data`` and the
    ``features``' datasets are read by the session as given (an opened ``Dataset`` keeps its tokenisation).
    ``drawn``, when given, receives the figures drawn (name -> matplotlib Figure). ``defence`` (with ``direction``,
    its loaded ``realmodels.analysis.direction.Direction`` when the config names one) edits the training forward
    passes and loss (``realmodels.finetune.defences``)."""
    from realmodels.finetune.lora import make_trainable
    from realmodels.finetune.plotting import loss_figure, monitor_figure
    from realmodels.finetune.train import run_training
    from runio.atomic import save_figure

    caft_features = defence is not None and defence.caft == "features"
    if (monitor is not None or guard is not None or caft_features) and (session is None or features is None):
        raise ParamError("the monitor, the guard and `caft` features need a `session` (its SAE) and `features` (the "
                         "harmful/harmless data)")
    if defence is not None and defence.direction is not None and direction is None:
        raise ParamError("the defence names a `direction` file: pass its loaded `direction`")
    extra_callbacks = list(callbacks)
    watcher = None
    guard_state = defence_state = caft_basis = None
    extras = None
    summary: dict = {}
    if session is not None and features is not None:
        k = monitor.k if monitor is not None else 1
        harmful_k = max(monitor.harmful_k if monitor is not None else 1, guard.harmful_k if guard is not None else 1,
                        defence.harmful_k if caft_features else 1)
        harmful, targets = feature_sets(session, data, features, k=k, harmful_k=harmful_k)
        summary["features"] = {"harmful": harmful, "targets": targets if monitor is not None else None}
        if monitor is not None:
            from realmodels.finetune.monitor import Monitor, MonitorSets

            watcher = Monitor(session.bundle, prepared.probes, MonitorSets(harmful=harmful[:monitor.harmful_k],
                                                                           targets=targets), monitor, out,
                              batch_size=batch_size, warn=log)
            extra_callbacks.append(watcher)
        if guard is not None:
            from realmodels.finetune.guard import GuardState, guard_cache

            guard_state = GuardState.build(session.bundle, harmful[:guard.harmful_k], guard)
            extras = guard_cache(session.bundle, guard_state, prepared.train, batch_size=batch_size)
        if caft_features:
            from theory.regularise import span_basis

            index = harmful[:defence.harmful_k]
            caft_basis = span_basis(session.bundle.sae.W_dec.detach()[index].float())
    if defence is not None:
        from realmodels.finetune.defences import DefenceState

        defence_state = DefenceState.build(defence, base_model=model, full=cfg.method == "full", direction=direction,
                                           caft_basis=caft_basis,
                                           caft_layer=session.bundle.layer if caft_features else None)
    trainable = make_trainable(model, cfg)
    n_trainable = sum(p.numel() for p in trainable.parameters() if p.requires_grad)
    result = run_training(trainable, tokenizer, SftDataset(prepared.train, extras, end_ids=end_of_turn_ids(tokenizer)), cfg, out,
                          callbacks=extra_callbacks, guard=guard_state, defence=defence_state, progress=progress)
    from realmodels.finetune.train import TRAIN_LOG

    drawn = {} if drawn is None else drawn
    drawn["loss"] = loss_figure(out / TRAIN_LOG)
    save_figure(drawn["loss"], out / "loss")
    summary.update({
        "steps": result.steps, "max_steps": result.max_steps, "resumed_from": result.resumed_from,
        "stopped_early": result.stopped_early, "final_loss": result.final_loss, "output": str(result.output),
        "n_train": len(prepared.train), "n_probes": len(prepared.probes), "n_truncated": prepared.n_truncated,
        "trainable_parameters": int(n_trainable), "recipe": asdict(cfg),
    })
    if watcher is not None:
        from realmodels.finetune.monitor import MONITOR

        drawn["monitor"] = monitor_figure(out / MONITOR, alarm=monitor.alarm)
        save_figure(drawn["monitor"], out / "monitor")
        summary["monitor"] = watcher.summary()
    if guard_state is not None:
        summary["guard"] = {**asdict(guard), "rank": int(guard_state.basis.shape[1]),
                            "cached_tokens": int(np.sum([len(c.input_ids) for c in prepared.train]))}
    if defence_state is not None:
        summary["defence"] = {**asdict(defence), "direction": None if defence.direction is None else
                              str(defence.direction), "edits": [layer for layer, _ in defence_state.edits],
                              **({"caft_rank": int(caft_basis.shape[1])} if caft_basis is not None else {})}
    return summary
