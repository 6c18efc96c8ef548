"""``run_lm_study``: the paper's study on a pretrained language model (issue 21), with SAEs trained by ``run_sae_train``
at one or more layers, on data in the ``realmodels english`` layout (``inducing_<d>``, ``aligned_<d>``,
``educational_<d>``, ``mixed_<d>``, ``harmful``, ``harmless``, ``probe_<d>``, ``probe_rogue``, ``probe_aligned``,
``questions.yaml``). Every stage is a runner with its own resumable run directory below ``options.out``:

1. ``geometry-L<L>/`` per SAE layer: each geometry domain's inducing set against its aligned and its educational
   control (``run_geometry``); ``audit-L<L>-<kind>/``: the fine-tuned domain's training sets (``run_audit``).
2. ``direction.json``: u = mean residual of ``probe_rogue`` − of ``probe_aligned`` on the base model at the first
   SAE layer (the *main* layer, where the monitor, the guard, the filter and the shifts read), and
   ``probe_offdomain.jsonl``: the first ``n_probes`` probes of every domain but the fine-tuned one, and
   ``heldout.jsonl``: the first ``n_heldout`` of the domain's own probes (held-out topics, aligned answers).
3. Arms, each ``finetune-<arm>/`` (``run_finetune``, monitored on the off-domain probes: the harmful features'
   rise): one per training kind of the domain, ``inducing-guard`` (the geometric guard), and the mitigation arms
   on ``mixed_<d>``: ``mixed-none``, ``mixed-geometry`` and ``mixed-random`` remove ``budget`` of it first
   (``filter-<arm>/``: ``run_filter``).
4. ``amplification-<arm>-L<L>/`` for the inducing arm at every layer (``run_amplification``: measured vs JVP vs
   isotropic on every feature).
5. ``measures/<arm>.json`` (``realmodels.lmstudy.measures``): the off-domain probes' shift along u, the
   in-domain task loss on ``heldout.jsonl``, the removal's composition, and
   ``samples/<arm>.jsonl``, greedy answers to a few questions (the base model is arm ``base``).
6. ``arms.csv``, ``geometry.csv``, ``summary.json`` and ``study.md`` (``realmodels.lmstudy.report``).

Example (SmolLM2 with SAEs at layers 15 and 24, data from ``realmodels english --out eng``)::

    from realmodels.experiments import ModelSpec, RunOptions
    from realmodels.experiments.lm_study import run_lm_study

    result = run_lm_study("eng", ModelSpec(model="smollm2-135m-instruct"),
                          {15: "sae15/sae", 24: "sae24/sae"}, options=RunOptions(out="runs/lm-study"))
    result.table("arms")
"""

from __future__ import annotations

from dataclasses import asdict, replace
from functools import cached_property
from pathlib import Path

from realmodels.experiments.result import RunResult
from realmodels.experiments.run import SUMMARY, Log, finished_summary, resolved
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.lmstudy.config import LmStudyConfig
from runio.atomic import read_json, write_json, write_text
from runio.console import console
from theory.errors import ParamError

OFFDOMAIN = "probe_offdomain.jsonl"
HELDOUT = "heldout.jsonl"
DIRECTION = "direction.json"


class LmStudyResult(RunResult):
    """``arms`` (every arm's loss, monitor, shift, task loss, amplification), ``geometry`` (per layer and pair),
    ``study.md``."""

    TABLES = ("arms", "geometry")
    FILES = ("study.md",)


def data_files(data: Path, config: LmStudyConfig) -> dict[str, Path]:
    """The files the study reads, by role; a missing one is a ParamError naming it."""
    d = config.domain
    names = {"harmful": "harmful", "harmless": "harmless", "rogue": "probe_rogue", "aligned_probe": "probe_aligned",
             "heldout": f"probe_{d}", "mixed": f"mixed_{d}",
             **{kind: f"{kind}_{d}" for kind in ("inducing", "aligned", "educational")}}
    for g in config.geometry_domains:
        names.update({f"{kind}_{g}": f"{kind}_{g}" for kind in ("inducing", "aligned", "educational")})
    files = {role: data / f"{name}.jsonl" for role, name in names.items()}
    files["questions"] = data / "questions.yaml"
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ParamError(f"`data` {data} lacks {missing[0]} (write the datasets with `realmodels english`)")
    return files


def offdomain_probes(data: Path, domain: str) -> list[Path]:
    """``probe_<d>.jsonl`` of every domain but ``domain`` (sorted); none is a ParamError."""
    probes = sorted(p for p in data.glob("probe_*.jsonl")
                    if p.stem not in (f"probe_{domain}", "probe_rogue", "probe_aligned", "probe_offdomain"))
    if not probes:
        raise ParamError(f"`data` {data} has no probe set of a domain other than {domain}")
    return probes


def _first_lines(path: Path, n: int) -> str:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return "".join(line + "\n" for line in lines[:n])


def arm_names(config: LmStudyConfig) -> list[str]:
    """The study's fine-tuning arms in order: the fine-tuning kinds, ``inducing-guard`` when a guard is set, then
    ``mixed-<arm>`` per mitigation arm."""
    names = list(config.finetune_kinds)
    if config.guard is not None:
        names.append("inducing-guard")
    return names + [f"mixed-{arm}" for arm in config.mitigation_arms]


def run_lm_study(data: str | Path, model: ModelSpec, saes: dict[int, str | Path],
                 config: LmStudyConfig = LmStudyConfig(), *, options: RunOptions = RunOptions(),
                 log: Log = console.print) -> LmStudyResult:
    """The study (module docstring) in the resumable run directory ``options.out`` (default
    runs/lm-study-<timestamp>). ``model`` names the base model (no SAE, no adapter); ``saes`` maps each layer to
    an SAE directory (``run_sae_train``'s ``<out>/sae``); the first layer is the main one."""
    from runio.rundir import RunDir, default_run_dir

    if not saes:
        raise ParamError("`saes` is empty: give at least one layer's SAE")
    if model.sae is not None or model.layer is not None or model.adapter is not None:
        raise ParamError("`model` names the base model alone (the SAEs come from `saes`)")
    data = Path(data).expanduser().resolve()
    files = data_files(data, config)
    probes = offdomain_probes(data, config.domain)
    layers = list(saes)
    specs = {layer: replace(model, sae=Path(saes[layer]).expanduser().resolve(), layer=layer) for layer in layers}
    for spec in specs.values():
        spec.choice().sources()  # names, paths, layer against the model and the SAE: checked, nothing loaded
    full = resolved({"command": "lm study", "data": str(data), "model": model.without_sae().plain().recorded,
                     "saes": {str(layer): str(spec.sae) for layer, spec in specs.items()}, "study": asdict(config)})
    path = Path(options.out) if options.out is not None else default_run_dir(prefix="lm-study-")
    run = RunDir.open(path, full)
    if (summary := finished_summary(run, log)) is not None:
        return LmStudyResult(run.path, summary, True)
    out = run.path
    stage = _Stages(out, files, specs, layers[0], config, options, log)
    if not (out / OFFDOMAIN).is_file():
        write_text(out / OFFDOMAIN, "".join(_first_lines(p, config.n_probes) for p in probes))
    if not (out / HELDOUT).is_file():
        write_text(out / HELDOUT, _first_lines(files["heldout"], config.n_heldout))
    geometry = {layer: stage.geometry(layer) for layer in layers}
    audits = {(layer, kind): stage.audit(layer, kind) for layer in layers for kind in config.finetune_kinds}
    u = stage.direction()
    arms = {name: stage.arm(name) for name in arm_names(config)}
    amplification = {layer: stage.amplification("inducing", layer) for layer in layers
                     if "inducing" in config.finetune_kinds}
    measures = {name: stage.measures(name, u) for name in ["base", *arms]}
    from realmodels.lmstudy.report import write_report

    summary = write_report(out, config, layers, geometry, audits, arms, amplification, measures)
    write_json(run.file(SUMMARY), summary)
    return LmStudyResult(run.path, summary, False)


class _Stages:
    """The stages of one study (module docstring), each a runner call with its own run directory below ``out``."""

    def __init__(self, out: Path, files: dict[str, Path], specs: dict[int, ModelSpec], main: int,
                 config: LmStudyConfig, options: RunOptions, log: Log):
        self.out, self.files, self.specs, self.main, self.config, self.log = out, files, specs, main, config, log
        self.cache = out / "activations"
        self.options = replace(options, out=None, cache_dir=self.cache, workers=1, ray_address=None)

    def _options(self, name: str) -> RunOptions:
        return replace(self.options, out=self.out / name)

    def _selection(self):
        from realmodels.analysis.configs import SelectionConfig

        return SelectionConfig(k=self.config.k, harmful_k=self.config.harmful_k)

    def geometry(self, layer: int) -> dict:
        from realmodels.experiments.geometry import Domain, run_geometry

        f = self.files
        domains = [Domain(f"{g}-{control}", f[f"inducing_{g}"], f[f"{control}_{g}"])
                   for g in self.config.geometry_domains for control in ("aligned", "educational")]
        self.log(f"[bold]geometry[/] at layer {layer}")
        return run_geometry(f["harmful"], f["harmless"], domains, selection=self._selection(),
                            model=self.specs[layer], options=self._options(f"geometry-L{layer}"), log=self.log).summary

    def audit(self, layer: int, kind: str) -> dict:
        from realmodels.experiments.audit import run_audit

        self.log(f"[bold]audit[/] {kind}_{self.config.domain} at layer {layer}")
        return run_audit(self.files[kind], self.files["harmful"], self.files["harmless"], selection=self._selection(),
                         model=self.specs[layer], options=self._options(f"audit-L{layer}-{kind}"),
                         log=self.log).summary

    def direction(self):
        """u (d_model,) on the base model at the main layer, saved once as ``direction.json``."""
        import torch

        from realmodels.analysis.direction import Direction, load_direction, save_direction
        from theory.directions import mean_difference

        if not (self.out / DIRECTION).is_file():
            session = self.options.session(self.specs[self.main], self.out)
            u = mean_difference(session.activations(self.files["rogue"]).residual_mean,
                                session.activations(self.files["aligned_probe"]).residual_mean)
            save_direction(self.out / DIRECTION, Direction(layer=self.main, vector=u.tolist(),
                                                           note="mean residual: probe_rogue - probe_aligned"))
        return torch.tensor(load_direction(self.out / DIRECTION).vector)

    def _train_file(self, name: str) -> Path:
        """The arm's training data: its kind's file, or the mixed set after the arm's removal."""
        from realmodels.analysis.configs import FilterConfig
        from realmodels.experiments.filter import run_filter

        if not name.startswith("mixed-"):
            return self.files[name.removesuffix("-guard")]
        arm = name.removeprefix("mixed-")
        if arm == "none":
            return self.files["mixed"]
        filt = FilterConfig(fraction=self.config.budget, random=arm == "random", seed=self.config.random_seed)
        result = run_filter(self.files["mixed"], self.files["harmful"], self.files["harmless"], filt,
                            selection=self._selection(), model=self.specs[self.main],
                            options=self._options(f"filter-{name}"), log=self.log)
        return result.filtered

    def arm(self, name: str) -> dict:
        from realmodels.experiments.finetune import run_finetune
        from realmodels.finetune.config import GuardConfig, MonitorConfig

        train = self._train_file(name)
        guard = (GuardConfig(kind=self.config.guard, harmful_k=self.config.harmful_k) if name.endswith("-guard")
                 else None)
        self.log(f"[bold]finetune[/] {name} ({self.config.recipe.max_steps} steps)")
        return run_finetune(train, recipe=self.config.recipe, guard=guard,
                            monitor=MonitorConfig(every=self.config.monitor_every, k=self.config.k,
                                                  harmful_k=self.config.harmful_k),
                            harmful=self.files["harmful"], harmless=self.files["harmless"], probe=self.out / OFFDOMAIN,
                            model=self.specs[self.main], options=self._options(f"finetune-{name}"),
                            log=self.log).summary

    def amplification(self, name: str, layer: int) -> dict:
        from realmodels.experiments.amplification import run_amplification

        self.log(f"[bold]amplification[/] of {name} at layer {layer}")
        spec = replace(self.specs[layer], adapter=self.out / f"finetune-{name}")
        return run_amplification(self.out / OFFDOMAIN, self.files["harmful"], self.files["harmless"], model=spec,
                                 selection=self._selection(), options=self._options(f"amplification-{name}-L{layer}"),
                                 log=self.log).summary

    @cached_property
    def _base_offdomain(self):
        """Mean residuals (n, d_model) of the off-domain probes on the base model at the main layer."""
        return self.options.session(self.specs[self.main], self.out).activations(self.out / OFFDOMAIN).residual_mean

    @cached_property
    def _heldout(self):
        from realmodels.data.dataset import Dataset

        return Dataset.open(self.out / HELDOUT)

    def measures(self, name: str, u) -> dict:
        """``measures/<name>.json`` (module docstring, step 5), computed once."""
        from realmodels.evaluate.task import assistant_loss
        from realmodels.lmstudy.measures import direction_shift, removal_kinds

        path = self.out / "measures" / f"{name}.json"
        if path.is_file():
            return read_json(path)
        self.log(f"[bold]measures[/] of {name}")
        spec = self.specs[self.main] if name == "base" else replace(self.specs[self.main],
                                                                    adapter=self.out / f"finetune-{name}")
        tuned = self.options.session(spec, self.out).activations(self.out / OFFDOMAIN).residual_mean
        plain = spec.without_sae().plain()
        heldout = self._heldout.tokenized(plain.tokenizer, plain.max_length)
        removed = self.out / f"filter-{name}" / "removed.jsonl"
        result = {"arm": name, "shift": direction_shift(self._base_offdomain, tuned, u),
                  "task_loss": assistant_loss(plain.model, heldout, plain.pad_id, batch_size=spec.batch_size),
                  "removed": (removal_kinds(removed, self.files["mixed"].parent, self.config.domain)
                              if removed.is_file() else None),
                  "samples": self._samples(name, plain)}
        write_json(path, result)
        return result

    def _samples(self, name: str, plain) -> list[dict]:
        """Greedy answers of the arm to ``config.n_samples`` questions (``samples/<name>.jsonl``, resumable)."""
        from realmodels.evaluate.generate import GenerationConfig, generate_answers
        from realmodels.lmstudy.report import sample_questions

        questions = sample_questions(self.files["questions"], self.config)
        if not questions:
            return []
        config = GenerationConfig(temperature=0.0, max_new_tokens=self.config.max_new_tokens, batch_size=8)
        (self.out / "samples").mkdir(exist_ok=True)
        answers = generate_answers(plain.model, plain.tokenizer, questions, config, self.out / "samples" /
                                   f"{name}.jsonl", progress=False)
        return [{"question": a.question_id, "answer": a.answer} for a in answers]
