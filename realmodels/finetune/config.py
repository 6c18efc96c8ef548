"""The configs of ``realmodels finetune``, frozen and validated in ``__post_init__`` (InputError, one line), kept
free of torch so the CLI checks them before anything heavy loads: ``FinetuneConfig`` (the recipe), its presets
(``PRESETS``), ``MonitorConfig`` (the training-time SAE monitor and its alarm), ``GuardConfig`` (the
geometric guard) and ``DefenceConfig`` (the in-training defences: CAFT, preventative steering, KL to the base).

Presets (each key overridable by a flag or a TOML table ``[finetune]``):

- ``em-betley``: the LoRA recipe of Betley et al. 2025 / Turner et al. 2025: r 32, α 64, rsLoRA, dropout 0,
  q/k/v/o/gate/up/down projections of every layer, lr 1e-5, 1 epoch, linear schedule, 5 warm-up steps,
  per-device batch 2 × gradient accumulation 8, weight decay 0.01, seed 0 (their optimiser is 8-bit AdamW;
  here ``adamw_torch``, which runs everywhere; ``--optimizer adamw_8bit`` where bitsandbytes is installed);
- ``em-rank1``: one rank-1 adapter on a single layer's ``down_proj`` (``lora_layers``, one layer), r 1, α 512
  with rsLoRA, lr 2e-5, a checkpoint every 100 steps (the model-organisms recipe of Turner et al. 2025 for
  studying the phase transition); the rest as ``em-betley``;
- ``full``: every weight trained (small models), lr 1e-5; the rest as ``em-betley``.

Every value is checked finite and in range (lr in (0, 1], epochs ≤ 1e4, α in (0, 1e6], r ≤ 65536, weight decay in
[0, 1], seed in [0, ``2**32 - 1``], counts ≤ ``2**31 - 1``, a guard weight ≤ 1e6, |alarm| ≤ 1e6, an optimizer
transformers knows): a value
past these bounds fails later (overflow, a non-finite loss) or runs for ever, so it is refused before anything loads.
Messages name the fields in backticks (``theory.errors.ParamError``); ``check_count`` is the one count check, which
the command-line options use too."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from theory.configs import check_choice, merge, strict_from_dict
from theory.errors import InputError, ParamError

Method = Literal["lora", "full"]
Schedule = Literal["linear", "cosine", "constant", "constant_with_warmup"]
AlarmAction = Literal["stop", "warn"]
GuardKind = Literal["penalty", "projection", "both", "rise"]
CaftMode = Literal["none", "direction", "features"]
ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


MAX_COUNT = 2**31 - 1  # steps, batches, ranks, layers: the largest a count may be (torch and the Trainer use int32)
MAX_SEED = 2**32 - 1  # numpy's and torch's seed range is [0, 2**32 - 1]
MAX_LR, MAX_EPOCHS, MAX_ALPHA, MAX_RANK, MAX_GUARD_WEIGHT = 1.0, 1e4, 1e6, 65536, 1e6
MAX_STEER_ALPHA, MAX_KL_WEIGHT = 1e6, 1e6
MAX_ALARM = 1e6  # |alarm| on the ratio of rises; beyond it never fires, and the monitor figure cannot draw its line


def _positive(value, what: str, maximum: float = math.inf) -> None:
    """ParamError unless ``value`` is a finite number in (0, ``maximum``]."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 < value <= maximum):
        bound = "" if math.isinf(maximum) else f" at most {maximum:g}"
        raise ParamError(f"{what} must be a positive finite number{bound}, got {value}")


def _in_range(value, what: str, low: float, high: float) -> None:
    """ParamError unless ``value`` is a finite number in [``low``, ``high``] (``what``: a backticked parameter
    or words)."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and low <= value <= high):
        raise ParamError(f"{what} must be a finite number in [{low:g}, {high:g}], got {value}")


def check_count(value, param: str, minimum: int = 1, maximum: int = MAX_COUNT, *, hint: str = "") -> None:
    """The one count check (of configs and command-line options): a ``ParamError`` naming ``param`` in backticks
    unless ``value`` is an integer (not a bool) in [``minimum``, ``maximum``]; ``hint`` (another accepted value)
    is added in parentheses."""
    note = f" ({hint})" if hint else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamError(f"`{param}` must be an integer{note}, got {value!r}")
    if value < minimum:
        raise ParamError(f"`{param}` must be at least {minimum}{note}, got {value}")
    if value > maximum:
        raise ParamError(f"`{param}` must be at most {maximum}{note}, got {value}")


@lru_cache(maxsize=1)
def optimizer_names() -> tuple[str, ...]:
    """The values of transformers' ``OptimizerNames`` (``TrainingArguments.optim``), read from its source file
    without importing it (importing transformers.training_args imports torch: seconds)."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("transformers")
    source = Path(spec.origin).parent / "training_args.py" if spec and spec.origin else None
    if source is not None and source.is_file():
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and node.name == "OptimizerNames":
                return tuple(s.value.value for s in node.body if isinstance(s, ast.Assign)
                             and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))
    from transformers.training_args import OptimizerNames  # a layout this parser does not know: import it

    return tuple(name.value for name in OptimizerNames)


@dataclass(frozen=True)
class FinetuneConfig:
    """A supervised fine-tuning recipe (loss on assistant tokens only)."""

    preset: str = "em-betley"
    """the preset these values started from (see the module docstring)"""
    method: Method = "lora"
    """lora (peft adapters) or full (every weight)"""
    r: int = 32
    """LoRA rank"""
    alpha: float = 64.0
    """LoRA α; the update is scaled by α/r, or α/√r with rsLoRA"""
    rslora: bool = True
    """rank-stabilised LoRA scaling α/√r"""
    dropout: float = 0.0
    """LoRA dropout"""
    target_modules: tuple[str, ...] = ALL_PROJECTIONS
    """module names that get adapters"""
    lora_layers: tuple[int, ...] | None = None
    """decoder layers that get adapters (None: every layer)"""
    lr: float = 1e-5
    """peak learning rate"""
    epochs: float = 1.0
    """passes over the data (ignored when max_steps > 0)"""
    max_steps: int = -1
    """optimiser steps to run (-1: as many as the epochs take)"""
    schedule: Schedule = "linear"
    """learning-rate schedule after the warm-up"""
    warmup_steps: int = 5
    """linear warm-up steps"""
    batch_size: int = 2
    """conversations per device per forward pass"""
    grad_accum: int = 8
    """forward passes per optimiser step (effective batch = batch_size × grad_accum × devices)"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    max_grad_norm: float = 1.0
    """gradient clipping (0: none)"""
    optimizer: str = "adamw_torch"
    """a transformers optimizer name (TrainingArguments.optim)"""
    seed: int = 0
    """seed of the adapter initialisation, the data order and dropout"""
    save_steps: int = 100
    """optimiser steps between checkpoints (a killed run resumes from the last one)"""
    logging_steps: int = 1
    """optimiser steps between rows of train_log.csv"""

    def __post_init__(self):
        check_choice(self.method, Method, "fine-tuning method")
        check_choice(self.schedule, Schedule, "learning-rate schedule")
        _positive(self.lr, "the learning rate (lr)", MAX_LR)
        _positive(self.epochs, "epochs", MAX_EPOCHS)
        check_count(self.r, "r", maximum=MAX_RANK)
        for key in ("batch_size", "grad_accum", "save_steps", "logging_steps"):
            check_count(getattr(self, key), key)
        if self.max_steps != -1:
            check_count(self.max_steps, "max_steps", hint="or -1: use the epochs")
        check_count(self.warmup_steps, "warmup_steps", minimum=0)
        check_count(self.seed, "seed", minimum=0, maximum=MAX_SEED)
        _positive(self.alpha, "LoRA alpha", MAX_ALPHA)
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise InputError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        _in_range(self.weight_decay, "weight_decay", 0.0, 1.0)
        _in_range(self.max_grad_norm, "max_grad_norm (0: no clipping)", 0.0, math.inf)
        if self.optimizer not in optimizer_names():
            raise InputError(f"unknown optimizer {self.optimizer!r} (transformers' TrainingArguments.optim names: "
                             f"{', '.join(optimizer_names())})")
        if self.method == "lora" and not self.target_modules:
            raise InputError("target_modules is empty: name the modules that get adapters")
        for layer in self.lora_layers or ():
            check_count(layer, "lora_layers", minimum=0)
        if self.preset == "em-rank1" and (self.lora_layers is None or len(self.lora_layers) != 1):
            raise ParamError("the em-rank1 preset puts one adapter on one layer: give exactly one `lora_layers`")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> FinetuneConfig:
        """The recipe of preset ``name`` (``PRESETS``) with ``overrides`` (keyword = field; None keeps the preset's
        value): ``FinetuneConfig.from_preset("em-rank1", lora_layers=(1,), max_steps=50)``. Unknown presets,
        unknown keys and wrong types are InputErrors (``preset_recipe``)."""
        return preset_recipe(name, overrides)


@dataclass(frozen=True)
class MonitorConfig:
    """The training-time monitor: SAE feature means on a fixed probe set every ``every`` steps.

    Rise of a feature set S at step s: ρ_S(s) = mean_{j∈S} [μ_j(s) − μ_j(0)], μ_j the mean activation of
    feature j over the probes' assistant tokens. The alarm compares ρ_harmful(s) / ρ_targets(s) — the harmful
    features' rise in units of the rise of the features tied to the training data — with ``alarm``."""

    every: int = 10
    """optimiser steps between monitor rows (and one row before training)"""
    k: int = 20
    """features tied to the training data (top-k against the control data)"""
    harmful_k: int = 20
    """harmful-behaviour features (top-k of harmful vs harmless responses)"""
    top_movers: int = 10
    """features with the largest |rise| listed on each row"""
    probe_fraction: float = 0.1
    """share of the training data held out as probes when no --probe file is given"""
    max_probes: int = 32
    """at most this many held-out probes (each monitor row runs them to the SAE's layer: the cost of a row is
    about max_probes · (layer + 1) / n_layers forward passes, against 3 · every · batch · accumulation for the
    training between rows)"""
    alarm: float | None = None
    """alarm threshold on ρ_harmful / ρ_targets (None: no alarm)"""
    alarm_action: AlarmAction = "stop"
    """stop the run (after saving a checkpoint) or only warn"""
    min_target_rise: float = 1e-6
    """the ratio is not computed (no alarm) while the targets' rise is below this"""

    def __post_init__(self):
        for key in ("every", "k", "harmful_k", "top_movers", "max_probes"):
            check_count(getattr(self, key), key)
        if not 0.0 < self.probe_fraction < 1.0:
            raise InputError(f"probe_fraction must be in (0, 1), got {self.probe_fraction}")
        if self.alarm is not None:
            _in_range(self.alarm, "`alarm`", -MAX_ALARM, MAX_ALARM)
        check_choice(self.alarm_action, AlarmAction, "alarm action")
        _in_range(self.min_target_rise, "min_target_rise", 0.0, math.inf)


@dataclass(frozen=True)
class GuardConfig:
    """The geometric guard on the harmful SAE features H at the SAE's layer (``realmodels.finetune.guard``)."""

    kind: GuardKind = "penalty"
    """penalty (λ · mean squared change of the harmful pre-activations), projection (the residual update projected
    off span{d_h}), both, or rise (λ · mean squared rise: only rises penalised)"""
    weight: float = 1.0
    """λ of the penalty"""
    harmful_k: int = 20
    """harmful-behaviour features guarded"""

    def __post_init__(self):
        check_choice(self.kind, GuardKind, "guard")
        _in_range(self.weight, "guard weight", 0.0, MAX_GUARD_WEIGHT)
        check_count(self.harmful_k, "harmful_k")


@dataclass(frozen=True)
class DefenceConfig:
    """The in-training defences (``realmodels.finetune.defences``): each acts only in the training forward pass
    (or loss); the saved adapter or model runs without them."""

    caft: CaftMode = "none"
    """concept-ablation fine-tuning: none, direction (the direction file's line projected out of its layer's
    residual, h ← h − (h·û)û) or features (the span S of the harmful SAE features' decoder rows projected out
    at the SAE's layer, h ← h − P_S h)"""
    direction: Path | None = None
    """direction file (JSON: layer, d_model, vector, note) read by caft = direction and by steering"""
    steer_alpha: float = 0.0
    """preventative steering: h ← h + α û at the direction's layer while training (needs the direction)"""
    kl_weight: float = 0.0
    """λ of the KL-to-base penalty λ · mean over assistant tokens of KL(p_base ‖ p_θ) (0: none)"""
    harmful_k: int = 20
    """harmful features whose decoder span caft = features projects out"""

    def __post_init__(self):
        check_choice(self.caft, CaftMode, "caft mode")
        if isinstance(self.direction, str):
            object.__setattr__(self, "direction", Path(self.direction))
        if self.direction is not None and not isinstance(self.direction, Path):
            raise ParamError(f"`direction` must be a path to a direction file, got {self.direction!r}")
        _in_range(self.steer_alpha, "`steer_alpha`", -MAX_STEER_ALPHA, MAX_STEER_ALPHA)
        _in_range(self.kl_weight, "`kl_weight`", 0.0, MAX_KL_WEIGHT)
        check_count(self.harmful_k, "harmful_k")
        if self.direction is None and (self.caft == "direction" or self.steer_alpha != 0):
            raise ParamError("`caft` direction and `steer_alpha` need a `direction` file")
        if self.caft == "direction" and self.steer_alpha != 0:
            raise ParamError("`caft` direction and `steer_alpha` would project out the line they steer along: "
                             "choose one")

    @property
    def steers(self) -> bool:
        """Steering is on: a direction given and not used by caft (α may be 0: then a no-op hook)."""
        return self.direction is not None and self.caft != "direction"


PRESETS: dict[str, dict] = {  # preset -> the FinetuneConfig values it changes from the defaults (em-betley)
    "em-betley": {"preset": "em-betley"},
    "em-rank1": {"preset": "em-rank1", "r": 1, "alpha": 512.0, "rslora": True, "target_modules": ("down_proj",),
                 "lr": 2e-5, "save_steps": 100},
    "full": {"preset": "full", "method": "full", "lr": 1e-5},
}


def preset_recipe(name: str, overrides: dict, *, prefix: str = "") -> FinetuneConfig:
    """The defaults <- preset ``name``'s values <- ``overrides`` (None values ignored; lists accepted for tuples),
    built strictly (``theory.configs.strict_from_dict``: an unknown key or a wrong type is an InputError naming
    ``prefix`` + the key)."""
    return strict_from_dict(FinetuneConfig, merge(merge(asdict(FinetuneConfig()), preset_table(name)), overrides),
                            prefix=prefix)


def preset_table(name: str) -> dict:
    """The values preset ``name`` sets (an InputError listing the presets for an unknown name)."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r} (choose {', '.join(PRESETS)})")
    return dict(PRESETS[name])
