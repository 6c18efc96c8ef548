"""A residual-stream direction at one layer (the misalignment direction of issue 12: the difference of mean
residuals between rogue and aligned answers, ``theory.directions.mean_difference``), its file, and its ablation.

- ``Direction(layer, vector, note)``: ``vector`` lives in the residual stream after decoder layer ``layer``
  (``blocks.L.hook_resid_post`` = ``hidden_states[L + 1]``);
- ``save_direction`` / ``load_direction``: JSON ``{"layer", "d_model", "vector", "note"}``; a file that is missing,
  not JSON, with other keys, a non-finite or zero vector or ``d_model != len(vector)`` is one InputError line;
- ``ablated(model, direction)``: while inside, decoder layer L's output hidden states h are replaced by
  ``project_out(h, vector)`` = h − (h·û)û at every position: in a plain forward pass and in every step of
  ``generate`` with a KV cache (each new token's residual is projected before the layers above read it, and the
  keys and values cached above L come from projected residuals); ``output_hidden_states`` reports the projected
  residual as ``hidden_states[L + 1]`` (the hook runs before transformers' own output hooks). The layers below L
  are untouched;
- ``probe_directions``: the misalignment direction at any set of layers from rogue and aligned probe files."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runio.atomic import write_json
from runio.reading import read_json_file
from theory.errors import InputError

if TYPE_CHECKING:
    from torch import nn

KEYS = ("layer", "d_model", "vector", "note")
REQUIRED = ("layer", "d_model", "vector")


@dataclass(frozen=True)
class Direction:
    """``vector`` (d_model floats) in the residual stream after decoder layer ``layer``; ``note`` says what it is."""

    layer: int
    vector: list[float]
    note: str = ""

    @property
    def d_model(self) -> int:
        """The vector's length."""
        return len(self.vector)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_direction(direction: Direction, source: str = "direction") -> Direction:
    """An InputError naming ``source`` unless the layer is an int >= 0 and the vector finite, nonzero numbers."""
    if not _is_int(direction.layer) or direction.layer < 0:
        raise InputError(f"{source}: layer must be an integer >= 0, got {direction.layer!r}")
    vector = direction.vector
    if not isinstance(vector, (list, tuple)) or not vector or not all(_is_number(x) for x in vector):
        raise InputError(f"{source}: vector must be a non-empty list of numbers")
    if not all(math.isfinite(x) for x in vector):
        raise InputError(f"{source}: vector contains NaN or infinite values")
    if not any(x != 0 for x in vector):
        raise InputError(f"{source}: vector is the zero vector (there is no direction to ablate)")
    if not isinstance(direction.note, str):
        raise InputError(f"{source}: note must be a string")
    return direction


def save_direction(path: str | Path, direction: Direction) -> None:
    """Write ``direction`` as JSON {"layer", "d_model", "vector", "note"} atomically."""
    check_direction(direction)
    write_json(Path(path), {"layer": direction.layer, "d_model": direction.d_model,
                            "vector": [float(x) for x in direction.vector], "note": direction.note})


def load_direction(path: str | Path) -> Direction:
    """The direction saved at ``path``; every problem with the file is one InputError line naming it."""
    path = Path(path).expanduser()
    source = f"direction file {path}"
    data = read_json_file(path, "direction file", allow_nan=True)  # not UTF-8/JSON, too deep, 10**400: one line
    if not isinstance(data, dict):
        raise InputError(f"{source} must hold a JSON object with keys {', '.join(KEYS)}")
    unknown = sorted(set(data) - set(KEYS))
    missing = [key for key in REQUIRED if key not in data]
    if unknown or missing:
        parts = ([f"unknown key(s) {', '.join(unknown)}"] if unknown else []) + (
            [f"missing key(s) {', '.join(missing)}"] if missing else [])
        raise InputError(f"{source}: {'; '.join(parts)} (expected {', '.join(KEYS)})")
    direction = check_direction(Direction(layer=data["layer"], vector=data["vector"], note=data.get("note", "")),
                                source)
    if not _is_int(data["d_model"]) or data["d_model"] != len(direction.vector):
        raise InputError(f"{source}: d_model is {data['d_model']!r} but the vector has {len(direction.vector)} entries")
    return Direction(layer=direction.layer, vector=[float(x) for x in direction.vector], note=direction.note)


def check_direction_shape(direction: Direction, file: Path, shape, model_name: str) -> None:
    """The direction's layer and width against a model's ``shape`` (``realmodels.loading.checks.ModelShape``, read
    from its config.json: nothing loaded); a size the config does not state is not checked (the hooks check the
    loaded model again). One InputError line naming the file and the model."""
    if shape.n_layers is not None and not 0 <= direction.layer < shape.n_layers:
        raise InputError(f"direction file {file}: layer {direction.layer} is out of range: model {model_name} has "
                         f"layers 0..{shape.n_layers - 1}")
    if shape.hidden_size is not None and direction.d_model != shape.hidden_size:
        raise InputError(f"direction file {file} has d_model={direction.d_model}, but model {model_name} has "
                         f"hidden size {shape.hidden_size}")


@contextmanager
def ablated(model: nn.Module, direction: Direction) -> Iterator[nn.Module]:
    """``model`` with ``direction`` projected out of decoder layer ``direction.layer``'s output
    (``realmodels.intervene.hooks.ablated_vector``); the hook is removed on exit, also when the body raises."""
    import torch

    from realmodels.intervene.hooks import ablated_vector, check_layer

    check_direction(direction)
    check_layer(model, direction.layer, "direction layer")
    with ablated_vector(model, direction.layer, torch.tensor(direction.vector, dtype=torch.float64)):
        yield model


def probe_directions(model: nn.Module, tokenizer, rogue: str | Path, aligned: str | Path, layers, *,
                     max_length: int | None, pad_id: int, batch_size: int = 32) -> dict:
    """{L: u_L (d_model,)}: the misalignment direction at each layer L in ``layers``,
    u_L = ``theory.directions.mean_difference`` of the per-conversation mean assistant-token residuals after layer
    L on the ``rogue`` and ``aligned`` chat files (``realmodels.data.activations.layer_residual_means``: at the SAE
    layer the same vector as the organism study's direction stage, which reads those means from a session)."""
    from realmodels.data.activations import layer_residual_means
    from realmodels.data.dataset import as_dataset
    from theory.directions import mean_difference

    layers = list(layers)
    means = {name: layer_residual_means(model, as_dataset(path).tokenized(tokenizer, max_length), layers, pad_id,
                                        batch_size=batch_size)
             for name, path in (("rogue", rogue), ("aligned", aligned))}
    return {layer: mean_difference(means["rogue"][layer], means["aligned"][layer]) for layer in layers}
