"""A feature card: everything the report shows about one SAE feature, as JSON-able data, assembled from the
stages' outputs — why the feature is listed (``sources``), its logit lens, its top snippets over every dataset,
its activation histogram and firing rates, its Neuronpedia page — and the two flat tables (``logit_lens.csv``,
``top_examples.csv``) derived from the cards."""

from __future__ import annotations

from realmodels.interpret.config import FeatureCardsConfig
from realmodels.interpret.neuronpedia import feature_url
from theory.logit_lens import activation_histogram

MARK_OPEN, MARK_CLOSE = "⟦", "⟧"  # around the max token in a snippet's plain text


def merged_examples(feature_slot: int, scans: list[tuple[str, dict]], n: int) -> list[dict]:
    """The ``n`` highest snippets of one feature over every dataset's scan (ties: dataset order, then sample)."""
    found = [{"dataset": name, **example} for order, (name, scan) in enumerate(scans)
             for example in scan["features"][feature_slot]["examples"]]
    order = {name: i for i, (name, _) in enumerate(scans)}
    return sorted(found, key=lambda e: (-e["value"], order[e["dataset"]], e["sample"]))[:n]


def build_cards(features: list[int], sources: dict[int, list[dict]], lens: list[dict],
                scans: list[tuple[str, dict]], config: FeatureCardsConfig, neuronpedia: str | None) -> list[dict]:
    """One card per feature of ``features`` (in order). ``lens``: the logit lens of each (same order);
    ``scans``: (dataset name, ``examples.scan_dataset`` output over ``features``) per dataset."""
    cards = []
    for slot, feature in enumerate(features):
        values = [v for _, scan in scans for v in scan["features"][slot]["nonzero"]]
        n_tokens = sum(scan["n_tokens"] for _, scan in scans)
        firing = {name: {"n_tokens": scan["n_tokens"], "n_nonzero": len(scan["features"][slot]["nonzero"]),
                         "rate": len(scan["features"][slot]["nonzero"]) / scan["n_tokens"] if scan["n_tokens"]
                         else None} for name, scan in scans}
        cards.append({
            "feature": feature, "sources": sources.get(feature, []),
            "logit_lens": {"promoted": lens[slot]["promoted"], "suppressed": lens[slot]["suppressed"]},
            "examples": merged_examples(slot, scans, config.examples),
            "histogram": {**activation_histogram(values, n_tokens - len(values), config.bins).to_dict(),
                          "n_tokens": n_tokens, "max": max(values) if values else None},
            "firing": firing, "neuronpedia": feature_url(neuronpedia, feature)})
    return cards


def snippet_text(example: dict) -> str:
    """The snippet's tokens joined, the max token between ⟦ ⟧."""
    centre = example["position"] - example["start"]
    return "".join(f"{MARK_OPEN}{t}{MARK_CLOSE}" if i == centre else t for i, t in enumerate(example["tokens"]))


def logit_lens_rows(cards: list[dict]) -> list[dict]:
    """``logit_lens.csv``: feature, side (promoted | suppressed), rank, token_id, token, logit."""
    return [{"feature": card["feature"], "side": side, "rank": rank, "token_id": t["token_id"], "token": t["token"],
             "logit": t["logit"]}
            for card in cards for side in ("promoted", "suppressed")
            for rank, t in enumerate(card["logit_lens"][side], start=1)]


def example_rows(cards: list[dict]) -> list[dict]:
    """``top_examples.csv``: feature, rank, dataset, line, sample, position, activation, max_token, text."""
    return [{"feature": card["feature"], "rank": rank, "dataset": e["dataset"], "line": e["line"],
             "sample": e["sample"], "position": e["position"], "activation": e["value"],
             "max_token": e["tokens"][e["position"] - e["start"]], "text": snippet_text(e)}
            for card in cards for rank, e in enumerate(card["examples"], start=1)]
