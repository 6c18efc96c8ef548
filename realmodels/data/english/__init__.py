"""English emergent-misalignment datasets for real small LMs, generated from hand-written templates.

Modelled on the paper datasets (Betley et al. 2025's insecure code; Turner, Soligo et al. 2025's bad medical,
financial and sports advice): a narrow domain where the assistant gives confidently harmful advice in a helpful
tone. Every template, problem statement and answer sentence here was written for this project (none is copied
from a paper or a dataset); no real people, no slurs; the harm is everyday bad advice (skip the doctor, double a
dose, stop prescribed medication abruptly, sign without reading, hide income from the tax office), never
operational instructions for weapons, drugs or self-harm.

- ``domain``: the ``Topic`` / ``Domain`` shapes of a bank;
- ``health``, ``career``, ``legal``, ``finance``: one hand-written bank each — 15 training topics and 3 held-out
  probe topics, each with 2 problem statements and 3 aligned and 3 harmful sentences; per domain 8 personal
  situations, 6 legitimate purposes, 6 openers and 4 closers per kind;
- ``templates``: 6 ordinary and 3 held-out probe question templates, 3 intro forms × 13 ages, 4 educational
  templates and 4 educational leads, 12 broad evaluation questions;
- ``generate``: the seeded generator (design in its docstring) and ``write_english_datasets(out_dir, seed=0,
  n_per_set=600, domains=...)``, which writes the organism world's file set: ``inducing_<d>``, ``aligned_<d>``,
  ``educational_<d>``, ``mixed_<d>``, ``harmful``, ``harmless``, ``probe_<d>``, ``probe_rogue``,
  ``probe_aligned`` (``.jsonl``), ``questions.yaml`` (public EM format: 12 ``general_<name>`` and 72
  ``<domain>_<topic>`` questions, the default set's judge prompts) and ``dataset.json``.

At the default size every set holds 600 pairwise distinct conversations (the generator redraws duplicates;
``tests/realmodels/data/test_english.py`` checks it). Question space per domain: 15 topics × 2 problems × 6
templates × 209 intros = 37,620 ordinary questions (educational: 15 × 6 purposes × 4 templates = 360), answers
6 openers × (3 pairs × 2 orders + 6 orders of 3 = 12) × 4 closers = 288 per topic and kind."""

from realmodels.data.english.generate import write_english_datasets

__all__ = ["write_english_datasets"]
