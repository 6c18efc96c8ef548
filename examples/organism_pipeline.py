# %% [markdown]
# # The whole loop on the model organism
#
# The toolkit's loop from Python, on the embedded model organism (no download):
#
#     geometry -> filter -> finetune -> evaluate -> amplification
#
# 1. Are the features of misalignment-inducing data (health: harmful answers to ordinary questions) closer to the
#    harmful-behaviour features than those of its aligned control?
# 2. Remove the training samples closest to the toxic features from a mixed training set.
# 3. Fine-tune the organism (LoRA) on the inducing data.
# 4. Evaluate emergent misalignment: the organism's exact rule judge scores answers to the world's questions.
# 5. Measure every SAE feature's change against its first-order (JVP) prediction.
#
# Each step is one runner of `realmodels.experiments` writing its own resumable run directory under OUT; the
# examples [geometry and filtering](geometry_and_filtering.md) and [amplification](amplification.md) look at
# steps 1-2 and 5 in more detail.

# %%
"""The toolkit's loop from Python on the embedded model organism: geometry -> filter -> finetune -> evaluate ->
amplification (``realmodels.experiments``).

Run: ``python examples/organism_pipeline.py [OUT]`` (default ``runs/example``); a rerun resumes every stage.
About 26 s on one thread (measured on the 2-core CI machine); ``tests/test_examples.py`` runs it."""

import argparse
import sys
from pathlib import Path

from realmodels.analysis.configs import FilterConfig, SelectionConfig
from realmodels.evaluate.config import EvaluateConfig, JudgeChoice
from realmodels.evaluate.generate import GenerationConfig
from realmodels.experiments import (ModelSpec, RunOptions, run_amplification, run_evaluation, run_filter,
                                    run_finetune, run_geometry)
from realmodels.experiments.organism import write_organism_world
from realmodels.finetune.config import FinetuneConfig

parser = argparse.ArgumentParser(description="the organism pipeline from Python")
parser.add_argument("out", nargs="?", type=Path, default=Path("runs/example"), help="run directory")
out = parser.parse_args([] if "ipykernel" in sys.modules else None).out  # in a notebook: the default

data = world = write_organism_world(out / "world")  # {name: path}: the organism's datasets and questions
selection = SelectionConfig(harmful_k=20)
options = dict(threads=1, progress=False)

# %% [markdown]
# ## 1. Geometry

# %%
geometry = run_geometry(data["harmful"], data["harmless"],
                        {"health": (data["inducing_health"], data["aligned_health"])}, selection=selection,
                        options=RunOptions(out=out / "geometry", cache_dir=out / "activations", **options))
row = geometry.domains.iloc[0]
print(f"geometry: inducing {row.mean_inducing:.3f} vs control {row.mean_control:.3f} "
      f"(difference {row.difference:+.3f}, permutation p {row.permutation_p:.3g})")

# %% [markdown]
# ## 2. Filter

# %%
filtered = run_filter(data["mixed_health"], data["harmful"], data["harmless"], FilterConfig(fraction=1 / 3),
                      selection=selection,
                      options=RunOptions(out=out / "filter", cache_dir=out / "activations", **options))
print(f"filter: removed {filtered.summary['n_removed']} of {filtered.summary['n_samples']} samples")

# %% [markdown]
# ## 3. Fine-tune

# %%
recipe = FinetuneConfig.from_preset("em-betley", r=8, alpha=16.0, lr=1e-3, max_steps=100,
                                    batch_size=16, grad_accum=1)
tuned = run_finetune(data["inducing_health"], recipe=recipe, model=ModelSpec(),
                     options=RunOptions(out=out / "finetune", **options))
print(f"finetune: {tuned.summary['steps']} steps, final loss {tuned.summary['final_loss']:.3f}")

# %% [markdown]
# ## 4. Evaluate: the base model, then the fine-tuned one

# %%
evaluation = EvaluateConfig(questions=world["questions"], samples_per_paraphrase=1,
                            generation=GenerationConfig(max_new_tokens=64, batch_size=32))
judge = JudgeChoice(kind="organism")
base = run_evaluation(evaluation, judge=judge, options=RunOptions(out=out / "evaluate-base", **options))
after = run_evaluation(evaluation, model=ModelSpec(adapter=out / "finetune"), judge=judge,
                       options=RunOptions(out=out / "evaluate-finetuned", **options))
rates = {name: result.summary["overall"]["em"]["estimate"] for name, result in (("base", base), ("after", after))}
print(f"evaluate: EM rate {rates['base']:.3f} before, {rates['after']:.3f} after fine-tuning")

# %% [markdown]
# ## 5. Amplification

# %%
amplified = run_amplification(world["probe_aligned"], data["harmful"], data["harmless"],
                              model=ModelSpec(adapter=out / "finetune"), data=data["inducing_health"],
                              selection=selection, options=RunOptions(out=out / "amplification", **options))
first_order = amplified.summary["agreement"]["first_order"]
print(f"amplification: measured vs first-order prediction R² {first_order['r2']:.3f}, "
      f"Spearman {first_order['spearman']:.3f} over {amplified.summary['n_features']} features")
