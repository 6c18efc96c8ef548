"""What the ``realmodels`` commands print: the registry and each command's summary as a rich table, read
from the same summary dict that the run directory's ``summary.json`` holds (so a finished run is shown
exactly as it was when it ran)."""

from __future__ import annotations

import math
from pathlib import Path

from rich.table import Table

from cli.progress import stdout_console
from theory.em_rates import em_label

console = stdout_console()


def fmt(x: float | None, spec: str = ".3f") -> str:
    """``x`` formatted with ``spec``; "nan" for None or a non-finite number."""
    return "nan" if x is None or not math.isfinite(x) else format(x, spec)


def print_checkpoints() -> None:
    """Print the registered checkpoints (``realmodels.loading.registry.REGISTRY``): model and SAE release, SAE layers,
    widths, parameter count and the memory estimates of the weights and of loading the SAE."""
    from realmodels.loading.memory import SAE_PEAK_COPIES
    from realmodels.loading.registry import REGISTRY, memory_estimate_gb

    table = Table(title="registered checkpoints", caption="GB = parameters x bytes per parameter (1e9 bytes); "
                  "SAE: peak RAM while sae-lens loads it (float32)")
    for col, justify in (("name", "left"), ("model / SAE release", "left"), ("SAE layers", "right"),
                         ("d_model / d_sae", "right"), ("params", "right"), ("weights", "right"),
                         ("float32", "right"), ("SAE", "right")):
        table.add_column(col, justify=justify, no_wrap=col in ("name", "model / SAE release"))
    for spec in REGISTRY.values():
        layers = list(spec.layers)
        span = ("none" if not layers else f"{layers[0]}-{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1))
                else ",".join(map(str, layers)))
        d_sae = "?" if spec.d_sae is None else f"{spec.d_sae:,}"
        sae_gb = "?" if spec.d_sae is None else f"{SAE_PEAK_COPIES * spec.hidden_size * spec.d_sae * 4 / 1e9:.1f} GB"
        table.add_row(spec.name, f"{spec.model_id}\n{spec.sae_release}", span, f"{spec.hidden_size:,} / {d_sae}",
                      f"{spec.n_params / 1e9:.2f} B", f"{memory_estimate_gb(spec):.1f} GB {spec.default_dtype}",
                      f"{memory_estimate_gb(spec, 'float32'):.1f} GB", sae_gb)
    console.print(table)


def print_geometry(summary: dict, proximity: str, out: Path) -> None:
    """Print, per domain, the proximity of the inducing and control features to the harmful features with their
    intervals, the difference, the Mann-Whitney and permutation p-values, Cliff's δ and the null p-value, then the
    run directory."""
    table = Table(title=f"proximity to harmful features ({proximity}): inducing vs control")
    for col in ("domain", "n ind/ctl", "inducing [CI]", "control [CI]", "difference [CI]", "MW p", "perm p",
                "Cliff's δ", "null p (ind)"):
        table.add_column(col, justify="right")
    for r in summary["domains"]:
        table.add_row(r["domain"], f"{r['n_inducing']}/{r['n_control']}",
                      f"{fmt(r['mean_inducing'])} [{fmt(r['inducing_ci_low'])}, {fmt(r['inducing_ci_high'])}]",
                      f"{fmt(r['mean_control'])} [{fmt(r['control_ci_low'])}, {fmt(r['control_ci_high'])}]",
                      f"{fmt(r['difference'], '+.3f')} [{fmt(r['difference_ci_low'], '+.3f')}, "
                      f"{fmt(r['difference_ci_high'], '+.3f')}]",
                      fmt(r["mannwhitney_p"], ".3g"), fmt(r["permutation_p"], ".3g"), fmt(r["cliffs_delta"], "+.2f"),
                      fmt(r["null_p_inducing"], ".3g"))
    console.print(table)
    console.print(f"run directory: [bold]{out}[/]")


def print_filter(summary: dict, out: Path) -> None:
    """Print the filtering summary (samples removed and kept, mean score of each, number of toxic features, the score's
    AUC harmful vs harmless) and where the filtered data went."""
    table = Table(title=f"{summary['method']} filtering")
    for col in ("samples", "removed", "kept", "mean score removed", "mean score kept", "toxic features",
                "score AUC harmful vs harmless"):
        table.add_column(col, justify="right")
    v = summary["score_validity"]
    table.add_row(str(summary["n_samples"]), str(summary["n_removed"]), str(summary["n_kept"]),
                  fmt(summary["mean_score_removed"]), fmt(summary["mean_score_kept"]),
                  str(len(summary["toxic_features"])),
                  f"{fmt(v['auc'])} ({'held-out' if v['held_out'] else 'in-sample'})")
    console.print(table)
    console.print(f"filtered data: [bold]{out / 'filtered.jsonl'}[/] (removed: removed.jsonl, scores: scores.csv)")


def print_audit(summary: dict, out: Path) -> None:
    """``summary``: the ``AuditReport`` fields without ``features``, plus the ``top_harmful_features`` shown."""
    rows, null = summary["top_harmful_features"], summary["null"]
    table = Table(title=f"predicted amplification of harmful features (top {len(rows)} "
                        f"of {summary['n_harmful_features']})")
    for col in ("harmful feature", "relative amplification", "Δa (η<x̄,x'> units)", "via dataset feature",
                "cosine", "direct"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(str(row["harmful_feature"]), fmt(row["relative_amplification"], "+.3f"),
                      fmt(row["predicted_change"], "+.3g"), str(row["top_dataset_feature"]),
                      fmt(row["cosine_to_top"], "+.3f"), "yes" if row["direct"] else "")
    console.print(table)
    level = summary["risk_level"]
    colour = {"high": "bold red", "elevated": "yellow", "typical": "green"}[level]
    console.print(f"geometric safety score [bold]{summary['safety_score']:.3f}[/] ([{colour}]{level} risk[/]): "
                  f"risk {summary['risk']:.3f} vs random feature sets {null['null_mean']:.3f} "
                  f"(z = {fmt(null['z_score'], '+.2f')}, {null['n_draws']} draws)")
    console.print(f"[dim]{summary['assumption']}[/]")
    console.print(f"run directory: [bold]{out}[/]")


def print_finetune(summary: dict, out: Path) -> None:
    """``summary``: the finetune run's summary.json (``realmodels.finetune.pipeline.finetune_pipeline``)."""
    recipe = summary["recipe"]
    table = Table(title=f"fine-tuning ({recipe['preset']}, {recipe['method']})")
    for col in ("steps", "final loss", "trainable parameters", "conversations", "resumed from"):
        table.add_column(col, justify="right")
    table.add_row(f"{summary['steps']} / {summary['max_steps']}", fmt(summary["final_loss"], ".4f"),
                  f"{summary['trainable_parameters']:,}", str(summary["n_train"]),
                  "-" if summary["resumed_from"] is None else f"step {summary['resumed_from']}")
    console.print(table)
    if (monitor := summary.get("monitor")) is not None:
        alarm = "" if monitor["alarm_step"] is None else f"; [bold red]alarm at step {monitor['alarm_step']}[/]"
        console.print(f"monitor: harmful features rose {fmt(monitor['harmful_rise'], '+.4g')}, training-data features "
                      f"{fmt(monitor['targets_rise'], '+.4g')} (ratio {fmt(monitor['ratio'], '.3g')}) on "
                      f"{monitor['n_probes']} probes{alarm}")
    if (guard := summary.get("guard")) is not None:
        console.print(f"guard: {guard['kind']} (λ {guard['weight']:g}) on {guard['harmful_k']} harmful features "
                      f"(span rank {guard['rank']})")
    if (defence := summary.get("defence")) is not None:
        parts = [f"CAFT {defence['caft']}" + (f" (span rank {defence['caft_rank']})" if "caft_rank" in defence else "")
                 ] if defence["caft"] != "none" else []
        if defence["direction"] is not None and defence["caft"] != "direction":
            parts.append(f"steering α {defence['steer_alpha']:g}")
        if defence["kl_weight"] > 0:
            parts.append(f"KL to base λ {defence['kl_weight']:g}")
        console.print(f"defences (training only): {', '.join(parts) or 'none'}")
    if summary["stopped_early"]:
        console.print("[yellow]training stopped before the planned steps (the monitor's alarm)[/]")
    console.print(f"{'adapter' if recipe['method'] == 'lora' else 'model'}: [bold]{summary['output']}[/]")
    console.print(f"run directory: [bold]{out}[/]")


def print_evaluation(summary: dict, out: Path) -> None:
    """``summary``: an evaluate run's summary.json (``realmodels.experiments.evaluate.run_evaluation``)."""
    overall = summary["overall"]
    table = Table(title=f"emergent misalignment ({summary['n_answers']} answers, {summary['n_questions']} questions, "
                        f"judge {summary['judge']})")
    for col in ("rate", "estimate", "95% CI", "count"):
        table.add_column(col, justify="right")
    names = {"em": f"EM ({em_label(summary['thresholds'])})", "em_given_coherent": "EM among coherent answers",
             "coherent": "coherent", "refusal": "refusal"}
    for key, label in names.items():
        rate = overall[key]
        table.add_row(label, fmt(rate["estimate"]),
                      f"[{fmt(rate['low'])}, {fmt(rate['high'])}]", f"{rate['k']} / {rate['n']}")
    console.print(table)
    if summary["n_missing_answers"] or summary["n_judge_errors"]:
        console.print(f"[yellow]incomplete: {summary['n_missing_answers']} answers missing, {summary['n_judge_errors']} "
                      "judge requests failed — rerun with the same --out to retry them[/]")
    for layer, norm in summary.get("median_residual_norm", {}).items():
        console.print(f"steered layer {layer}: median residual norm {fmt(norm, '.3g')} on the questions' prompts "
                      f"(α is in these units)")
    console.print(f"run directory: [bold]{out}[/]")


def print_mitigation(summary: dict, out: Path) -> None:
    """``summary``: a mitigate run's summary.json (one row per arm)."""
    table = Table(title=f"emergent misalignment after removing {summary['budget']:.0%} of the training data")
    task = any("task_retention" in arm for arm in summary["arms"])
    for col in ("arm", "runs", "EM k/n", "EM rate", "95% CI", "reduction vs none", "95% CI ",
                *(("task loss", "task retention") if task else ())):
        table.add_column(col, justify="right")
    for arm in summary["arms"]:
        table.add_row(arm["arm"], str(arm["runs"]), f"{arm.get('em_k', '?')}/{arm['n_answers_scored']}",
                      fmt(arm["em_rate"]), f"[{fmt(arm['em_low'])}, {fmt(arm['em_high'])}]",
                      "-" if arm["arm"] == "none" else f"{fmt(arm['reduction'], '.1f')}%",
                      "" if arm["arm"] == "none" else f"[{fmt(arm['reduction_low'], '.1f')}, "
                                                      f"{fmt(arm['reduction_high'], '.1f')}]",
                      *((fmt(arm["task_nll"], ".4f"), fmt(arm["task_retention"], ".2f")) if task else ()))
    console.print(table)
    console.print(f"[dim]paper (Minegishi et al.): the geometry filter reduced EM by {summary['paper_geometry_reduction']}%"
                  f"[/]")
    console.print(f"run directory: [bold]{out}[/]")
