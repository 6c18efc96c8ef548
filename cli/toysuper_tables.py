"""What the ``toysuper`` commands print of a finished run (``toysuper.runners``' results): its summary as rich
tables, notes, the run directory; ``show(study, run)`` picks the study's printer. Undefined values in a summary
are null and print as n/a. Imports no torch: only rich."""

from __future__ import annotations

import math

from rich.table import Table

from runio.console import console


def _num(value, spec: str) -> str:
    """``value`` formatted, or n/a when undefined (None, NaN)."""
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def _fmt(interval: dict | None, scale: float = 1.0, fmt: str = ".2f") -> str:
    if interval is None or interval["estimate"] is None:
        return "n/a"
    low, high = (_num(None if interval[k] is None else interval[k] * scale, fmt) for k in ("low", "high"))
    return f"{interval['estimate'] * scale:{fmt}} [{low}, {high}]"


def _notes(summary: dict) -> None:
    for note in summary.get("notes", ()):
        console.print(f"note: {note}")


def _table(title: str, columns, **style) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, **style)
    return table


def print_simulate(run) -> None:
    """Print the predicted vs measured amplification agreement (pre-activation and ReLU output) and the most amplified
    features of the simulate run."""
    s = run.summary
    table = _table("predicted vs measured amplification (non-target features, all instances)",
                   ("quantity", "slope", "R²", "Spearman", "max rel. error", "median rel. error"), justify="right")
    for name, key in (("pre-activation Δz", "agreement_preactivation"), ("output Δx̂ (ReLU)", "agreement_output")):
        a = s[key]
        table.add_row(name, _num(a["slope"], ".3f"), _num(a["r2"], ".4f"), _num(a["spearman"], ".4f"),
                      _num(a["max_relative_error"], ".3g"), _num(a["median_relative_error"], ".3g"))
    console.print(table)
    top = _table(f"top amplified features (target {s['target']})",
                 ("instance", "feature", "cos to target", "predicted", "measured"), justify="right")
    for row in s["top_amplified"][:8]:
        top.add_row(str(row["instance"]), str(row["feature"]), f"{row['similarity']:+.3f}",
                    f"{row['predicted']:+.4g}", f"{row['measured']:+.4g}")
    console.print(top)
    _notes(s)
    console.print(f"run directory: [bold]{run.path}[/]")


def print_inducing(run) -> None:
    """Print the inducing study's correlations (pooled and per-seed Spearman with intervals) of proximity to the harmful
    set against misalignment, the theory-vs-measured agreement and the inducing vs non-inducing comparisons."""
    s = run.summary
    table = _table(f"proximity to the harmful set vs misalignment ({s['n_tasks']} tasks x {s['n_instances']} seeds)",
                   ("x", "y", "pooled ρ [95% CI]", "per-seed ρ [95% CI]"), no_wrap=True)
    for key in ("proximity_vs_rise", "proximity_vs_em", "data_proximity_vs_rise", "overlap_vs_rise",
                "theory_vs_measured_em"):
        if (c := s.get(key)) is None:  # a run directory from before the key existed
            continue
        table.add_row(c["x"], c["y"], _fmt(c["pooled"]["spearman"]) if c["pooled"] else "n/a", _fmt(c["per_instance_mean"]))
    console.print(table)
    agree = s["theory_vs_measured_rise"]
    if agree:
        console.print(f"theory vs measured harmful rise: slope {_num(agree['slope'], '.3f')}, "
                      f"R² {_num(agree['r2'], '.4f')}, median rel. error {_num(agree['median_relative_error'], '.3f')}")
    for key, label in (("inducing_vs_non_inducing", "target proximity"),
                       ("inducing_vs_non_inducing_data", "data proximity")):
        comp = s[key]
        if comp is None:
            console.print(f"inducing vs non-inducing ({label}): too few tasks in a group")
            continue
        line = (f"inducing ({comp['n_a']}) vs non-inducing ({comp['n_b']}) {label}: mean {comp['mean_a']:.3f} vs "
                f"{comp['mean_b']:.3f}, Δ {_fmt(comp['difference'], fmt='+.3f')}, "
                f"Mann-Whitney p={comp['mannwhitney_p']:.2g}, "
                f"permutation p={comp['permutation_p']:.2g}, Cliff's δ={comp['cliffs_delta']:.2f}")
        if null := comp.get("random_null"):
            line += f"; random-feature null mean {null['null_mean']:.3f}, p={null['p_value']:.2g}"
        console.print(line)
    console.print(f"run directory: [bold]{run.path}[/]")


def print_mitigate(run) -> None:
    """Print each mitigation's reductions of harmful rise and EM rate against unmitigated fine-tuning (95% intervals
    over seeds), its task retention and the share of overtly harmful samples it removed, and the legend."""
    s = run.summary
    table = _table(f"mitigations vs unmitigated fine-tuning ({s['n_tasks']} tasks x {s['n_instances']} seeds, "
                   "95% CI over seeds)", ("method", "drop", "R reduction %", "E reduction %", "E|t red. %",
                                          "E|¬t red. %", "task kept %", "overt %"), justify="right", no_wrap=True)
    for name, m in s["methods"].items():
        table.add_row(name, str(m["n_removed_per_task"]), _fmt(m["rise_reduction_percent"], fmt=".1f"),
                      _fmt(m["em_reduction_percent"], fmt=".1f"),
                      _num(m["em_target_probes_reduction_percent"]["estimate"], ".1f"),
                      _num(m["em_other_probes_reduction_percent"]["estimate"], ".1f"),
                      _fmt(m["task_retention_percent"], fmt=".1f"), f"{m['surface_harmful_removed_percent']:.0f}")
    console.print(table)
    console.print("drop: samples removed per task; R: harmful rise; E: EM rate (|t: on probes containing the target, "
                  "|¬t: on the others); overt %: share of the samples with an active harmful feature that were removed")
    console.print("paper (real LLM, context only): geometry filtering "
                  f"-{s['paper_geometry_reduction_percent']}% misalignment")
    _notes(s)
    console.print(f"run directory: [bold]{run.path}[/]")


def print_density(run) -> None:
    """Print the density sweep's table (one row per (n/m, p) cell: EM rates, harmful rise, proximity and the Spearman
    correlations, measured and predicted) and its legend."""
    table = _table("superposition density sweep (means over tasks x seeds)",
                   ("n/m", "p", "E %", "E|t %", "R", "prox", "ρ", "per-seed ρ [CI]", "ρ overlap", "ρ theory"),
                   justify="right", no_wrap=True)
    for row in run.table("density").to_dict("records"):
        rho = row["spearman_per_instance"]
        per_seed = "n/a" if _num(rho, ".2f") == "n/a" else \
            f"{rho:.2f} [{row['spearman_per_instance_low']:.2f}, {row['spearman_per_instance_high']:.2f}]"
        table.add_row(str(row["ratio"]), f"{row['probability']:g}", f"{100 * row['em_rate']:.2f}",
                      f"{100 * row['em_rate_target_probes']:.1f}", f"{row['harmful_rise']:.1e}", f"{row['proximity']:.2f}",
                      _num(row["spearman_pooled"], ".2f"), per_seed, _num(row.get("spearman_overlap"), ".2f"),
                      _num(row["spearman_theory"], ".3f"))
    console.print(table)
    console.print("E: EM rate on all probes; E|t: on probes containing the target; R: harmful rise; prox: mean max cos "
                  "of targets to H; ρ: Spearman(prox, R) pooled over tasks x seeds; ρ overlap: the same for "
                  "max_h <d_t, d_h> (norms kept); ρ theory: Spearman(first-order prediction, R)")
    console.print(f"run directory: [bold]{run.path}[/]")
    _notes(run.summary)


def print_geometry(run) -> None:
    """Print the geometry run's target, harmful set, harmful rise and EM rate, and its run directory."""
    g = run.summary
    console.print(f"target {g['target']}, harmful {g['harmful']}: harmful rise {g['harmful_rise']:.3e}, "
                  f"EM rate {g['em_rate']:.2%}")
    console.print(f"run directory: [bold]{run.path}[/]")


PRINTERS = {"simulate": print_simulate, "inducing": print_inducing, "mitigate": print_mitigate,
            "density": print_density, "geometry": print_geometry}


def show(study: str, run) -> None:
    """Print ``run``, the result of ``study``'s runner."""
    PRINTERS[study](run)


def rule(study: str) -> None:
    """The heading of ``study`` in ``figures``' output."""
    console.rule(f"[bold]{study}")


def print_figures(result) -> None:
    """The studies' timings and the figures ``run_figures`` wrote."""
    console.print(", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items())
                  + f"; total {result.total_seconds:.0f} s")
    console.print(f"wrote {len(result.written)} files to [bold]{result.out_dir}[/]: "
                  + ", ".join(sorted({p.stem for p in result.written})))
