"""The mitigation benchmark's tables, figures and report, read from its runs' files
(``realmodels.experiments.benchmark``; the statistics are stated there)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from runio.markdown import markdown_table

FIGURES = ("pareto", "budget_curve")


def arm_color(arm: str) -> str:
    """One colour per arm, the same in every figure."""
    from realmodels.evaluate.mitigate import ARMS

    return f"C{ARMS.index(arm) % 10}" if arm in ARMS else "0.3"


def _part(per_question: pd.DataFrame, domain: str, part: str) -> pd.DataFrame:
    """The rows of ``per_question`` on the fine-tuning domain's own questions (``in``) or the other domains'
    (``other``: emergent misalignment); question ids are ``<domain>_<topic>``."""
    owner = per_question["question_id"].str.split("_", n=1).str[0]
    return per_question[owner == domain] if part == "in" else per_question[owner != domain]


def run_rows(results: dict) -> pd.DataFrame:
    """One row per (cell, arm) run: cell, domain, seed, arm, name, budget, EM k / n on the other domains'
    questions (``em_*``) and on the fine-tuning domain's own (``in_em_*``), task losses."""
    from realmodels.experiments.study import removed_kinds

    rows = []
    for key, result in results.items():
        cell, name = key.split(".", 1)
        domain, seed = cell.rsplit("-s", 1)
        per_question = pd.read_csv(Path(result["evaluate"]) / "per_question.csv")
        removed = Path(result["evaluate"]).parent / f"filter-{name}" / "removed.jsonl"
        kinds = removed_kinds(removed) if removed.is_file() else {}
        rows.append({"cell": cell, "domain": domain, "seed": int(seed), "arm": result["arm"], "name": name,
                     "budget": result["budget"],
                     **{f"{prefix}em_{x}": int(_part(per_question, domain, part)[f"em_{x}"].sum())
                        for prefix, part in (("", "other"), ("in_", "in")) for x in ("k", "n")},
                     "task_nll": result.get("task_nll"),
                     "base_task_nll": result.get("base_task_nll"),
                     "removed_inducing": kinds.get("inducing"), "removed_total": sum(kinds.values()) if kinds else None})
    return pd.DataFrame(rows)


def _units(results: dict, runs: pd.DataFrame, part: str = "other") -> pd.DataFrame:
    """Per (cell, question) of each listed run, on the other domains' questions (``part`` other) or the
    fine-tuning domain's own (in): em_k, em_n, em_rate."""
    frames = []
    for row in runs.itertuples():
        pq = _part(pd.read_csv(Path(results[f"{row.cell}.{row.name}"]["evaluate"]) / "per_question.csv"),
                   row.domain, part)
        frames.append(pq[["question_id", "em_k", "em_n", "em_rate"]].assign(cell=row.cell, arm=row.arm))
    return pd.concat(frames, ignore_index=True)


def compare(results: dict, runs: pd.DataFrame, *, n_bootstrap: int, seed: int = 0) -> pd.DataFrame:
    """One row per arm of ``runs`` (one budget; ``none`` among them): pooled EM rate over (cell, question) units of
    the other domains, reduction against none (paired units), the in-domain EM rate and task retention (paired
    cells), each with a 95% interval."""
    from theory.em_rates import em_reduction_percent, pooled_rate
    from theory.retention import task_retention

    units = _units(results, runs)
    in_domain = _units(results, runs, "in")
    none_units = units[units["arm"] == "none"].set_index(["cell", "question_id"])
    none_runs = runs[runs["arm"] == "none"].set_index("cell")
    rows = []
    for arm, part in units.groupby("arm", sort=False):
        part = part.set_index(["cell", "question_id"])
        em = pooled_rate(part["em_k"].astype(int), part["em_n"].astype(int), n_bootstrap=n_bootstrap, seed=seed)
        own = in_domain[in_domain["arm"] == arm]
        own_em = pooled_rate(own["em_k"].astype(int), own["em_n"].astype(int), n_bootstrap=n_bootstrap, seed=seed)
        both = part.join(none_units, rsuffix="_none", how="inner").dropna(subset=["em_rate", "em_rate_none"])
        reduction = (em_reduction_percent(both["em_rate_none"], both["em_rate"], n_bootstrap=n_bootstrap, seed=seed)
                     if arm != "none" and len(both) else None)
        arm_runs = runs[runs["arm"] == arm].set_index("cell")
        cells = [c for c in arm_runs.index if c in none_runs.index]
        retention = task_retention(none_runs.loc[cells, "base_task_nll"].astype(float),
                                   arm_runs.loc[cells, "task_nll"].astype(float),
                                   none_runs.loc[cells, "task_nll"].astype(float), n_bootstrap=n_bootstrap, seed=seed)
        removed = arm_runs["removed_total"].dropna()
        rows.append({"arm": arm, "cells": len(cells), "em_rate": em.estimate, "em_low": em.low, "em_high": em.high,
                     "em_k": int(part["em_k"].sum()), "em_n": int(part["em_n"].sum()),
                     "in_em_rate": own_em.estimate, "in_em_low": own_em.low, "in_em_high": own_em.high,
                     "reduction": np.nan if reduction is None else reduction.estimate,
                     "reduction_low": np.nan if reduction is None else reduction.low,
                     "reduction_high": np.nan if reduction is None else reduction.high,
                     "task_nll": float(arm_runs["task_nll"].astype(float).mean()),
                     "task_retention": retention.estimate, "retention_low": retention.low,
                     "retention_high": retention.high,
                     "removed_inducing_share": (float(arm_runs["removed_inducing"].dropna().sum() / removed.sum())
                                                if len(removed) and removed.sum() else np.nan)})
    return pd.DataFrame(rows)


def pairs(results: dict, runs: pd.DataFrame, *, n_bootstrap: int, seed: int = 0) -> pd.DataFrame:
    """Every ordered pair of distinct arms (a, b): EM rate of a minus b pooled over the (cell, question)
    units both answered, with a paired bootstrap interval (``theory.em_rates.paired_rate_difference``)."""
    from theory.em_rates import paired_rate_difference

    units = _units(results, runs).dropna(subset=["em_rate"])
    by_arm = {arm: part.set_index(["cell", "question_id"]) for arm, part in units.groupby("arm", sort=False)}
    rows = []
    for a in by_arm:
        for b in (b for b in by_arm if b != a):
            both = by_arm[a].join(by_arm[b], lsuffix="_a", rsuffix="_b", how="inner")
            d = paired_rate_difference(both["em_k_a"], both["em_n_a"], both["em_k_b"], both["em_n_b"],
                                       n_bootstrap=n_bootstrap, seed=seed)
            rows.append({"a": a, "b": b, "units": len(both), "em_difference": d.estimate, "low": d.low,
                         "high": d.high})
    return pd.DataFrame(rows)


def pareto_figure(table: pd.DataFrame):
    """EM rate against task retention per arm with both intervals; the arms no other arm beats on both (lower EM,
    higher retention) joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for row in table.itertuples():
        ax.errorbar(row.task_retention, row.em_rate, xerr=[[row.task_retention - row.retention_low],
                                                           [row.retention_high - row.task_retention]],
                    yerr=[[row.em_rate - row.em_low], [row.em_high - row.em_rate]], fmt="o", color=arm_color(row.arm),
                    capsize=3, label=row.arm)
        ax.annotate(row.arm, (row.task_retention, row.em_rate), textcoords="offset points", xytext=(5, 5), fontsize=8)
    front = [r for r in table.itertuples() if not any(
        (o.em_rate <= r.em_rate and o.task_retention >= r.task_retention)
        and (o.em_rate < r.em_rate or o.task_retention > r.task_retention) for o in table.itertuples())]
    front = sorted(front, key=lambda r: r.task_retention)
    ax.plot([r.task_retention for r in front], [r.em_rate for r in front], color="0.5", linestyle="--", linewidth=1,
            label="Pareto front")
    ax.axvline(1.0, color="0.8", linewidth=0.8)
    ax.axvline(0.0, color="0.8", linewidth=0.8, linestyle=":")
    ax.set_xlabel("task retention (1 = as much as no defence; 0 = the base model)")
    ax.set_ylabel("EM rate, other domains (95% CI)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def budget_figure(curve: pd.DataFrame, none_rate: float):
    """EM rate of each data arm against the budget (the curve's cells), none as a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, part in curve.groupby("arm", sort=False):
        part = part.sort_values("budget")
        ax.errorbar(part["budget"], part["em_rate"], yerr=[part["em_rate"] - part["em_low"],
                                                           part["em_high"] - part["em_rate"]],
                    marker="o", capsize=3, color=arm_color(arm), label=arm)
    ax.axhline(none_rate, color="0.3", linestyle="--", linewidth=1, label="none")
    ax.set_xlabel("budget (fraction of the training set removed; interleave: added)")
    ax.set_ylabel("EM rate, other domains (95% CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fmt(value, spec: str = ".3f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)


def markdown(table: pd.DataFrame, curve: pd.DataFrame, summary: dict, paired: pd.DataFrame) -> str:
    """``benchmark.md``: the main table, the paired differences against random and the budget curve."""
    rows = [[r.arm, r.cells, f"{_fmt(r.em_rate)} [{_fmt(r.em_low)}, {_fmt(r.em_high)}]", f"{r.em_k}/{r.em_n}",
             f"{_fmt(r.in_em_rate)} [{_fmt(r.in_em_low)}, {_fmt(r.in_em_high)}]",
             "-" if r.arm == "none" else f"{_fmt(r.reduction, '.1f')}% [{_fmt(r.reduction_low, '.1f')}, "
                                         f"{_fmt(r.reduction_high, '.1f')}]",
             f"{_fmt(r.task_retention, '.2f')} [{_fmt(r.retention_low, '.2f')}, {_fmt(r.retention_high, '.2f')}]",
             _fmt(r.task_nll, ".4f"), _fmt(r.removed_inducing_share, ".2f")] for r in table.itertuples()]
    text = (f"# Mitigation benchmark\n\nbudget {summary['budget']:g}, {len(summary['cells'])} cells "
            f"({', '.join(summary['cells'])}); base model task loss {_fmt(summary['base_task_nll'], '.4f')}\n\n"
            + markdown_table(["arm", "cells", "EM rate, other domains [95% CI]", "EM k/n",
                              "in-domain EM rate [95% CI]", "reduction vs none [95% CI]",
                              "task retention [95% CI]", "task loss", "inducing share of removed"], rows) + "\n")
    versus = paired[paired["b"] == "random"] if len(paired) else paired
    if len(versus):
        text += "\n## EM rate minus the random arm's (paired over cells and questions)\n\n" + markdown_table(
            ["arm", "difference [95% CI]", "units"],
            [[r.a, f"{_fmt(r.em_difference, '+.3f')} [{_fmt(r.low, '+.3f')}, {_fmt(r.high, '+.3f')}]", r.units]
             for r in versus.itertuples()]) + "\n"
    if len(curve):
        text += "\n## Budget curve\n\n" + markdown_table(
            ["arm", "budget", "cells", "EM rate, other domains [95% CI]", "task retention"],
            [[r.arm, f"{r.budget:g}", r.cells, f"{_fmt(r.em_rate)} [{_fmt(r.em_low)}, {_fmt(r.em_high)}]",
              _fmt(r.task_retention, ".2f")] for r in curve.itertuples()]) + "\n"
    return text


def aggregate(out: Path, config, results: dict, log) -> dict:
    """``runs.csv``, ``arms.csv``, ``budget_curve.csv``, ``figures/``, ``summary.json``, ``benchmark.md``."""
    from runio.atomic import nan_to_none, save_figure, write_csv, write_json, write_text

    from realmodels.evaluate.mitigate import DATA_ARMS

    order = {arm: i for i, arm in enumerate(config.arms)}
    runs = run_rows(results)
    runs = runs.assign(_o=runs["arm"].map(order)).sort_values(["cell", "_o", "budget", "name"], kind="stable")
    runs = runs.drop(columns="_o").reset_index(drop=True)
    write_csv(out / "runs.csv", runs)
    main = runs[runs["budget"] == config.budget]
    table = compare(results, main, n_bootstrap=config.n_bootstrap)
    table = table.sort_values("arm", key=lambda arms: arms.map(order), kind="stable").reset_index(drop=True)
    write_csv(out / "arms.csv", table)
    paired = pairs(results, main, n_bootstrap=config.n_bootstrap)
    write_csv(out / "pairs.csv", paired)
    curve_cells = [f"{d}-s{s}" for d in config.curve_domains for s in config.curve_seeds]
    on_curve = runs[runs["cell"].isin(curve_cells)]
    none_curve = on_curve[(on_curve["arm"] == "none") & (on_curve["budget"] == config.budget)]
    frames = []
    for budget in config.budgets:
        chosen = on_curve[(on_curve["budget"] == budget) & on_curve["arm"].isin(DATA_ARMS)]
        if len(chosen):
            rows = compare(results, pd.concat([none_curve, chosen]), n_bootstrap=config.n_bootstrap)
            frames.append(rows[rows["arm"] != "none"].assign(budget=budget))
    curve = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_csv(out / "budget_curve.csv", curve)
    (out / "figures").mkdir(exist_ok=True)
    save_figure(pareto_figure(table), out / "figures" / "pareto")
    if len(curve):
        none_rate = compare(results, none_curve, n_bootstrap=config.n_bootstrap)["em_rate"].iloc[0]
        save_figure(budget_figure(curve, none_rate), out / "figures" / "budget_curve")
    summary = nan_to_none({"budget": config.budget, "budgets": list(config.budgets), "cells": sorted(runs["cell"].unique()),
                           "base_task_nll": float(main[main["arm"] == "none"]["base_task_nll"].mean()),
                           "arms": table.to_dict("records"), "budget_curve": curve.to_dict("records"),
                           "pairs": paired.to_dict("records"),
                           "n_runs": len(runs), "config": config.to_dict()})
    write_json(out / "summary.json", summary)
    write_text(out / "benchmark.md", markdown(table, curve, summary, paired))
    log(f"benchmark: {len(runs)} runs aggregated into {out / 'arms.csv'} and {out / 'benchmark.md'}")
    return summary
