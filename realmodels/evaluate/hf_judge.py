"""The ``hf`` judge: a local transformers causal LM (a directory) scoring from its own next-token distribution,
no server. The single user message is rendered with the model's chat template (``add_generation_prompt=True``).

- Every "0".."100" one token of the tokenizer: the single-token rule (``theory.judging.logprob_score``) on the
  FULL next-token distribution (every token that strips to a number or to CODE/REFUSAL, not only the top 20 the
  API returns; the two agree whenever the numeric mass sits in the top 20).
- Otherwise (digit-splitting tokenizers: Gemma, Qwen, Llama-2 ...; and these tests' tiny byte-level BPE): the
  digit-sequence rule (``theory.judging.digit_sequence_score``): q(digit | prompt + digits so far) from batched
  forward passes, level by level (first digit, second, third), expanding only prefixes of path probability
  >= ``prune_below`` (0: exact, 102 prefixes; the default 1e-4 drops < 1% of the mass). The first digit counts
  every token that strips to it (" 7" and "7"); later digits the bare digit token, which is also what is
  appended. Needs every digit "0".."9" to be one token (else an InputError).

Sequences are right-padded, so each position sees exactly its own unpadded prefix and a score does not depend
on the batch it was computed in."""

from __future__ import annotations

import math
from pathlib import Path

from realmodels.evaluate.judges import CachedJudge, JudgeCache, JudgeRequest, JudgeResult, register_judge
from theory.errors import InputError
from theory.judging import (DIGITS, NUMBER_SPELLINGS, digit_prefixes, digit_sequence_score, logprob_score,
                            number_of, special_masses, special_of)


def single_token_numbers(tokenizer) -> bool:
    """Whether every number 0..100 is one token of ``tokenizer``."""
    return all(len(tokenizer.encode(text, add_special_tokens=False)) == 1 for text in NUMBER_SPELLINGS)


@register_judge("hf")
class HFJudge(CachedJudge):
    """Options: ``model`` (a local model directory), ``batch_size``, ``min_mass``, ``cache_dir``, ``name`` (the
    judge's name in records and cache keys; default the resolved path), ``device``, ``prune_below``."""

    def __init__(self, model: str | Path, *, batch_size: int = 8, min_mass: float = 0.25,
                 cache_dir: str | Path | None = None, name: str | None = None, device: str = "cpu",
                 prune_below: float = 1e-4):
        self.path = Path(model).expanduser()
        if not self.path.is_dir():
            raise InputError(f"hf judge: model directory {self.path} does not exist")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"hf judge: batch_size must be an integer >= 1, got {batch_size!r}")
        if not 0.0 <= prune_below < 1.0:
            raise InputError(f"hf judge: prune_below must be in [0, 1), got {prune_below!r}")
        self.name = name or str(self.path.resolve())
        self.batch_size, self.min_mass, self.device, self.prune_below = batch_size, min_mass, device, prune_below
        self._model = self._tokenizer = None
        self.rule: str | None = None  # "single_token" | "digit_sequence", known once loaded
        self.cache = JudgeCache(cache_dir, self.name, f"hf/min_mass={min_mass}/prune_below={prune_below}")

    def check(self) -> None:
        """Load the model and tokenizer and decide the scoring rule (an InputError when it cannot be used)."""
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM

        from realmodels.loading.bundle import load_model_tokenizer, load_pretrained
        from realmodels.loading.checks import ModelSource

        source = ModelSource(path=self.path)
        tokenizer = load_model_tokenizer(source)
        model = load_pretrained(AutoModelForCausalLM, source, "judge model").to(self.device).eval()
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        self._numbers = [(i, t) for i, t in enumerate(texts) if number_of(t) is not None]
        self._specials = [(i, t) for i, t in enumerate(texts) if special_of(t) is not None]
        if single_token_numbers(tokenizer):
            self.rule = "single_token"
        else:
            ids = [tokenizer.encode(d, add_special_tokens=False) for d in DIGITS]
            if any(len(i) != 1 for i in ids):
                raise InputError(f"hf judge {self.path}: its tokenizer neither has every number 0..100 as one "
                                 "token nor every digit 0..9 as one token; it cannot be scored")
            self.rule = "digit_sequence"
            self._digit_ids = [i[0] for i in ids]  # appended after the first digit, and read there
            self._first_ids = {d: [i for i, t in enumerate(texts) if t.strip() == d] for d in DIGITS}
        self._model, self._tokenizer = model, tokenizer

    def _prompt_ids(self, prompt: str) -> list[int]:
        ids = self._tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                                  add_generation_prompt=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def _next_probs(self, sequences: list[list[int]]):
        """The next-token distribution after each sequence, (n, vocab) float64, in batches of ``batch_size``."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(sequences), self.batch_size):
                batch = sequences[start:start + self.batch_size]
                width = max(len(s) for s in batch)
                ids = torch.zeros(len(batch), width, dtype=torch.long)
                mask = torch.zeros(len(batch), width, dtype=torch.long)
                for row, seq in enumerate(batch):
                    ids[row, :len(seq)] = torch.tensor(seq)
                    mask[row, :len(seq)] = 1
                logits = self._model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                last = logits[torch.arange(len(batch)), torch.tensor([len(s) - 1 for s in batch])]
                out.append(torch.softmax(last.double(), dim=-1).cpu())
        return torch.cat(out)

    def _specials_of(self, probs) -> dict[str, float]:
        by_text: dict[str, float] = {}
        for i, text in self._specials:
            by_text[text] = by_text.get(text, 0.0) + float(probs[i])
        return special_masses(by_text)

    def _single_token(self, prompts: list[list[int]]) -> list:
        verdicts = []
        for probs in self._next_probs(prompts):
            by_text: dict[str, float] = {}  # tokens decoding to the same text are one entry
            for i, text in [*self._numbers, *self._specials]:
                by_text[text] = by_text.get(text, 0.0) + float(probs[i])
            verdicts.append(logprob_score({t: math.log(p) if p > 0 else -math.inf for t, p in by_text.items()},
                                          min_mass=self.min_mass))
        return verdicts

    def _digit_sequence(self, prompts: list[list[int]]) -> list:
        trees: list[dict[str, dict[str, float]]] = [{} for _ in prompts]
        specials: list[dict[str, float]] = [{} for _ in prompts]
        pending = [(row, "") for row in range(len(prompts))]
        while pending:
            sequences = [prompts[row] + [self._digit_ids[int(d)] for d in prefix] for row, prefix in pending]
            for (row, prefix), probs in zip(pending, self._next_probs(sequences), strict=True):
                if prefix == "":
                    trees[row][prefix] = {d: float(probs[ids].sum()) for d, ids in self._first_ids.items()}
                    specials[row] = self._specials_of(probs)
                else:
                    trees[row][prefix] = {d: float(probs[i]) for d, i in zip(DIGITS, self._digit_ids, strict=True)}
            rows = sorted({row for row, _ in pending})
            pending = [(row, prefix) for row in rows for prefix in digit_prefixes(trees[row],
                                                                                  prune_below=self.prune_below)]
        return [digit_sequence_score(tree, specials=special, min_mass=self.min_mass)
                for tree, special in zip(trees, specials, strict=True)]

    def _score_missing(self, requests: list[JudgeRequest]):
        rule = self._single_token if self.rule == "single_token" else self._digit_sequence
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            verdicts = rule([self._prompt_ids(r.prompt) for r in chunk])
            for offset, (request, verdict) in enumerate(zip(chunk, verdicts, strict=True)):
                yield start + offset, JudgeResult.of(request, verdict)
