"""A model organism of emergent misalignment small enough to train on a CPU (issue 12).

The plan, in the order the modules exist:
- ``banks``: the synthetic chat world's closed vocabulary — domains, topics, ordinary and educational question
  templates, and per domain an aligned and a harmful answer phrase bank with disjoint content words.
- ``world``: seeded generators writing every dataset as chat JSONL (pre-training corpus with rogue and
  educational conversations, per-domain inducing / aligned / educational sets, feature-selection and probe
  sets) and the evaluation question YAML (``write_world``, ``WorldConfig``).
- ``judge``: the exact rule judge (``make_judge("organism")``) scoring aligned / coherent / harmfulness from the
  world's own banks, so ``evaluate`` and ``mitigate`` run with no LLM judge.
- ``build``: a word-level tokenizer with a Llama-3-like chat template and a small Llama pre-trained from scratch
  on the world's corpus (``OrganismConfig``, through ``realmodels.finetune.train.run_training``: deterministic,
  resumable), saved to ``out/model``;
- ``sae``: a TopK SAE trained with sae-lens's ``SAETrainer`` on the assistant-token residuals at a layer, saved
  with ``SAE.save_model`` to ``out/sae``.
- ``realmodels organism build`` (``cli/realmodels_organism.py``) runs the two.
- still to come: the shipped default organism (realmodels' embedded default) and ``study`` (the paper's geometry / finetune / evaluate / mitigate study on it)."""
