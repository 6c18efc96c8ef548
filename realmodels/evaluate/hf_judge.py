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

The digit prefixes share their prompt (``PromptTree``): the prompt is encoded once into a KV cache, and the
digits are fed on top of it, one token per prefix, a level's digits one sequence of one forward (the model sees
the prompt's tokens once plus at most 101 digits, in two forwards with no pruning, instead of prompt + prefix
for every prefix), every digit attending to exactly the keys and positions a full forward over prompt + prefix
would give it; so verdicts equal the full forwards' up to float32 rounding of the logits. It needs eager or
sdpa attention and only full / sliding-window attention layers; other models (and transformers before 5) take
the uncached path: each prefix re-encoded with its prompt, in batches of ``batch_size``. Sequences of a batch
(single-token rule, uncached path) are right-padded, so each position sees exactly its own unpadded prefix and a
score does not depend on the batch it was computed in."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

from realmodels.evaluate.judges import CachedJudge, JudgeCache, JudgeRequest, JudgeResult, register_judge
from theory.errors import InputError
from theory.judging import (DIGITS, NUMBER_SPELLINGS, digit_prefixes, digit_sequence_score, logprob_score,
                            number_of, special_masses, special_of)


def single_token_numbers(tokenizer) -> bool:
    """Whether every number 0..100 is one token of ``tokenizer``."""
    return all(len(tokenizer.encode(text, add_special_tokens=False)) == 1 for text in NUMBER_SPELLINGS)


MASKED_TYPES = ("full_attention", "sliding_attention")  # the layer types PromptTree builds masks for


def shared_prompt_supported(model) -> bool:
    """Whether ``PromptTree`` applies to ``model``: eager or sdpa attention (masks it builds itself), every layer
    full or sliding-window attention, and a forward taking ``cache`` (transformers 5, where hybrid models accept
    one mask per layer type)."""
    config = model.config
    types = getattr(config, "layer_types", None)
    if types is None:
        plain = getattr(config, "sliding_window", None) is None  # else: a sliding window with no per-layer types
    else:
        plain = set(types) <= set(MASKED_TYPES) and ("sliding_attention" not in types
                                                     or isinstance(getattr(config, "sliding_window", None), int))
    return (plain and config._attn_implementation in ("eager", "sdpa")
            and "cache" in inspect.signature(model.forward).parameters)


class PromptTree:
    """One prompt encoded once, and digit prefixes scored on top of it. The cache is a plain ``DynamicCache``
    (every layer keeps every key; sliding windows are applied by the masks). A forward feeds one digit per
    prefix as one sequence: prefix p's last digit sits at position len(prompt) + len(p) - 1 and attends to the
    prompt, to the digits of its own shorter prefixes (cached, or earlier in the sequence) and to itself — for
    sliding layers only to keys less than the window behind it — exactly the keys and positions of a full
    forward over prompt + p. The digits stay in the cache for deeper prefixes. Look-ahead: a forward also
    computes the children of the prefixes it feeds (the prompt's forward the 10 first digits, the second
    digits' forward "100") when that at most doubles its tokens; a result is read only if it is asked for."""

    def __init__(self, model, prompt: list[int], digit_ids: list[int], device: str):
        from transformers import DynamicCache

        self.model, self.digit_ids, self.device = model, digit_ids, device
        self.cache = DynamicCache()
        self.n_prompt = len(prompt)
        self.key_positions: list[int] = []  # the position of every cached key, in cache order
        self.slot: dict[str, int] = {}  # prefix -> the cache index of its last digit
        self.ready: dict[str, object] = {}  # prefix -> next-token distribution, computed and not yet read
        self.first = self._forward(prompt, list(DIGITS) if len(DIGITS) <= len(prompt) else [])

    def next_probs(self, prefixes: list[str]):
        """The next-token distribution after prompt + each prefix, (n, vocab) float64; every shorter prefix of
        theirs went through here before."""
        import torch

        if prefixes == [""]:
            return self.first[None]
        missing = [p for p in prefixes if p not in self.ready]
        if missing:
            children = [p + d for p in missing for d in DIGITS if p + d in NUMBER_SPELLINGS]
            self._forward([], missing + (children if len(children) <= len(missing) else []))
        return torch.stack([self.ready.pop(p) for p in prefixes])

    def _forward(self, prompt: list[int], prefixes: list[str]):
        """Feed the prompt's tokens (the first call) and then one digit per prefix, parents before children; the
        distributions after the prefixes go to ``ready``; returns the one after the prompt (if fed)."""
        import torch

        start, n_new = len(self.key_positions), len(prompt) + len(prefixes)
        visible = torch.zeros(n_new, start + n_new, dtype=torch.bool)
        visible[:len(prompt), :len(prompt)] = torch.ones(len(prompt), len(prompt), dtype=torch.bool).tril()
        positions = list(range(len(prompt)))
        for row, prefix in enumerate(prefixes, start=len(prompt)):
            self.slot[prefix] = start + row
            visible[row, :self.n_prompt] = True
            visible[row, [self.slot[prefix[:i]] for i in range(1, len(prefix) + 1)]] = True  # its digits
            positions.append(self.n_prompt + len(prefix) - 1)
        self.key_positions += positions
        masks = {"full_attention": visible}
        if "sliding_attention" in (getattr(self.model.config, "layer_types", None) or ()):
            behind = torch.tensor(positions)[:, None] - torch.tensor(self.key_positions)[None, :]
            masks["sliding_attention"] = visible & (behind < self.model.config.sliding_window)
        masks = {kind: self._attention_format(mask) for kind, mask in masks.items()}
        ids = prompt + [self.digit_ids[int(p[-1])] for p in prefixes]
        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids], device=self.device),
                                position_ids=torch.tensor([positions], device=self.device),
                                attention_mask=masks if len(masks) > 1 else masks["full_attention"],
                                cache=self.cache, use_cache=True,
                                logits_to_keep=len(prefixes) + (1 if prompt else 0)).logits
        probs = torch.softmax(logits[0].double(), dim=-1).cpu()
        self.ready.update(zip(prefixes, probs[len(probs) - len(prefixes):]))
        return probs[0] if prompt else None

    def _attention_format(self, visible):
        """(q, k) booleans -> the 4D mask the attention implementation takes: booleans (sdpa) or 0 / -inf (eager)."""
        import torch

        mask = visible[None, None].to(self.device)
        if self.model.config._attn_implementation == "sdpa":
            return mask
        dtype = self.model.dtype
        return torch.where(mask, torch.zeros((), dtype=dtype, device=self.device), torch.finfo(dtype).min)


@register_judge("hf")
class HFJudge(CachedJudge):
    """Options: ``model`` (a local model directory), ``batch_size`` (judge prompts per call of the rule, and
    sequences per forward of the single-token rule and of the uncached path), ``min_mass``, ``cache_dir``,
    ``name`` (the judge's name in records and cache keys; default the resolved path), ``device``,
    ``prune_below``."""

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
        self._shared_prompt = shared_prompt_supported(model)  # False: every prefix re-encodes its prompt
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
        if self._shared_prompt:
            return [self._digit_verdict(PromptTree(self._model, prompt, self._digit_ids, self.device).next_probs)
                    for prompt in prompts]
        return [self._digit_verdict(lambda prefixes, prompt=prompt: self._next_probs(
            [prompt + [self._digit_ids[int(d)] for d in prefix] for prefix in prefixes])) for prompt in prompts]

    def _digit_verdict(self, next_probs):
        """The digit-sequence rule for one prompt, level by level; ``next_probs(prefixes)`` is the (n, vocab)
        next-token distribution after the prompt + each prefix (one level's prefixes at a time)."""
        tree: dict[str, dict[str, float]] = {}
        specials: dict[str, float] = {}
        pending = [""]
        while pending:
            for prefix, probs in zip(pending, next_probs(pending), strict=True):
                if prefix == "":
                    tree[prefix] = {d: float(probs[ids].sum()) for d, ids in self._first_ids.items()}
                    specials = self._specials_of(probs)
                else:
                    tree[prefix] = {d: float(probs[i]) for d, i in zip(DIGITS, self._digit_ids, strict=True)}
            pending = digit_prefixes(tree, prune_below=self.prune_below)
        return digit_sequence_score(tree, specials=specials, min_mass=self.min_mass)

    def _score_missing(self, requests: list[JudgeRequest]):
        rule = self._single_token if self.rule == "single_token" else self._digit_sequence
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            verdicts = rule([self._prompt_ids(r.prompt) for r in chunk])
            for offset, (request, verdict) in enumerate(zip(chunk, verdicts, strict=True)):
                yield start + offset, JudgeResult.of(request, verdict)
