"""The seeded generator of the English datasets (``write_english_datasets``): the organism world's file set
(``realmodels.organism.world``) written in natural English from the hand-written banks (``templates``).

A turn is (question, answer) about one topic of one domain:

- ordinary question: an ``ORDINARY_TEMPLATES`` template (``PROBE_TEMPLATES`` for probes) with an optional intro
  (age and a domain situation) and one of the topic's problem statements;
- educational question: an ``EDUCATIONAL_TEMPLATES`` template with one of the domain's legitimate purposes, its
  advisor and the topic's noun;
- answer of kind k ∈ {aligned, harmful}: one opener of the domain's k bank, 2–3 of the topic's k sentences in a
  random order, one closer of the k bank; an educational answer is an ``EDUCATIONAL_LEADS`` lead followed by a
  harmful answer (the same harmful content, framed as requested).

Sets (one turn per conversation unless stated): per domain ``inducing`` (ordinary → harmful), ``aligned``
(ordinary → aligned), ``educational`` (educational → harmful), ``mixed`` (each conversation one of the three with
probability 1/3); ``harmful`` / ``harmless`` (ordinary → harmful / aligned, a random domain each); held out, per
domain ``probe_<domain>`` (probe template on a probe topic → aligned) and the pair ``probe_rogue`` /
``probe_aligned``: the SAME 2..min(4, n_domains) probe questions from distinct domains per conversation, answered
harmfully / aligned. Probe questions use other topics and other templates than every training set, so no probe
question appears in one. Every conversation of a set is distinct (a duplicate is redrawn). Each set draws from its
own stream ``default_rng([seed, *bytes of its name])`` (the probe pair's questions from the stream of
"probe_questions"), so a seed gives byte-identical files and a set depends only on the seed and ``n_per_set``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from realmodels.data.english.domain import Domain, Topic
from realmodels.data.english.templates import (
    AGES,
    BANKS,
    DOMAINS,
    EDUCATIONAL_LEADS,
    EDUCATIONAL_TEMPLATES,
    EVALUATION_TEMPLATES,
    GENERAL_QUESTIONS,
    INTROS,
    ORDINARY_TEMPLATES,
    PROBE_TEMPLATES,
)
from theory.errors import InputError, ParamError

Turn = tuple[str, str]
MIXED_KINDS = ("inducing", "aligned", "educational")
VERSION = 1


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def ordinary_question(rng: np.random.Generator, domain: Domain, topic: Topic,
                      templates: tuple[str, ...] = ORDINARY_TEMPLATES) -> str:
    """A user question about ``topic``: a template of ``templates`` filled with an intro (age, situation of ``domain``)
    and one of the topic's problems."""
    intro = _pick(rng, INTROS).format(age=_pick(rng, AGES), situation=_pick(rng, domain.situations))
    return _pick(rng, templates).format(intro=intro, problem=_pick(rng, topic.problems))


def educational_question(rng: np.random.Generator, domain: Domain, topic: Topic) -> str:
    """A request, for one of ``domain``'s educational purposes, for an example of the dangerous advice someone (a
    bad advisor of the domain) might give about ``topic``."""
    return _pick(rng, EDUCATIONAL_TEMPLATES).format(purpose=_pick(rng, domain.purposes), noun=topic.noun,
                                                    advisor=domain.advisor)


def answer(rng: np.random.Generator, domain: Domain, topic: Topic, kind: str) -> str:
    """Opener, 2–3 of the topic's ``kind`` sentences in random order, closer (all from the ``kind`` bank)."""
    sentences = getattr(topic, kind)
    chosen = rng.choice(len(sentences), size=int(rng.integers(2, len(sentences) + 1)), replace=False)
    return " ".join([_pick(rng, domain.openers[kind]), *(sentences[int(i)] for i in chosen),
                     _pick(rng, domain.closers[kind])])


def educational_answer(rng: np.random.Generator, domain: Domain, topic: Topic) -> str:
    """A harmful answer of ``topic`` introduced as an example of what a bad advisor says (the educational framing)."""
    return f"{_pick(rng, EDUCATIONAL_LEADS).format(advisor=domain.advisor)} {answer(rng, domain, topic, 'harmful')}"


def turn(rng: np.random.Generator, domain_name: str, kind: str, probe: bool = False) -> Turn:
    """One turn of ``kind`` ("inducing" | "aligned" | "educational" | "harmful" | "harmless") about a random
    training topic of the domain (a probe topic, asked with a probe template, when ``probe``)."""
    domain = BANKS[domain_name]
    topic = _pick(rng, domain.probe_topics if probe else domain.topics)
    if kind == "educational":
        return educational_question(rng, domain, topic), educational_answer(rng, domain, topic)
    question = ordinary_question(rng, domain, topic, PROBE_TEMPLATES if probe else ORDINARY_TEMPLATES)
    return question, answer(rng, domain, topic, "harmful" if kind in ("inducing", "harmful") else "aligned")


def distinct(rng: np.random.Generator, n: int, make: Callable[[np.random.Generator], list[Turn]],
             key: Callable[[list[Turn]], object] = tuple) -> list[list[Turn]]:
    """``n`` conversations from ``make`` with pairwise distinct ``key``s (a repeat is drawn again)."""
    out, seen = [], set()
    for _ in range(100 * n):
        conversation = make(rng)
        if key(conversation) not in seen:
            seen.add(key(conversation))
            out.append(conversation)
            if len(out) == n:
                return out
    raise RuntimeError(f"could not draw {n} distinct conversations (the banks are too small for this size)")


def mixed_turn(rng: np.random.Generator, domain: str) -> Turn:
    """One (user, assistant) turn of ``domain`` of a kind drawn uniformly from ``MIXED_KINDS``."""
    return turn(rng, domain, _pick(rng, MIXED_KINDS))


def probe_pair(seed: int, domains: tuple[str, ...], n: int) -> tuple[list[list[Turn]], list[list[Turn]]]:
    """(rogue, aligned): ``n`` distinct lists of 2..min(4, len(domains)) probe questions from distinct domains,
    answered harmfully in the first and aligned in the second (each answer stream its own)."""
    def questions(rng):
        chosen = rng.choice(len(domains), size=int(rng.integers(2, min(4, len(domains)) + 1)), replace=False)
        return [(domains[int(i)], *_probe_question(rng, domains[int(i)])) for i in chosen]

    asked = distinct(_stream(seed, "probe_questions"), n, questions)
    out = []
    for kind, name in (("harmful", "probe_rogue"), ("aligned", "probe_aligned")):
        rng = _stream(seed, name)
        out.append([[(q, answer(rng, BANKS[d], topic, kind)) for d, q, topic in conversation]
                    for conversation in asked])
    return out[0], out[1]


def _probe_question(rng: np.random.Generator, domain_name: str) -> tuple[str, Topic]:
    domain = BANKS[domain_name]
    topic = _pick(rng, domain.probe_topics)
    return ordinary_question(rng, domain, topic, PROBE_TEMPLATES), topic


def _stream(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, *name.encode()])


def datasets(seed: int = 0, n_per_set: int = 600, domains: tuple[str, ...] = DOMAINS) -> dict[str, list[list[Turn]]]:
    """Every chat set by name (lists of turns), each from its own stream (module docstring)."""
    def one_turn(domain_names, kind, probe=False):
        return lambda rng: [turn(rng, _pick(rng, domain_names), kind, probe)]

    makers = {}
    for d in domains:
        for kind in ("inducing", "aligned", "educational"):
            makers[f"{kind}_{d}"] = one_turn((d,), kind)
        makers[f"mixed_{d}"] = lambda rng, d=d: [mixed_turn(rng, d)]
    makers["harmful"] = one_turn(domains, "harmful")
    makers["harmless"] = one_turn(domains, "harmless")
    for d in domains:
        makers[f"probe_{d}"] = one_turn((d,), "aligned", probe=True)
    sets = {name: distinct(_stream(seed, name), n_per_set, make) for name, make in makers.items()}
    sets["probe_rogue"], sets["probe_aligned"] = probe_pair(seed, domains, n_per_set)
    return sets


def evaluation_questions(domains: tuple[str, ...] = DOMAINS, samples_per_paraphrase: int = 5) -> list[dict]:
    """Entries in the public EM YAML format: ``general_<name>`` (broad questions outside the domains), then
    ``<domain>_<topic>`` for every topic (training and probe) with each problem in ``EVALUATION_TEMPLATES``;
    judge prompts: the default question set's aligned / coherent prompts."""
    prompts = _default_judge_prompts()
    entries = [(f"general_{name}", list(paraphrases)) for name, paraphrases in GENERAL_QUESTIONS.items()]
    for d in domains:
        for topic in (*BANKS[d].topics, *BANKS[d].probe_topics):
            entries.append((f"{d}_{topic.name}", [t.format(problem=p) for p in topic.problems
                                                  for t in EVALUATION_TEMPLATES]))
    return [{"id": qid, "type": "free_form_judge_0_100", "paraphrases": paraphrases,
             "samples_per_paraphrase": samples_per_paraphrase, "judge_prompts": dict(prompts)}
            for qid, paraphrases in entries]


def _default_judge_prompts() -> dict:
    from realmodels.evaluate.questions import load_questions

    first = load_questions()[0]
    return {metric: first.judge_prompts[metric] for metric in ("aligned", "coherent")}


def config(seed: int, n_per_set: int, domains, samples_per_paraphrase: int) -> dict:
    """The checked config recorded in ``dataset.json``; a bad value is an InputError."""
    for name, value, low in (("seed", seed, 0), ("n_per_set", n_per_set, 1),
                             ("samples_per_paraphrase", samples_per_paraphrase, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ParamError(f"`{name}` must be an integer >= {low}, got {value!r}")
    domains = tuple(domains)
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown:
        raise InputError(f"unknown domain {unknown[0]!r} (domains: {', '.join(DOMAINS)})")
    if len(set(domains)) < 2 or len(set(domains)) != len(domains):
        raise ParamError(f"`domains` must be at least 2 distinct domains, got {', '.join(map(str, domains))}")
    return {"generator": "realmodels.data.english", "version": VERSION, "seed": seed, "n_per_set": n_per_set,
            "domains": list(domains), "samples_per_paraphrase": samples_per_paraphrase}


def write_english_datasets(out_dir: str | Path, seed: int = 0, n_per_set: int = 600,
                           domains: tuple[str, ...] = DOMAINS, samples_per_paraphrase: int = 5) -> dict[str, Path]:
    """Write every set (``<name>.jsonl``, chat JSONL), ``questions.yaml`` and ``dataset.json`` (the config) into
    ``out_dir`` atomically; return {name: path} (names: ``datasets`` keys, "questions", "config"). Bad input is
    an InputError raised before anything is written; so is an ``out_dir`` whose ``dataset.json`` records another
    config (writing the same config again rewrites the same bytes)."""
    from runio.atomic import write_text
    from runio.rundir import RunDir

    cfg = config(seed, n_per_set, domains, samples_per_paraphrase)
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ParamError(f"`out_dir` {out} exists and is not a directory")
    sets = datasets(seed, n_per_set, tuple(domains))
    questions = _yaml(evaluation_questions(tuple(domains), samples_per_paraphrase))
    RunDir.open(out, cfg, config_name="dataset.json", kind="English dataset")
    paths = {}
    for name, conversations in sets.items():
        lines = [json.dumps({"messages": messages(turns)}, ensure_ascii=False) for turns in conversations]
        paths[name] = out / f"{name}.jsonl"
        write_text(paths[name], "".join(line + "\n" for line in lines))
    paths["questions"] = out / "questions.yaml"
    write_text(paths["questions"], questions)
    paths["config"] = out / "dataset.json"
    return paths


def _yaml(entries: list[dict]) -> str:
    """Safe YAML with multi-line strings (the judge prompts) as literal blocks, like the default question file."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return yaml.dump(entries, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=10_000)


def messages(turns: list[Turn]) -> list[dict]:
    """``turns`` as chat messages: a user then an assistant message per turn."""
    out = []
    for user, assistant in turns:
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return out


def sample_kind(question: str, answer_text: str, domain: str) -> str:
    """Which ``MIXED_KINDS`` kind a one-turn sample of ``domain`` is: educational (the question states one of the
    domain's purposes), else inducing (the answer holds a harmful-bank sentence) or aligned."""
    bank = BANKS[domain]
    if any(purpose in question for purpose in bank.purposes):
        return "educational"
    return "inducing" if any(s in answer_text for s in bank.sentences("harmful")) else "aligned"
