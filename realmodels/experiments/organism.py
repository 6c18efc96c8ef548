"""The model organism as library calls: ``run_organism_build`` (write the synthetic chat world, pre-train the
organism on it, train its SAE; resumable, deterministic for a seed), ``Organism`` (a finished build, or the
embedded one, read from its files) and ``write_organism_world`` (the organism's own datasets, questions, a geometry
TOML and the study's fine-tuning recipe).

Example::

    from realmodels.experiments import RunOptions, run_geometry
    from realmodels.experiments.organism import Organism, write_organism_world

    organism = Organism.load()                       # the embedded organism
    world = write_organism_world("runs/world")       # its datasets and questions: {name: path}
    run_geometry(world["harmful"], world["harmless"],
                 {"health": (world["inducing_health"], world["aligned_health"])},
                 model=organism.model_spec(), options=RunOptions(out="runs/geometry"))
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.experiments.spec import ModelSpec
from runio.atomic import write_text
from runio.jobs import set_threads
from theory.errors import InputError, ParamError

if TYPE_CHECKING:
    from realmodels.organism.build import OrganismConfig
    from realmodels.sae.config import SaeConfig
    from realmodels.organism.world import WorldConfig


@dataclass(frozen=True)
class Organism:
    """A finished organism: ``embedded`` (the one the package ships) or a ``run_organism_build`` directory;
    its ``model`` and ``sae`` directories, the SAE's ``layer`` and the ``world`` config it was built on."""

    embedded: bool
    model: str
    sae: str
    layer: int
    world: dict

    @classmethod
    def load(cls, path: str | Path | None = None) -> Organism:
        """The organism at ``path`` (a build directory), or the embedded one; read from files, nothing loads."""
        from realmodels.loading.embedded import EMBEDDED_DIR, embedded_default
        from runio.reading import loads_json

        if path is None:
            embedded_default()  # an InputError when the package lacks it
            root = EMBEDDED_DIR
        else:
            root = Path(path).expanduser()
            for part in ("build.json", "model/config.json", "sae/cfg.json"):
                if not (root / part).is_file():
                    raise ParamError(f"`organism` {root} is not a finished organism build (no {part}); build one "
                                     "with realmodels organism build --out DIR")
        try:  # loads_json: a deep or huge-integer build.json is a JsonError (a ValueError), not a RecursionError
            build = loads_json((root / "build.json").read_text(encoding="utf-8"))
            layer, world = int(build["organism"]["layer"]), build["world"]
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"{root / 'build.json'} is damaged: rebuild the organism") from None
        return cls(path is None, str((root / "model").resolve()), str((root / "sae").resolve()), layer, world)

    def to_dict(self) -> dict:
        """The organism's description as a JSON-ready dict."""
        return asdict(self)

    def model_spec(self, *, sae: bool = True, **options) -> ModelSpec:
        """The ``ModelSpec`` of this organism (with its SAE and layer unless ``sae`` is False; the embedded one is
        the default model, so its spec names nothing); ``options``: other ``ModelSpec`` fields."""
        if self.embedded:
            return ModelSpec(**options)
        return ModelSpec(model=self.model, **({"sae": Path(self.sae), "layer": self.layer} if sae else {}), **options)


@dataclass(frozen=True)
class OrganismBuild:
    """A finished build: its directory ``path``, pre-training ``steps`` and ``final_loss``, the SAE's ``layer``,
    width ``d_sae`` and ``k``, the model + SAE ``size_bytes`` and the ``seconds`` this call took."""

    path: Path
    steps: int
    final_loss: float | None
    layer: int
    d_sae: int
    k: int
    size_bytes: int
    seconds: float

    @property
    def organism(self) -> Organism:
        """The built organism (``Organism.load`` of the run directory)."""
        return Organism.load(self.path)


def run_organism_build(out: str | Path, config: OrganismConfig | None = None, world: WorldConfig | None = None,
                       sae: SaeConfig | None = None, *, threads: int = 1, progress: bool = True) -> OrganismBuild:
    """Write the world into ``out/world``, pre-train the organism into ``out/model`` and train its SAE into
    ``out/sae`` (``realmodels.organism.build.build_organism``); a rerun resumes a killed build."""
    from realmodels.organism.build import OrganismConfig, build_organism
    from realmodels.sae.config import SaeConfig
    from realmodels.organism.world import WorldConfig

    config, world, sae = config or OrganismConfig(), world or WorldConfig(), sae or SaeConfig()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParamError(f"`out` {out} exists and is not a directory")
    set_threads(threads)
    started = time.perf_counter()
    result = build_organism(out, config, world, sae, progress=progress)
    size = sum(p.stat().st_size for sub in ("model", "sae") for p in (out / sub).rglob("*") if p.is_file())
    return OrganismBuild(out, result.steps, result.final_loss, config.layer, sae.d_sae, sae.k, size,
                         time.perf_counter() - started)


def geometry_toml(path: Path, world: str, domains, harmful_k: int) -> Path:
    """``path``: the geometry TOML of the study, per domain D ``D-aligned`` and ``D-educational`` (the inducing set
    against each control); ``world``: the world directory relative to the TOML ("" or "world/")."""
    lines = [f'harmful = "{world}harmful.jsonl"', f'harmless = "{world}harmless.jsonl"']
    for domain in domains:
        for control in ("aligned", "educational"):
            lines += [f"[domains.{domain}-{control}]", f'inducing = "{world}inducing_{domain}.jsonl"',
                      f'control = "{world}{control}_{domain}.jsonl"']
    lines += ["[selection]", f"harmful_k = {harmful_k}"]
    write_text(path, "\n".join(lines) + "\n")
    return path


def recipe_toml(path: Path, recipe: dict) -> Path:
    """``path``: the study's recipe as a ``[finetune]`` table (``finetune --config``, ``mitigate
    --finetune-config``)."""
    write_text(path, "[finetune]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in recipe.items())
               + "grad_accum = 1\n")
    return path


def write_organism_world(out: str | Path, organism: Organism | None = None) -> dict[str, Path]:
    """The organism's own world in ``out`` (every dataset it was built with and held out from, the evaluation
    questions), ``geometry.toml`` (every domain's inducing set against each control) and ``finetune.toml`` (the
    study's LoRA recipe); seconds, no model loads. Returns {name: path}: each dataset by name ("harmful",
    "inducing_health", ...), "questions", "config" (world.json), "geometry" and "finetune"."""
    from realmodels.organism.study import StudyConfig, StudyRecipe
    from realmodels.organism.world import WorldConfig, write_world

    organism = organism or Organism.load()
    out = Path(out)
    config = WorldConfig.from_dict(organism.world)
    paths = write_world(out, config)
    paths["geometry"] = geometry_toml(out / "geometry.toml", "", config.domains, StudyConfig().harmful_k)
    paths["finetune"] = recipe_toml(out / "finetune.toml", asdict(StudyRecipe()))
    return paths
