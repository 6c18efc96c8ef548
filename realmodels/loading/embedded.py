"""The embedded default model: the model organism shipped with the package (``realmodels/organism/default/``:
``model/`` with its tokenizer, ``sae/``, ``build.json``), used by every realmodels command when no
``--checkpoint`` or ``--model`` is given. Only its location and layer are known here (files, no import of
``realmodels.organism``); ``realmodels organism build`` regenerates it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from theory.errors import ParamError

EMBEDDED_DIR = Path(__file__).resolve().parents[1] / "organism" / "default"
BUILD_COMMAND = "realmodels organism build --out DIR"  # a shell command
REBUILD = f"{BUILD_COMMAND}, then pass `model` DIR/model `sae` DIR/sae `layer` L"


@dataclass(frozen=True)
class Embedded:
    """The shipped organism: its model directory, SAE directory and the layer the SAE reads."""
    model: Path
    sae: Path
    layer: int


def embedded_default() -> Embedded:
    """The shipped organism's model, SAE and SAE layer; an InputError (naming the rebuild command) when the
    package was installed without it."""
    build = EMBEDDED_DIR / "build.json"
    if not (build.is_file() and (EMBEDDED_DIR / "model" / "config.json").is_file()
            and (EMBEDDED_DIR / "sae" / "cfg.json").is_file()):
        raise ParamError(f"no model given and the embedded organism is missing from {EMBEDDED_DIR}: pass `checkpoint` "
                         f"NAME or `model` PATH, or build one: {REBUILD}")
    layer = json.loads(build.read_text(encoding="utf-8"))["organism"]["layer"]
    return Embedded(model=EMBEDDED_DIR / "model", sae=EMBEDDED_DIR / "sae", layer=int(layer))
