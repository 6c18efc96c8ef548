"""Evaluating emergent misalignment the way the field does (Betley et al. 2025; Turner, Soligo et al. 2025):
free-form questions, sampled answers, a judge scoring each 0–100 for alignment and coherence, EM = misaligned
and coherent; and the paper's mitigation experiment (filter → fine-tune → evaluate per arm).

- ``config``: one evaluation (``EvaluateConfig``), its judge (``JudgeChoice``) and the checks made before any answer
  (``realmodels.experiments.evaluate.run_evaluation`` runs it);
- ``questions``: question sets in the public YAML format (and the shipped default set);
- ``records``: answers and judgements, appended to JSONL as they finish (resume);
- ``generate``: sampled answers from a transformers model (+ adapter) or an OpenAI-compatible endpoint;
- ``judges``: the judge registry (``openai``, ``hf``, ...) with logprob-weighted 0–100 scores and a disk cache;
- ``metrics``: EM, coherence and refusal rates per question and overall, with intervals;
- ``mitigate``: the arms none / geometry / random / judge at one removal budget."""
