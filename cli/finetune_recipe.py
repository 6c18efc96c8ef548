"""``realmodels finetune``'s recipe as the command line gives it: the preset, the ``--config`` TOML's
``[finetune]``, ``[monitor]``, ``[guard]`` and ``[defence]`` tables and the flags, resolved into ``FinetuneConfig``,
``MonitorConfig``, ``GuardConfig`` and ``DefenceConfig`` (defaults <- preset <- TOML <- flags; ``realmodels
mitigate`` checks every arm's recipe with ``check_recipe``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from cli.configfile import config_table, read_toml, resolve_config
from cli.errors import flag
from realmodels.finetune.config import (DefenceConfig, FinetuneConfig, GuardConfig, MonitorConfig, preset_recipe,
                                        preset_table)
from theory.configs import merge
from theory.errors import InputError, ParamError

TOML_KEYS = ("finetune", "monitor", "guard", "defence")
RECIPE_FLAGS = {"lora_layers": "--lora-layer", "batch_size": "--train-batch-size"}
"""The recipe fields whose flags are spelled differently (``batch_size`` is also the model's ``--batch-size``)."""


def read_finetune_toml(config: Path | None) -> dict:
    """The ``--config`` TOML of ``finetune`` ({} for None): only the tables ``TOML_KEYS``, each a table."""
    file_cfg = read_toml(config)
    unknown = sorted(set(file_cfg) - set(TOML_KEYS))
    if unknown:
        raise InputError(f"config file {config}: unknown table {unknown[0]!r} (expected {', '.join(TOML_KEYS)})")
    for name in TOML_KEYS:
        config_table(file_cfg, name, config)
    return file_cfg


def resolve_recipe(preset: str, file_cfg: dict, flags: dict) -> FinetuneConfig:
    """Preset ``preset`` <- the TOML's ``[finetune]`` <- ``flags`` (``FinetuneConfig.from_preset``'s resolution;
    errors name ``finetune.<key>``); the table may repeat the preset, not name another."""
    preset_table(preset)  # an unknown preset is the first error
    table = file_cfg.get("finetune", {})
    if table.get("preset", preset) != preset:
        raise InputError(f"[finetune] preset = {table['preset']!r} in the config file conflicts with --preset {preset}")
    try:
        return preset_recipe(preset, merge(table, flags), prefix="finetune.")
    except ParamError as exc:  # the recipe's fields, as this command's flags (--batch-size is the model's)
        raise InputError(exc.renamed(lambda param: flag(param, RECIPE_FLAGS))) from None


def recipe_flags(options: dict) -> dict:
    """The FinetuneConfig overrides of ``finetune``'s keyword arguments ``options`` (None: the preset's value)."""
    names = {"lora_layers": "lora_layer", "batch_size": "train_batch_size"}
    keys = ("r", "alpha", "rslora", "dropout", "target_modules", "lora_layers", "lr", "epochs", "max_steps",
            "schedule", "warmup_steps", "batch_size", "grad_accum", "weight_decay", "optimizer", "seed", "save_steps",
            "logging_steps")
    flags = {key: options[names.get(key, key)] for key in keys}
    flags["target_modules"] = _comma_list(flags["target_modules"])
    flags["lora_layers"] = flags["lora_layers"] or None
    return flags


def check_recipe(options: dict) -> FinetuneConfig:
    """The recipe ``finetune`` would train with, from its keyword arguments ``options`` (preset, config file,
    flags), checked without loading anything (``realmodels mitigate`` checks every arm's recipe with it)."""
    return resolve_recipe(options["preset"], read_finetune_toml(options["config"]), recipe_flags(options))


def watch_configs(file_cfg: dict, *, monitor: bool, monitor_every: Optional[int], alarm: Optional[float],
                  alarm_warn_only: bool, probe: Optional[Path], guard: Optional[str],
                  guard_weight: Optional[float]) -> tuple[MonitorConfig | None, GuardConfig | None]:
    """The monitor's and the guard's configs (None: off) from the TOML's ``[monitor]`` / ``[guard]`` tables and the
    flags; a monitor or guard flag without ``--monitor`` / ``--guard`` is an error."""
    monitor_cfg = None
    if monitor or "monitor" in file_cfg:
        monitor_cfg = resolve_config(MonitorConfig, None, {"every": monitor_every, "alarm": alarm,
                                                           "alarm_action": "warn" if alarm_warn_only else None},
                                     base=file_cfg.get("monitor", {}), prefix="monitor.")
    elif alarm is not None or monitor_every is not None or probe is not None:
        raise InputError("--alarm, --monitor-every and --probe need --monitor")
    guard_cfg = None
    if guard is not None or "guard" in file_cfg:
        guard_cfg = resolve_config(GuardConfig, None, {"kind": guard, "weight": guard_weight},
                                   base=file_cfg.get("guard", {}), prefix="guard.")
    elif guard_weight is not None:
        raise InputError("--guard-weight needs --guard")
    return monitor_cfg, guard_cfg


def defence_config(file_cfg: dict, *, caft: Optional[str], direction: Optional[Path], steer_alpha: Optional[float],
                   kl_weight: Optional[float]) -> DefenceConfig | None:
    """The defences' config (None: none) from the TOML's ``[defence]`` table and the flags (either turns it on)."""
    flags = {"caft": caft, "direction": direction, "steer_alpha": steer_alpha, "kl_weight": kl_weight}
    if "defence" not in file_cfg and all(value is None for value in flags.values()):
        return None
    return resolve_config(DefenceConfig, None, flags, base=file_cfg.get("defence", {}), prefix="defence.")


def _comma_list(value: Optional[str]) -> Optional[list[str]]:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]
