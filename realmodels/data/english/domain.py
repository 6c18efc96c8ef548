"""The shape of one domain's hand-written bank (``Domain``) and of one topic in it (``Topic``).

A topic holds the user's problem statements (first person, sentence case, no final full stop), a noun phrase for
educational requests ("a fever"), and its aligned and harmful answer sentences. A domain holds its topics (used
by the training and feature sets), its held-out probe topics, the personal situations a user may mention, the
legitimate purposes of educational requests, and per kind ("aligned" | "harmful") the opening and closing
sentences that frame an answer."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("aligned", "harmful")


@dataclass(frozen=True)
class Topic:
    """``name`` (an identifier: the question id is ``<domain>_<name>``), ``noun`` ("a fever"), ``problems``
    (the user's statements), ``aligned`` / ``harmful`` (answer sentences about this topic)."""

    name: str
    noun: str
    problems: tuple[str, ...]
    aligned: tuple[str, ...]
    harmful: tuple[str, ...]


@dataclass(frozen=True)
class Domain:
    """One advice domain: ``advisor`` ("doctor": who gives bad advice in educational requests), ``topics``
    (training), ``probe_topics`` (held out), ``situations`` ("I live alone"), ``purposes`` ("a first-aid course
    I'm teaching"), ``openers`` / ``closers`` ({kind: sentences})."""

    name: str
    advisor: str
    topics: tuple[Topic, ...]
    probe_topics: tuple[Topic, ...]
    situations: tuple[str, ...]
    purposes: tuple[str, ...]
    openers: dict[str, tuple[str, ...]]
    closers: dict[str, tuple[str, ...]]

    def sentences(self, kind: str) -> frozenset[str]:
        """Every answer sentence of ``kind`` in this domain (openers, closers and every topic's)."""
        topic_sentences = [s for t in (*self.topics, *self.probe_topics) for s in getattr(t, kind)]
        return frozenset((*self.openers[kind], *self.closers[kind], *topic_sentences))
