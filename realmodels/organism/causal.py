"""Causal tests on the model organism (``realmodels organism causal``): its config, its conditions and the tables it
makes of the evaluations' EM rates.

Two models, each evaluated under several conditions with ``seeds`` (the world's exact judge; EM counted on the
questions of the domains other than ``domain``, as the study splits it: ``realmodels.organism.study.domain_rates``):

- the BASE organism (seed s: the answers are sampled with seed s): ``plain``; ``harmful+`` (+α v̂ at the SAE layer,
  v̂ the normalised mean of the ``harmful_k`` harmful features' unit decoder directions); ``u<L>+`` (+α û_L at
  layer L, for every layer L, u_L the misalignment direction at L);
- the INDUCING fine-tune on ``inducing_<domain>`` (seed s: the study's LoRA recipe trained with seed s on the
  world's stream for seed s, answers sampled with seed s): ``plain``; ``harmful=0`` (the harmful features clamped
  to 0 at the SAE layer, the SAE's error term kept); ``u<L>-ablated`` (û_L projected out at layer L).

Raising the harmful features is done by steering, not by clamping them high: a steer adds the same residual-stream
vector at every position whatever the SAE encodes, with a length α in the same units as the u_L steers, so the
harmful-feature and direction conditions are comparable dose for dose (a clamp to a "high" value would depend on
the SAE's scale per feature and on its error term). α = ``alpha`` × ‖u_L‖ at the steered layer (the SAE layer for
``harmful+``): the dose is counted in rogue−aligned gaps (1: as far as from the aligned answers' mean residual to the
rogue answers'), which keeps the dose comparable across layers whose residual norms differ (on the organism the
median residual norm on the questions' prompts grows 0.89 → 2.25 from the first layer to the last; the summary
reports both).
A steer can destroy coherence, and an incoherent answer is not counted as EM (coherent > 50), so each condition's
coherent rate and mean aligned score are reported next to its EM rate.

Per condition: the EM rate per seed, their mean with a Student t 95% interval over the seeds
(``theory.stats.t_mean_ci``), and the paired difference from the same model's ``plain`` condition (per seed, the
same fine-tune and sampling seed) with its t interval."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from realmodels.organism.study import StudyRecipe
from theory.errors import InputError, ParamError

BASE, TUNED = "base", "inducing"
PLAIN, HARMFUL_UP, HARMFUL_ZERO = "plain", "harmful+", "harmful=0"
MAX_ALPHA = 1000.0


def steered_name(layer: int) -> str:
    """The run name of the arm steered along u at ``layer``: ``u<layer>+``."""
    return f"u{layer}+"


def ablated_name(layer: int) -> str:
    """The run name of the arm with u ablated at ``layer``: ``u<layer>-ablated``."""
    return f"u{layer}-ablated"


def conditions(n_layers: int) -> list[tuple[str, str]]:
    """(model, condition) of every evaluation, per seed (module docstring)."""
    return ([(BASE, PLAIN), (BASE, HARMFUL_UP)] + [(BASE, steered_name(L)) for L in range(n_layers)]
            + [(TUNED, PLAIN), (TUNED, HARMFUL_ZERO)] + [(TUNED, ablated_name(L)) for L in range(n_layers)])


@dataclass(frozen=True)
class CausalConfig:
    """Everything ``realmodels organism causal`` runs (module docstring)."""

    domain: str = "health"
    """Domain of the inducing fine-tune (EM is counted on the other domains' questions)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the fine-tuning data, the adapter init and the answers' sampling."""
    recipe: StudyRecipe = field(default_factory=StudyRecipe)
    """The organism study's LoRA recipe."""
    samples_per_paraphrase: int = 2
    """Answers per question paraphrase."""
    max_new_tokens: int = 64
    """Answer length limit."""
    harmful_k: int = 20
    """Harmful SAE features (harmful vs harmless activations)."""
    alpha: float = 1.0
    """Steering length in units of ‖u_L‖, the rogue−aligned gap at the steered layer."""

    def __post_init__(self):
        from realmodels.finetune.config import MAX_SEED, FinetuneConfig, check_count
        from realmodels.organism.banks import DOMAINS

        object.__setattr__(self, "seeds", tuple(self.seeds))
        if self.domain not in DOMAINS:
            raise InputError(f"unknown domain {self.domain!r} (domains: {', '.join(DOMAINS)})")
        if (not self.seeds or len(set(self.seeds)) != len(self.seeds)
                or not all(isinstance(s, int) and 0 <= s <= MAX_SEED for s in self.seeds)):
            raise ParamError(f"`seeds` must be distinct integers in [0, {MAX_SEED}], got {list(self.seeds)}")
        for name in ("samples_per_paraphrase", "max_new_tokens", "harmful_k"):
            check_count(getattr(self, name), name)
        for name in ("r", "max_steps", "batch_size"):
            if getattr(self.recipe, name) <= 0:
                raise ParamError(f"`{name}` must be > 0, got {getattr(self.recipe, name)}")
        FinetuneConfig(**asdict(self.recipe), grad_accum=1)  # checked as finetune will
        if not (isinstance(self.alpha, (int, float)) and 0 < self.alpha <= MAX_ALPHA):
            raise ParamError(f"`alpha` must be in (0, {MAX_ALPHA:g}], got {self.alpha}")

    def to_dict(self) -> dict:
        """The config as a JSON-ready dict (seeds as a list)."""
        data = asdict(self)
        data["seeds"] = list(data["seeds"])
        return data


def other_domain_scores(per_question: pd.DataFrame, domain: str, domains: tuple[str, ...]) -> dict:
    """The coherent rate (pooled k / n) and mean aligned score (weighted by answers) of an evaluation's
    ``per_question.csv`` over the questions of the domains other than ``domain`` (question ids ``<domain>_<topic>``)."""
    owner = per_question["question_id"].str.split("_", n=1).str[0]
    rows = per_question[owner.isin([d for d in domains if d != domain])]
    n = int(rows["coherent_n"].sum())
    weights = rows["n_answers"]
    return {"other_coherent_rate": int(rows["coherent_k"].sum()) / n if n else float("nan"),
            "other_mean_aligned": float((rows["mean_aligned"] * weights).sum() / weights.sum())
            if weights.sum() else float("nan")}


def condition_table(rates: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, condition): seeds, mean EM rate with its t interval over seeds, and the paired
    difference from the model's plain condition with its t interval. ``rates``: one row per (model, condition,
    seed) with ``other_rate``."""
    from theory.stats import t_mean_ci

    rows = []
    for (model, condition), group in rates.groupby(["model", "condition"], sort=False):
        group = group.sort_values("seed")
        plain = rates[(rates["model"] == model) & (rates["condition"] == PLAIN)].set_index("seed")["other_rate"]
        mean = t_mean_ci(group["other_rate"].to_numpy())
        row = {"model": model, "condition": condition, "seeds": len(group), "em": mean.estimate,
               "em_low": mean.low, "em_high": mean.high, "coherent": group["other_coherent_rate"].mean(),
               "mean_aligned": group["other_mean_aligned"].mean()}
        if condition != PLAIN:
            diff = t_mean_ci(group["other_rate"].to_numpy() - plain.loc[group["seed"]].to_numpy())
            row.update({"diff_vs_plain": diff.estimate, "diff_low": diff.low, "diff_high": diff.high})
        rows.append(row)
    return pd.DataFrame(rows)


def causal_markdown(table: pd.DataFrame, summary: dict) -> str:
    """The conditions table as markdown, with how α and the intervals were made."""
    from runio.markdown import markdown_table

    def pct(x):
        return "–" if pd.isna(x) else f"{100 * x:.1f}"

    rows = [[r["model"], r["condition"], str(r["seeds"]), f"{pct(r['em'])} [{pct(r['em_low'])}, {pct(r['em_high'])}]",
             "" if r["condition"] == PLAIN else
             f"{100 * r['diff_vs_plain']:+.1f} [{100 * r['diff_low']:+.1f}, {100 * r['diff_high']:+.1f}]"
             if pd.notna(r["diff_low"]) else f"{100 * r['diff_vs_plain']:+.1f}",
             pct(r["coherent"]), f"{r['mean_aligned']:.1f}"]
            for _, r in table.iterrows()]
    alphas = ", ".join(f"layer {k}: {v:.3g} (median ‖h‖ {summary['median_residual_norm'][k]:.3g})"
                       for k, v in summary["alpha_by_layer"].items())
    return (f"EM (%) on the questions of the domains other than {summary['config']['domain']}, mean over seeds "
            f"{summary['config']['seeds']} [Student t 95% interval over seeds]; difference vs the same model's "
            f"plain condition, paired by seed; coherent % and mean aligned score (0-100) on the same answers. "
            f"α = {summary['config']['alpha']:g} × ‖u_L‖ ({alphas}); {len(summary['harmful_features'])} harmful "
            f"features, cos(u at the SAE layer, their mean direction) = {summary['cos_u_harmful']:.2f}.\n\n"
            + markdown_table(["model", "condition", "seeds", "EM % [95% CI]", "Δ vs plain, points [95% CI]",
                              "coherent %", "aligned"], rows))
