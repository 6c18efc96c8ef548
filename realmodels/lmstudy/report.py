"""The study's tables and ``study.md``: geometry per layer and pair, one row per fine-tuned arm (training loss,
the monitor's harmful-feature rise on the off-domain probes, the probes' shift along the misalignment direction,
the in-domain task loss, the removal's composition, the amplification R²), and every arm's greedy samples."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from realmodels.lmstudy.config import LmStudyConfig
from runio.atomic import nan_to_none, write_csv, write_text
from runio.markdown import markdown_table


GEOMETRY_SHOWN = ("layer", "domain", "n_inducing", "n_control", "mean_inducing", "mean_control", "difference",
                  "difference_ci_low", "difference_ci_high", "permutation_p")


def sample_questions(path: Path, config: LmStudyConfig) -> list:
    """``config.n_samples`` questions (first paraphrase, one sample each): the first question of each domain's
    group in turn, off-domain groups first, then the rest in file order."""
    from realmodels.evaluate.questions import load_questions

    questions = [replace(q, paraphrases=q.paraphrases[:1]) for q in load_questions(path, samples_per_paraphrase=1)]
    groups: dict[str, list] = {}
    for q in questions:
        groups.setdefault(q.id.split("_")[0], []).append(q)
    order = sorted(groups, key=lambda g: (g == config.domain, g == "general"))
    chosen, depth = [], 0
    while len(chosen) < min(config.n_samples, len(questions)):
        for group in order:
            if depth < len(groups[group]) and len(chosen) < config.n_samples:
                chosen.append(groups[group][depth])
        depth += 1
    return chosen


def _geometry_rows(layers: list[int], geometry: dict[int, dict]) -> list[dict]:
    """Every layer's ``domains`` records (``run_geometry``'s summary: one per inducing/control pair and pooled)."""
    return [{"layer": layer, **record} for layer in layers for record in geometry[layer]["domains"]]


def _arm_row(name: str, arm: dict | None, measures: dict, amplification: dict | None) -> dict:
    monitor = (arm or {}).get("monitor") or {}
    shift, loss = measures["shift"], measures["task_loss"]
    row = {"arm": name, "final_loss": (arm or {}).get("final_loss"), "harmful_rise": monitor.get("harmful_rise"),
           "targets_rise": monitor.get("targets_rise"), "rise_ratio": monitor.get("ratio"),
           "shift": shift["mean"], "shift_low": shift["low"], "shift_high": shift["high"], "task_nll": loss["nll"]}
    if measures.get("removed"):
        row.update({f"removed_{k}": v for k, v in measures["removed"].items()})
    if amplification is not None:
        agreement = amplification["agreement"]
        row.update({"r2_jvp": agreement["first_order"]["r2"], "r2_isotropic": agreement["isotropic"]["r2"]})
    return row


def _markdown(table: pd.DataFrame) -> str:
    """``table`` as markdown, floats to 4 significant digits."""
    return markdown_table(list(table.columns), [[f"{v:.4g}" if isinstance(v, float) else v for v in row]
                                                for row in table.itertuples(index=False)])


def write_report(out: Path, config: LmStudyConfig, layers: list[int], geometry: dict, audits: dict, arms: dict,
                 amplification: dict, measures: dict) -> dict:
    """``geometry.csv``, ``arms.csv`` and ``study.md`` in ``out``; returns the study's summary."""
    geometry_table = pd.DataFrame(_geometry_rows(layers, geometry))
    main = layers[0]
    rows = [_arm_row(name, arms.get(name), measures[name],
                     amplification.get(main) if name == "inducing" else None) for name in measures]
    arms_table = pd.DataFrame(rows)
    write_csv(out / "geometry.csv", geometry_table)
    write_csv(out / "arms.csv", arms_table)
    audit_rows = pd.DataFrame([{"layer": layer, "set": f"{kind}_{config.domain}",
                                "safety_score": a.get("safety_score"), "risk": a.get("risk_level")}
                               for (layer, kind), a in audits.items()])
    amp_rows = pd.DataFrame([{"layer": layer, "r2_jvp": s["agreement"]["first_order"]["r2"],
                              "r2_isotropic": s["agreement"]["isotropic"]["r2"]} for layer, s in amplification.items()])
    samples = []
    for name, m in measures.items():
        samples.append(f"\n### {name}\n")
        samples += [f"- **{s['question']}**: {s['answer'].strip()[:400]!r}" for s in m["samples"]]
    text = "\n\n".join([
        f"# Study on a pretrained LM: domain {config.domain}, layers {', '.join(map(str, layers))}",
        "## Geometry (proximity to the harmful features: inducing vs control)",
        _markdown(geometry_table[[c for c in GEOMETRY_SHOWN if c in geometry_table]]),
        "## Audit of the training sets", _markdown(audit_rows),
        f"## Arms (monitor and shifts at layer {main}, on the off-domain probes)", _markdown(arms_table),
        "## Amplification of the inducing arm (measured vs predicted change of every feature)", _markdown(amp_rows),
        "## Greedy samples", "\n".join(samples)]) + "\n"
    write_text(out / "study.md", text)
    return nan_to_none({"layers": layers, "geometry": geometry_table.to_dict("records"),
                        "arms": arms_table.to_dict("records"), "audit": audit_rows.to_dict("records"),
                        "amplification": amp_rows.to_dict("records")})
