"""Steering and clamping while answering (``realmodels evaluate --steer/--clamp``): the specs, their checks against
the files (before any weight loads), what a run's config records of them, and the hooks
(``realmodels.intervene.hooks``) they become on the loaded model.

- ``--steer feature:IDX=ALPHA``: h ← h + α d̂_i at the SAE's layer, d̂_i = d_i / ‖d_i‖ with
  d_i = dec(e_i) − dec(0) the SAE decoder's direction of feature i (for sae-lens's affine decoders W_dec[i], up
  to the decoder-norm rescaling some architectures apply);
- ``--steer FILE=ALPHA``: h ← h + α û at the direction file's layer, û its vector normalised to unit norm;
- ``--clamp IDX=VALUE``: SAE feature i set to VALUE at the SAE's layer, the SAE's error term kept (``clamped``).

α is in residual-stream units (the change of ‖h‖ along the direction); ``median_residual_norm`` gives the scale of
h at a layer on the questions' prompts. At one layer the edits apply in the order ablation, steering (in the
order given), clamping (one encode for every clamped feature)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from theory.errors import InputError, ParamError

if TYPE_CHECKING:
    from torch import Tensor, nn

FEATURE = "feature:"


def _number(text: str, what: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{what} in {spec!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{what} in {spec!r} must be finite, got {text}")
    return value


def _index(text: str, spec: str) -> int:
    if not text.strip().isdigit():
        raise InputError(f"the feature index in {spec!r} must be an integer >= 0, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class Steer:
    """α along SAE feature ``feature``'s unit decoder direction, or along the unit vector of direction file
    ``file`` (exactly one of the two)."""

    alpha: float
    feature: int | None = None
    file: Path | None = None

    @classmethod
    def parse(cls, spec: str) -> Steer:
        """``feature:IDX=ALPHA`` or ``FILE=ALPHA`` (the last ``=`` splits: a file name may hold one)."""
        if not isinstance(spec, str):
            return spec
        target, sep, alpha = spec.rpartition("=")
        if not sep or not target:
            raise ParamError(f"`steer` {spec!r} is malformed: expected feature:IDX=ALPHA or FILE=ALPHA")
        value = _number(alpha, "the steering coefficient", spec)
        if target.startswith(FEATURE):
            return cls(alpha=value, feature=_index(target[len(FEATURE):], spec))
        return cls(alpha=value, file=Path(target).expanduser())


@dataclass(frozen=True)
class Clamp:
    """SAE feature ``feature`` set to ``value``."""

    feature: int
    value: float

    @classmethod
    def parse(cls, spec: str) -> Clamp:
        """``IDX=VALUE``."""
        if not isinstance(spec, str):
            return spec
        index, sep, value = spec.partition("=")
        if not sep:
            raise ParamError(f"`clamp` {spec!r} is malformed: expected IDX=VALUE")
        return cls(feature=_index(index, spec), value=_number(value, "the clamp value", spec))


@dataclass(frozen=True)
class Plan:
    """The checked interventions of one evaluation: steers (with their direction files loaded), clamps, and the
    SAE (its source and layer) when a feature is named."""

    steers: tuple[Steer, ...]
    clamps: tuple[Clamp, ...]
    directions: dict
    """Path -> Direction of every steering file."""
    sae: object = None
    """The SAE's source (a ``realmodels.loading.saes.SaeSource``) when a feature is named."""
    sae_layer: int | None = None

    def layers(self) -> list[int]:
        """The layers steered (for the residual-norm report), in order, each once."""
        layers = [self.sae_layer if s.feature is not None else self.directions[s.file].layer for s in self.steers]
        return list(dict.fromkeys(layers))

    def to_config(self) -> dict:
        """What the run's config records (only the keys of the interventions given)."""
        from realmodels.data.jsonl import dataset_hash

        data = {}
        if self.sae is not None:
            data["intervention_sae"] = {"sae": self.sae.name, "layer": self.sae_layer}
        if self.steers:
            data["steer"] = [{"feature": s.feature, "alpha": s.alpha} if s.feature is not None else
                             {"path": str(s.file.resolve()), "sha256": dataset_hash(s.file), "alpha": s.alpha}
                             for s in self.steers]
        if self.clamps:
            data["clamp"] = [{"feature": c.feature, "value": c.value} for c in self.clamps]
        return data


def plan(steers: Sequence[Steer], clamps: Sequence[Clamp], model, plain, fits) -> Plan:
    """The interventions checked against the files, nothing loaded: each direction file (``fits(direction,
    file)``: its layer and width against the model's config.json), the SAE (``model``'s, resolved as every SAE
    command does: the embedded organism's by default) and every feature index against its cfg.json width."""
    from realmodels.analysis.direction import load_direction

    directions = {}
    for s in steers:
        if s.file is not None and s.file not in directions:
            directions[s.file] = load_direction(s.file)
            fits(directions[s.file], s.file)
    features = [s.feature for s in steers if s.feature is not None] + [c.feature for c in clamps]
    if not features:
        if model.sae is not None or model.layer is not None:
            raise ParamError("`sae` and `layer` are used only by `steer` feature:IDX=ALPHA and `clamp`")
        return Plan(tuple(steers), tuple(clamps), directions)
    sources = model.choice().with_layer().sources()
    width = sae_width(sources)
    bad = [i for i in features if i >= width]
    if bad:
        raise InputError(f"feature {bad[0]} is out of range: the SAE {sources.sae.name} has features 0..{width - 1}")
    return Plan(tuple(steers), tuple(clamps), directions, sources.sae, sources.layer)


def sae_width(sources) -> int:
    """d_sae of the resolved SAE: a saved directory's cfg.json, else the registered checkpoint's."""
    from realmodels.loading.saes import saved_sae_shape

    if sources.sae.path is not None:
        return saved_sae_shape(sources.sae.path)[1]
    spec = sources.model_spec
    if spec is not None and spec.sae_release == sources.sae.release and spec.d_sae:
        return int(spec.d_sae)
    raise InputError(f"the width of SAE {sources.sae.name} is unknown before loading it: save it with "
                     f"`realmodels sae` and pass `sae` DIR")


def feature_direction(sae: nn.Module, feature: int) -> Tensor:
    """d̂_i = (dec(e_i) − dec(0)) / ‖·‖ (d_in,), float64: feature ``feature``'s unit decoder direction."""
    import torch

    dtype = next(sae.parameters()).dtype
    z = torch.zeros(2, int(sae.cfg.d_sae), dtype=dtype)
    z[0, feature] = 1.0
    with torch.no_grad():
        decoded = sae.decode(z).to(torch.float64)
    d = decoded[0] - decoded[1]
    norm = torch.linalg.vector_norm(d)
    if not bool(norm > 0):
        raise InputError(f"feature {feature} has a zero decoder direction: there is nothing to steer along")
    return d / norm


@contextmanager
def applied(model: nn.Module, interventions: Plan, ablate=None) -> Iterator[nn.Module]:
    """``model`` with the ablation (a ``Direction`` or None), the steers and the clamps of ``interventions`` in
    place (module docstring). Hooks are prepended, so they are entered in the reverse of their order of
    application."""
    import torch

    from realmodels.analysis.direction import ablated
    from realmodels.intervene.hooks import clamped, steered

    sae = None
    if interventions.sae is not None:
        from realmodels.loading.saes import load_sae

        sae = load_sae(interventions.sae)
    with ExitStack() as stack:
        if interventions.clamps:
            stack.enter_context(clamped(model, interventions.sae_layer, sae,
                                        [c.feature for c in interventions.clamps],
                                        [c.value for c in interventions.clamps]))
        for s in reversed(interventions.steers):
            if s.feature is not None:
                layer, vector = interventions.sae_layer, feature_direction(sae, s.feature)
            else:
                direction = interventions.directions[s.file]
                layer = direction.layer
                vector = torch.tensor(direction.vector, dtype=torch.float64)
                vector = vector / torch.linalg.vector_norm(vector)
            stack.enter_context(steered(model, layer, vector, s.alpha))
        if ablate is not None:
            stack.enter_context(ablated(model, ablate))
        yield model


def median_residual_norm(model: nn.Module, tokenizer, questions, layers: Sequence[int]) -> dict[int, float]:
    """Median ‖h‖ over every token of every question paraphrase's prompt (chat template, as the model reads it) at
    each layer's output (``realmodels.data.residual.residual_stream``: the residual the hooks edit; for the last
    layer that is before the final norm, unlike ``hidden_states[-1]``), without interventions: the scale against
    which α reads."""
    import torch

    from realmodels.data.residual import residual_stream
    from realmodels.evaluate.generate import PlanItem, render_prompts
    from realmodels.loading.placement import input_device

    items = [PlanItem(q, p, 0) for q in questions for p in range(len(q.paraphrases))]
    norms: dict[int, list] = {layer: [] for layer in layers}
    device = input_device(model)
    for prompt in render_prompts(tokenizer, items):
        ids = torch.as_tensor([prompt], device=device)
        for layer in layers:
            h = residual_stream(model, ids, torch.ones_like(ids), layer)
            norms[layer].append(torch.linalg.vector_norm(h[0].float(), dim=-1).cpu())
    return {layer: float(torch.cat(values).median()) for layer, values in norms.items()}
