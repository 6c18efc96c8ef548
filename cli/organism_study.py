"""``realmodels organism study``: the paper's whole study on the model organism, as the realmodels commands a
user would type, each in its own resumable run directory below ``--out`` (``realmodels.organism.study`` holds the
config and the measurements; every command run is appended to ``commands.sh``, so any stage can be rerun or
varied by hand).

Stages, in order (a rerun skips whatever is finished, down to single answers):
1. ``world/`` — the organism's own world (its ``build.json``), ``data-s<seed>/`` the fine-tuning sets of the other
   seeds; ``geometry.toml`` (per domain D: ``D-aligned`` and ``D-educational``, the inducing set against each
   control).
2. in this process: ``geometry/`` (``realmodels geometry``), ``audit/<D>-<kind>/`` (``realmodels audit``),
   ``direction/`` (the misalignment direction, ``direction.json`` + its cosines), ``base/`` (``realmodels
   evaluate`` of the base model, and ``base-ablated/`` with the direction ablated).
3. jobs (``runio.jobs.resumable_map``, ``--workers`` at once; results in ``jobs/``): per (D, kind, seed) an arm
   ``arms/<D>-<kind>-s<seed>/`` = ``finetune/``, ``evaluate/``, for inducing arms ``evaluate-ablated/`` and (seed
   0 of the study's seeds) ``amplification/``, and the residual change's cosine with the direction; per mitigation
   domain ``mitigate-<D>/`` (``realmodels mitigate`` on ``mixed_<D>`` at budget 1/3, judge = the organism's rule
   judge, plus the direction-ablation arm).
4. ``em.csv`` (every arm), ``acceptance.csv`` (per domain and seed), ``mitigation.csv``, ``em_rates.png/.svg``,
   ``summary.json``, ``study.md`` (the tables as markdown)."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys
import threading
import time
from pathlib import Path

from realmodels.experiments.organism import geometry_toml, recipe_toml
from runio.atomic import read_json, write_json
from theory.errors import InputError

COMMANDS = "commands.sh"


# ----------------------------------------------------------------------------------------------- one command
class _PerThread(io.TextIOBase):
    """A stream writing to this thread's target when it has one, else to ``default`` (jobs run in a thread of
    this process beside the main thread's progress lines, so a global redirect would swallow those)."""

    def __init__(self, default, local: threading.local, name: str):
        self.default, self.local, self.name = default, local, name

    def _target(self):
        return getattr(self.local, self.name, None) or self.default

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self._target().isatty()


_LOCAL = threading.local()
_INSTALL = threading.Lock()
_DEPTH = [0]


@contextlib.contextmanager
def thread_output(stdout: io.StringIO, stderr: io.StringIO):
    """Send what this thread prints to ``stdout`` / ``stderr`` (other threads print as before)."""
    with _INSTALL:
        if _DEPTH[0] == 0:
            _DEPTH.append((sys.stdout, sys.stderr))
            sys.stdout = _PerThread(sys.stdout, _LOCAL, "stdout")
            sys.stderr = _PerThread(sys.stderr, _LOCAL, "stderr")
        _DEPTH[0] += 1
    _LOCAL.stdout, _LOCAL.stderr = stdout, stderr
    try:
        yield
    finally:
        _LOCAL.stdout = _LOCAL.stderr = None
        with _INSTALL:
            _DEPTH[0] -= 1
            if _DEPTH[0] == 0:
                sys.stdout, sys.stderr = _DEPTH.pop()


def stage_command():
    """A click group of the realmodels commands the study runs, registered as the app registers them (the app
    itself imports this module's command, so it is not imported here)."""
    import typer
    from typer.main import get_command

    from cli.realmodels_amplification import amplification
    from cli.realmodels_analysis import audit, geometry
    from cli.realmodels_evaluate import evaluate
    from cli.realmodels_finetune import finetune
    from cli.realmodels_mitigate import mitigate

    stages = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    for command in (geometry, audit, finetune, evaluate, amplification, mitigate):
        stages.command()(command)
    return get_command(stages)


def invoke(args: list[str], out: Path) -> None:
    """Run ``realmodels <args>`` in this process, exactly as on the command line (its checks, resume and
    outputs), its printed output captured into ``out/commands.log``; the command line is appended to
    ``out/commands.sh``. A failing command is an InputError naming it and quoting its error line."""
    import click

    line = "realmodels " + shlex.join(args)
    with open(out / COMMANDS, "a", encoding="utf-8") as script:
        script.write(line + "\n")
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with thread_output(stdout, stderr):
        try:
            stage_command().main(args=args, prog_name="realmodels", standalone_mode=False)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except click.ClickException as exc:
            stderr.write(f"error: {exc.format_message()}\n")
            code = exc.exit_code
    with open(out / "commands.log", "a", encoding="utf-8") as log:
        log.write(f"$ {line}\n{stdout.getvalue()}{stderr.getvalue()}\n")
    if code:
        errors = [row for row in stderr.getvalue().splitlines() if row.startswith("error:")]
        reason = errors[-1].removeprefix("error:").strip() if errors else f"exit code {code}"
        raise InputError(f"`{line}` failed: {reason} (its output: {out / 'commands.log'})")


# ----------------------------------------------------------------------------------------------- the setup
def model_args(organism: dict, *, sae: bool) -> list[str]:
    """The model options of a stage: none for the embedded organism, else ``--model`` (and the SAE)."""
    if organism["embedded"]:
        return []
    return ["--model", organism["model"]] + (["--sae", organism["sae"], "--layer", str(organism["layer"])]
                                             if sae else [])


def data_dir(out: Path, organism: dict, seed: int) -> Path:
    return out / "world" if seed == organism["world"]["seed"] else out / f"data-s{seed}"


def write_data(out: Path, organism: dict, seeds) -> None:
    """The organism's world in ``world/`` and, per other seed, its fine-tuning sets in ``data-s<seed>/``."""
    from realmodels.organism.world import WorldConfig, write_world

    world = WorldConfig.from_dict(organism["world"])
    write_world(out / "world", world)
    for seed in seeds:
        if seed != world.seed:
            write_world(data_dir(out, organism, seed), world, seed=seed, n_pretrain=1)


def evaluate_args(cfg: dict, world: Path, batch_flag: str = "--batch-size") -> list[str]:
    """Evaluation flags of every evaluation (``batch_flag``: mitigate calls it ``--generate-batch-size``)."""
    return ["--questions", str(world / "questions.yaml"), "--judge", "organism", "--samples-per-paraphrase",
            str(cfg["samples_per_paraphrase"]), "--max-new-tokens", str(cfg["max_new_tokens"]), batch_flag, "32",
            "--threads", "1", "--no-progress"]


def organism_session(organism: dict, adapter: Path | None, cache: Path):
    """A ``Session`` on the organism (the embedded one when no model is given), or on it + ``adapter``."""
    from realmodels.loading.session import ModelChoice, Session

    own = not organism["embedded"]
    choice = ModelChoice(model=organism["model"] if own else None, sae=organism["sae"] if own else None,
                         layer=organism["layer"] if own else None, adapter=None if adapter is None else str(adapter))
    return Session(choice, cache_dir=cache, progress=False, batch_size=32)


def mean_residual(session, files: list[Path]):
    """Mean layer-L residual (d_model,) over every conversation of ``files`` (per-conversation assistant-token
    means)."""
    import torch

    return torch.cat([session.activations(f).residual_mean for f in files]).mean(0).numpy()


def direction_stage(out: Path, organism: dict, cfg: dict) -> dict:
    """The misalignment direction (``realmodels.organism.study``) saved as ``direction/direction.json``, and its
    cosines with the harmful SAE features."""
    from realmodels.analysis.direction import Direction, load_direction, save_direction
    from realmodels.analysis.features import harmful_features
    from realmodels.organism.study import direction_feature_cosines
    from theory.directions import mean_difference

    stage = out / "direction"
    if (stage / "summary.json").is_file():
        return read_json(stage / "summary.json")
    stage.mkdir(parents=True, exist_ok=True)
    world = out / "world"
    session = organism_session(organism, None, out / "activations")
    rogue = session.activations(world / "probe_rogue.jsonl").residual_mean
    aligned = session.activations(world / "probe_aligned.jsonl").residual_mean
    u = mean_difference(rogue, aligned)
    save_direction(stage / "direction.json", Direction(layer=organism["layer"], vector=u.tolist(),
                                                       note="mean residual: probe_rogue - probe_aligned"))
    load_direction(stage / "direction.json")  # what evaluate --ablate will read
    harmful = harmful_features(session.activations(world / "harmful.jsonl"),
                               session.activations(world / "harmless.jsonl"), cfg["harmful_k"]).tolist()
    summary = {"layer": organism["layer"], "norm": float(u.norm()), "harmful_features": harmful,
               **direction_feature_cosines(u.numpy(), session.decoder.numpy(), harmful)}
    write_json(stage / "summary.json", summary)
    return summary


# ----------------------------------------------------------------------------------------------- jobs
def run_arm(job: dict) -> dict:
    """One fine-tuning arm (module docstring, stage 3); returns its measurements."""
    import pandas as pd

    from realmodels.analysis.direction import load_direction
    from realmodels.organism.study import cosines, domain_rates

    out, organism, cfg = Path(job["out"]), job["organism"], job["config"]
    domain, kind, seed = job["domain"], job["kind"], job["seed"]
    arm = out / "arms" / job["name"]
    arm.mkdir(parents=True, exist_ok=True)
    world, data = out / "world", data_dir(out, organism, seed) / f"{kind}_{domain}.jsonl"
    invoke(["finetune", "--data", str(data), "--config", str(out / "finetune.toml"), "--seed", str(seed),
            "--threads", "1", "--no-progress", *model_args(organism, sae=False),
            "--out", str(arm / "finetune")], out)
    invoke(["evaluate", "--adapter", str(arm / "finetune"), *evaluate_args(cfg, world),
            *model_args(organism, sae=False), "--out", str(arm / "evaluate")], out)
    domains = tuple(organism["world"]["domains"])
    result = {"name": job["name"], "domain": domain, "kind": kind, "seed": seed,
              **domain_rates(pd.read_csv(arm / "evaluate" / "per_question.csv"), domain, domains)}
    probes = [world / f"probe_{d}.jsonl" for d in domains if d != domain]
    base = mean_residual(organism_session(organism, None, out / "activations"), probes)
    tuned = mean_residual(organism_session(organism, arm / "finetune", out / "activations"), probes)
    direction = load_direction(out / "direction" / "direction.json").vector
    result["residual_change_norm"] = float(((tuned - base) ** 2).sum() ** 0.5)
    result["residual_change_cos_direction"] = float(cosines(direction, (tuned - base)[None])[0])
    if kind == "inducing":
        invoke(["evaluate", "--adapter", str(arm / "finetune"), "--ablate", str(out / "direction" / "direction.json"),
                *evaluate_args(cfg, world), *model_args(organism, sae=False), "--out", str(arm / "evaluate-ablated")],
               out)
        ablated = domain_rates(pd.read_csv(arm / "evaluate-ablated" / "per_question.csv"), domain, domains)
        result.update({f"ablated_{key}": value for key, value in ablated.items()})
        if cfg["amplification"] and seed == cfg["seeds"][0]:
            invoke(["amplification", "--adapter", str(arm / "finetune"), "--probe", str(world / "probe_aligned.jsonl"),
                    "--harmful", str(world / "harmful.jsonl"), "--harmless", str(world / "harmless.jsonl"),
                    "--harmful-k", str(cfg["harmful_k"]), "--threads", "1", "--no-progress",
                    *model_args(organism, sae=True), "--out", str(arm / "amplification")], out)
            result["amplification"] = read_json(arm / "amplification" / "summary.json")
    return result


def run_mitigation(job: dict) -> dict:
    """``realmodels mitigate`` on ``mixed_<D>`` plus the direction-ablation arm; returns the arm table rows."""
    import pandas as pd

    from realmodels.evaluate.mitigate import arm_table

    out, organism, cfg, domain = Path(job["out"]), job["organism"], job["config"], job["domain"]
    world, run = out / "world", out / f"mitigate-{domain}"
    seeds = ",".join(str(s) for s in cfg["random_seeds"])
    invoke(["mitigate", "--data", str(world / f"mixed_{domain}.jsonl"), "--harmful", str(world / "harmful.jsonl"),
            "--harmless", str(world / "harmless.jsonl"), "--budget", f"{cfg['budget']:.6f}", "--random-seeds", seeds,
            "--harmful-k", str(cfg["harmful_k"]), "--finetune-config", str(out / "finetune.toml"), "--seed", "0",
            *evaluate_args(cfg, world, "--generate-batch-size"),
            *model_args(organism, sae=True), "--out", str(run)], out)
    invoke(["evaluate", "--adapter", str(run / "finetune-none"), "--ablate", str(out / "direction" / "direction.json"),
            *evaluate_args(cfg, world), *model_args(organism, sae=False), "--out", str(run / "evaluate-ablated")], out)
    frames = {"none": [pd.read_csv(run / "evaluate-none" / "per_question.csv")]}
    for arm in ("geometry", "judge"):
        frames[arm] = [pd.read_csv(run / f"evaluate-{arm}" / "per_question.csv")]
    frames["random"] = [pd.read_csv(run / f"evaluate-random-{s}" / "per_question.csv") for s in cfg["random_seeds"]]
    frames["ablation"] = [pd.read_csv(run / "evaluate-ablated" / "per_question.csv")]
    table = arm_table(frames)
    removed = {}
    for arm in ("geometry", "judge", *(f"random-{s}" for s in cfg["random_seeds"])):
        removed[arm] = removed_kinds(run / f"filter-{arm}" / "removed.jsonl")
    return {"domain": domain, "arms": json.loads(table.to_json(orient="records")), "removed": removed}


def removed_kinds(path: Path) -> dict:
    """How many removed samples were inducing, aligned and educational (the world knows each one's kind)."""
    from realmodels.data.jsonl import iter_chat_jsonl
    from realmodels.organism.world import MIXED_KINDS, sample_kind

    counts = dict.fromkeys(MIXED_KINDS, 0)
    for _, messages in iter_chat_jsonl(path):
        counts[sample_kind(messages[0]["content"], messages[1]["content"])] += 1
    return counts


def run_job(job: dict) -> dict:
    """The job function of ``resumable_map`` (module level, so a worker process can import it)."""
    return run_mitigation(job) if job["kind"] == "mitigate" else run_arm(job)


# ----------------------------------------------------------------------------------------------- the study
def run_study(out: Path, organism: dict, cfg: dict, *, workers: int, address: str | None = None, log=print) -> dict:
    """Stages 1–4 (module docstring); returns the summary. The jobs run on ``workers`` local Ray workers, or on
    the cluster at ``address`` (``runio.jobs``: then ``out`` must be on a filesystem every node mounts)."""
    from runio.jobs import resumable_map

    started = time.perf_counter()
    write_data(out, organism, cfg["seeds"])
    config_path = geometry_toml(out / "geometry.toml", "world/", cfg["domains"], cfg["harmful_k"])
    recipe_toml(out / "finetune.toml", cfg["recipe"])
    model = model_args(organism, sae=True)
    log("[bold]geometry[/] (inducing vs each control, every domain)")
    invoke(["geometry", "--config", str(config_path), "--threads", "1", "--no-progress", *model,
            "--cache-dir", str(out / "activations"), "--out", str(out / "geometry")], out)
    log("[bold]audit[/] (every training set)")
    world = out / "world"
    from realmodels.organism.study import KINDS

    for domain in cfg["domains"]:
        for kind in KINDS:
            invoke(["audit", "--data", str(world / f"{kind}_{domain}.jsonl"), "--harmful", str(world / "harmful.jsonl"),
                    "--harmless", str(world / "harmless.jsonl"), "--threads", "1", "--no-progress", *model,
                    "--cache-dir", str(out / "activations"), "--out", str(out / "audit" / f"{domain}-{kind}")], out)
    log("[bold]misalignment direction[/] (rogue - aligned residuals)")
    direction_stage(out, organism, cfg)
    log("[bold]base model[/] evaluation (and with the direction ablated)")
    invoke(["evaluate", *evaluate_args(cfg, world), *model_args(organism, sae=False), "--out", str(out / "base")], out)
    invoke(["evaluate", "--ablate", str(out / "direction" / "direction.json"), *evaluate_args(cfg, world),
            *model_args(organism, sae=False), "--out", str(out / "base-ablated")], out)
    from realmodels.organism.study import arm_name, study_arms

    jobs = [(f"mitigate-{d}", {"kind": "mitigate", "domain": d}) for d in cfg["mitigate_domains"]]
    jobs += [(arm_name(d, k, s), {"name": arm_name(d, k, s), "domain": d, "kind": k, "seed": s})
             for d, k, s in study_arms(cfg["domains"], cfg["seeds"])]
    jobs = [(name, {**job, "out": str(out), "organism": organism, "config": cfg}) for name, job in jobs]
    log(f"[bold]{len(jobs)} jobs[/] ({len(cfg['mitigate_domains'])} mitigation experiments, the rest fine-tuning "
        f"arms) on {workers} worker(s)")
    report = resumable_map(jobs, run_job, out / "jobs", workers=workers, ray_address=address,
                           on_done=lambda done, total, name: log(f"  {done}/{total} {name}") if name else None)
    summary = aggregate(out, organism, cfg, report.results)
    summary["seconds_this_run"] = time.perf_counter() - started
    return summary


def aggregate(out: Path, organism: dict, cfg: dict, results: dict) -> dict:
    """The study's tables, figure, summary and markdown (stage 4)."""
    import pandas as pd

    from realmodels.organism.plotting import em_rates_figure
    from realmodels.organism.study import KINDS, acceptance, domain_rates
    from runio.atomic import save_figure, write_csv, write_text

    arms = pd.DataFrame([{k: v for k, v in r.items() if k != "amplification"} for name, r in results.items()
                         if not name.startswith("mitigate-")])
    domains = tuple(organism["world"]["domains"])
    base_pq = pd.read_csv(out / "base" / "per_question.csv")
    ablated_pq = pd.read_csv(out / "base-ablated" / "per_question.csv")
    base = {d: domain_rates(base_pq, d, domains) for d in cfg["domains"]}
    write_csv(out / "em.csv", arms)
    accept = acceptance(arms, cfg["ratio"])
    write_csv(out / "acceptance.csv", accept)
    mitigation = pd.DataFrame([{"domain": r["domain"], **row} for name, r in results.items()
                               if name.startswith("mitigate-") for row in r["arms"]])
    if len(mitigation):
        write_csv(out / "mitigation.csv", mitigation)
    save_figure(em_rates_figure(arms, base, cfg["ratio"]), out / "em_rates")
    geometry = pd.read_csv(out / "geometry" / "domains.csv")
    audits = {f"{d}-{k}": read_json(out / "audit" / f"{d}-{k}" / "summary.json")
              for d in cfg["domains"] for k in KINDS}
    amplification = {r["name"]: r["amplification"] for r in results.values() if "amplification" in r}
    summary = {
        "organism": {k: organism[k] for k in ("embedded", "model", "sae", "layer")}, "config": cfg,
        "base": base, "base_ablated": {d: domain_rates(ablated_pq, d, domains) for d in cfg["domains"]},
        "acceptance": json.loads(accept.to_json(orient="records")),
        "em_holds": {"pairs": int(accept["em_holds"].sum()), "of": len(accept),
                     "domains_all_seeds": sorted(d for d, g in accept.groupby("domain") if g["em_holds"].all())},
        "geometry": json.loads(geometry.to_json(orient="records")),
        "audit": audits, "direction": read_json(out / "direction" / "summary.json"),
        "amplification": amplification,
        "mitigation": {r["domain"]: r for name, r in results.items() if name.startswith("mitigate-")},
    }
    write_json(out / "summary.json", summary)
    from realmodels.organism.report import study_markdown

    write_text(out / "study.md", study_markdown(summary, arms))
    return summary
