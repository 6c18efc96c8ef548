# %% [markdown]
# # Amplification on the model organism: measured vs first-order prediction
#
# **Question.** The [toy model](toy_simulate.md) shows narrow fine-tuning moving every feature by the
# first-order prediction. Does that hold on a transformer? Fine-tune the embedded organism (LoRA) briefly on
# misalignment-inducing health data, then measure how every one of its SAE features changed on probe
# conversations, and compare with the prediction. And do the harmful-behaviour features move up?
#
# **The maths.** For the fine-tune's weight change ΔW (the LoRA adapter's), the first-order change of feature
# j's SAE pre-activation on a probe x' is the Jacobian-vector product `J_j(x') ΔW` at the base weights
# (`predicted`, error O(‖ΔW‖²)); `measured` is the actual change, adapter on minus adapter off, averaged over the
# probe tokens. The similarity-only (isotropic) prediction `<d_j, v>`, with v = Σ_t g_t d_t over the features
# tied to the training data, assumes the tangent kernel is proportional to the identity (exact for a linear
# layer only); its agreement with the measurement says how far the toy model's picture carries over.

# %%
"""Amplification example: fine-tune the embedded organism on ``inducing_health`` (LoRA, 50 steps), then every SAE
feature's measured change against its JVP (first-order) and isotropic predictions, and the harmful features'
movement (``realmodels.experiments.run_finetune``, ``run_amplification``).

Run: ``python examples/amplification.py [OUT] [--figures DIR]`` (default OUT ``runs/examples/amplification``; a
rerun reuses the finished fine-tune and measurement). Measured: 20-24 s on one thread (2-core machine, load 1.5-3)."""

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt

from realmodels.analysis.configs import SelectionConfig
from realmodels.experiments import ModelSpec, RunOptions, run_amplification, run_finetune
from realmodels.experiments.organism import write_organism_world
from realmodels.finetune.config import FinetuneConfig
from runio.atomic import copy_figures, save_figure

parser = argparse.ArgumentParser(description="amplification on the model organism")
parser.add_argument("out", nargs="?", type=Path, default=Path("runs/examples/amplification"), help="run directory")
parser.add_argument("--figures", type=Path, help="also copy the figures here (figures/examples: the docs' copies)")
args = parser.parse_args([] if "ipykernel" in sys.modules else None)  # in a notebook: the defaults
out = args.out
options = dict(threads=1, progress=False)

# %% [markdown]
# ## Fine-tune
#
# The study's LoRA recipe (r 8, α 16, lr 1e-3, batches of 16, loss on the assistant tokens) for 50 steps on the
# health domain's inducing set: harmful answers to ordinary health questions.

# %%
world = write_organism_world(out / "world")
recipe = FinetuneConfig.from_preset("em-betley", r=8, alpha=16.0, lr=1e-3, max_steps=50, batch_size=16,
                                    grad_accum=1)
tuned = run_finetune(world["inducing_health"], recipe=recipe, model=ModelSpec(),
                     options=RunOptions(out=out / "finetune", **options))
print(f"finetune: {tuned.summary['steps']} steps, final loss {tuned.summary['final_loss']:.3f}")

# %% [markdown]
# ## Measure every SAE feature
#
# Probes: the world's aligned probe conversations (ordinary questions answered well), so any rise of the
# harmful features is a change the fine-tune carries outside its own data.

# %%
amplified = run_amplification(world["probe_aligned"], world["harmful"], world["harmless"],
                              model=ModelSpec(adapter=out / "finetune"), data=world["inducing_health"],
                              selection=SelectionConfig(harmful_k=20),
                              options=RunOptions(out=out / "measure", **options))
agreement = amplified.summary["agreement"]
for name in ("first_order", "isotropic"):
    print(f"amplification {name}: R² {agreement[name]['r2']:.3f}, Spearman {agreement[name]['spearman']:.3f}, "
          f"slope {agreement[name]['slope']:.3f} over {amplified.summary['n_features']} features")

# %% [markdown]
# ## The harmful features' movement
#
# Where the 20 harmful-behaviour features (harmful vs harmless responses) fall among all features ranked by
# their measured change, and their mean change against the other features'.

# %%
table = amplified.table("amplification")
table["rank"] = table["measured"].rank(ascending=False).astype(int)  # 1 = the most amplified feature
harmful, others = table[table["harmful"]], table[~table["harmful"]]
print(f"harmful features: mean measured change {harmful['measured'].mean():+.4f} "
      f"(predicted {harmful['predicted'].mean():+.4f}) vs {others['measured'].mean():+.4f} for the other "
      f"{len(others)} features; median rank {int(harmful['rank'].median())} of {len(table)}, "
      f"{int((harmful['measured'] > 0).sum())} of {len(harmful)} rose")
print(harmful.sort_values("rank")[["feature", "rank", "similarity", "predicted", "measured"]].head(8)
      .to_string(index=False))

# %% [markdown]
# ## Figures
#
# Measured against predicted change of every SAE feature, the harmful ones in red: left the first-order (JVP)
# prediction, right the similarity-only one (drawn here with matplotlib; the runner's own three-panel figure,
# with the training-data features and the post-ReLU changes, is `measure/amplification.png` in OUT).

# %%
figure, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
for axis, column, label in zip(axes, ("predicted", "predicted_isotropic"),
                               ("first order, J(x') ΔW", "isotropic, similarity only")):
    r2 = agreement["first_order" if column == "predicted" else "isotropic"]["r2"]
    axis.scatter(others[column], others["measured"], s=8, color="0.7", label="other features",
                 rasterized=True)  # 236 points as one image: a small SVG
    axis.scatter(harmful[column], harmful["measured"], s=18, color="tab:red", label="harmful features")
    axis.axline((0, 0), slope=1, color="k", linewidth=0.8, linestyle="--", label="measured = predicted")
    axis.set(xlabel=f"predicted change ({label})", ylabel="measured change", title=f"R² {r2:.3f}")
axes[0].legend(fontsize=8)
figure.suptitle("SAE pre-activation change after 50 LoRA steps on inducing_health")
save_figure(figure, out / "measured_vs_predicted")
figures = {"measured_vs_predicted": out / "measured_vs_predicted"}
pngs = copy_figures(figures, args.figures, "amplification")  # and into --figures DIR when given
print(f"figures: {', '.join(map(str, pngs))}")
