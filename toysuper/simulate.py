"""The ``simulate`` experiment: pre-train the toy model, fine-tune it on a narrow task, and compare every
feature's measured amplification with the first-order prediction of theory.tied_model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from runio.atomic import nan_to_none
from toysuper.config import SimulateConfig
from toysuper.data import narrow_task, sparse_uniform
from toysuper.finetune import finetune
from toysuper.measure import Amplification, measure_amplification
from toysuper.model import ToyModel
from toysuper.train import TrainResult, train


@dataclass
class SimulateResult:
    """A simulate run: the model before and after fine-tuning, the amplification measured and predicted, the training
    record (None when reused from a run directory without one) and the config that ran."""
    before: ToyModel
    after: ToyModel
    amplification: Amplification
    train: TrainResult | None
    """None when reused from a run directory that did not store the training record."""
    config: SimulateConfig | None = None
    """What ran (explains undefined values in the summary)."""

    def summary(self) -> dict:
        """summary.json: agreement of prediction and measurement, the final training loss, the extreme features.
        Undefined values are None, and ``notes`` (present only then) says why."""
        table = self.amplification.table()
        cols = ["instance", "feature", "similarity", "predicted", "measured"]
        ranked = table.sort_values("measured", ascending=False)
        agreement = {key: nan_to_none(self.amplification.agreement(output=output).to_dict())
                     for key, output in (("agreement_preactivation", False), ("agreement_output", True))}
        summary = {
            **agreement,
            "target": self.amplification.target,
            "final_train_loss": None if self.train is None else self.train.final_loss,
            "top_amplified": ranked.head(10)[cols].to_dict("records"),
            "top_suppressed": ranked.tail(10).iloc[::-1][cols].to_dict("records"),
        }
        notes = self._notes(undefined_agreement=any(v is None for a in agreement.values() for v in a.values()))
        return {**summary, "notes": notes} if notes else summary

    def _notes(self, *, undefined_agreement: bool) -> list[str]:
        notes = []
        if self.train is not None and self.train.final_loss is None:
            notes.append("train.steps = 0: the model was not trained, so final_train_loss is null")
        if undefined_agreement:
            cause = ("finetune.steps = 0: fine-tuning changed nothing"
                     if self.config is not None and self.config.finetune.steps == 0
                     else "the measured or predicted changes are constant")
            notes.append(f"{cause}, so the agreement statistics that need variation (slope, R², correlations, "
                         "relative errors) are undefined: null")
        return notes


def task_and_probe(config: SimulateConfig, probability: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The fine-tuning set T and the broad probe set (drawn from the pre-training distribution), seeded."""
    ft, n = config.finetune, config.model.n_features
    gen = torch.Generator().manual_seed(ft.seed)
    task_x = narrow_task(config.model.n_instances, ft.n_samples, n, ft.target, magnitude_min=ft.target_magnitude_min,
                         background=ft.background_probability, generator=gen)
    probe_x = sparse_uniform(probability, ft.n_probe, n, generator=gen)
    return task_x, probe_x


def simulate(config: SimulateConfig, *, trained: ToyModel | None = None,
             progress: Callable[[int, torch.Tensor | None], None] | None = None) -> SimulateResult:
    """Run the whole experiment (training is skipped when ``trained`` is given)."""
    result = None
    if trained is None:
        result = train(config.model, config.train, progress=progress)
        trained = result.model
    task_x, probe_x = task_and_probe(config, trained.probability)
    after = finetune(trained, task_x, config.finetune)
    amp = measure_amplification(trained, after, task_x, probe_x, config.finetune)
    return SimulateResult(before=trained, after=after, amplification=amp, train=result, config=config)
