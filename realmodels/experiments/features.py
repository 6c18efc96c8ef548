"""``run_feature_cards``: a card per SAE feature — logit lens through the final norm and unembedding, top-activating
snippets with the activating tokens shaded, activation histogram, Neuronpedia link for registered SAEs — and one
self-contained HTML report (``realmodels.interpret``).

Features: explicit indices, the harmful-behaviour features (``harmful`` vs ``harmless``), the features tied to a
dataset (``tied`` vs ``control``, default ``harmless``) and the top movers of a finished amplification run, in
that order (a feature in several lists gets one card naming each). Snippets and histograms read ``data``
(default: the datasets the selections read).

Example (the embedded model organism and its world; ``realmodels organism world --out world``)::

    from pathlib import Path

    from realmodels.analysis.configs import SelectionConfig
    from realmodels.experiments import RunOptions
    from realmodels.experiments.features import run_feature_cards

    result = run_feature_cards(["world/inducing_health.jsonl", "world/harmful.jsonl"],
                               harmful="world/harmful.jsonl", harmless="world/harmless.jsonl",
                               selection=SelectionConfig(harmful_k=20),
                               options=RunOptions(out=Path("runs/features"), progress=False))
    result.path / "report.html"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.analysis.configs import SelectionConfig
from realmodels.data.dataset import Dataset, Datasets
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import Log, run_analysis
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.interpret.config import FeatureCardsConfig
from realmodels.interpret.feature_lists import amplification_movers, check_indices, sae_width
from realmodels.interpret.neuronpedia import neuronpedia_id
from runio.atomic import atomic_path, write_csv, write_json
from runio.console import console
from theory.errors import ParamError

if TYPE_CHECKING:
    from realmodels.loading.session import Session
    from runio.rundir import RunDir

Data = Dataset | str | Path
CONVENTION = ("logit lens: W_U · norm(d_i), the final norm applied to the decoder row alone (as the paper's logit "
              "lens); snippets: ±context tokens around each conversation's most activating assistant token, shaded "
              "by activation (grey: not an assistant token)")


class FeatureCardsResult(RunResult):
    """``logit_lens`` (per feature: promoted and suppressed tokens), ``top_examples`` (per feature: its snippets);
    files ``cards.json`` (every card's data) and ``report.html`` (the self-contained report)."""

    TABLES = ("logit_lens", "top_examples")
    FILES = ("cards.json", "report.html")


def dataset_labels(datasets: list[Dataset]) -> list[str]:
    """Each dataset's file stem, numbered when two share one."""
    stems = [d.path.stem for d in datasets]
    return [s if stems.count(s) == 1 else f"{s}-{n + 1}" for n, s in enumerate(stems)]


def run_feature_cards(data: Sequence[Data] = (), *, features: Sequence[int] = (), harmful: Data | None = None,
                      harmless: Data | None = None, tied: Data | None = None, control: Data | None = None,
                      amplification: str | Path | None = None, config: FeatureCardsConfig = FeatureCardsConfig(),
                      selection: SelectionConfig = SelectionConfig(), model: ModelSpec = ModelSpec(),
                      options: RunOptions = RunOptions(), log: Log = console.print) -> FeatureCardsResult:
    """The feature cards (module docstring) in the resumable run directory ``options.out``: ``cards.json``,
    ``logit_lens.csv``, ``top_examples.csv``, ``report.html``, ``summary.json``. Every input (dataset lines, feature
    indices against the SAE's width, the amplification run) is checked before weights load or anything is written."""
    if harmful is not None and harmless is None:
        raise ParamError("`harmful` needs `harmless`: the harmful features are harmful vs harmless responses")
    if harmless is not None and harmful is None and tied is None:
        raise ParamError("`harmless` is the control of `harmful` (or of `tied`): pass one of them")
    if control is not None and tied is None:
        raise ParamError("`control` is the control of `tied`: pass `tied` too")
    if tied is not None and control is None and harmless is None:
        raise ParamError("`tied` needs `control` (or `harmless`) to contrast the dataset with")
    if not features and harmful is None and tied is None and amplification is None:
        raise ParamError("no features given: pass feature indices, `harmful`/`harmless`, `tied` or `amplification`")
    datasets = Datasets()
    harmful = None if harmful is None else datasets.open(harmful, "`harmful`")
    harmless = None if harmless is None else datasets.open(harmless, "`harmless`")
    tied = None if tied is None else datasets.open(tied, "`tied`")
    contrast = None if tied is None else datasets.open(control, "`control`") if control is not None else harmless
    read = [datasets.open(d, "`data`") for d in data] or [d for d in (harmful, harmless, tied, contrast) if d]
    read = list({d.sha256: d for d in read}.values())
    if not read:
        raise ParamError("no dataset to find snippets in: pass `data` (chat JSONL, repeatable)")
    choice = model.choice().with_layer()
    sources = choice.sources()
    d_sae = sae_width(sources)
    explicit = check_indices(list(dict.fromkeys(int(f) for f in features)), d_sae, "`features`")
    movers = None
    if amplification is not None:
        movers = amplification_movers(amplification, config.top_movers, choice.to_config())
        if movers.n_features != d_sae:
            raise ParamError(f"`amplification` {amplification} measured {movers.n_features} features; this SAE has "
                             f"{d_sae}")
    labels = dataset_labels(read)
    neuronpedia = neuronpedia_id(sources.sae)
    run_config = {
        "features": {"given": explicit, "harmful": None if harmful is None else {
            "harmful": harmful.entry(), "harmless": harmless.entry()},
            "tied": None if tied is None else {"data": tied.entry(), "control": contrast.entry()},
            "amplification": None if movers is None else {"run": str(movers.run), "features": movers.features}},
        "data": {label: d.entry() for label, d in zip(labels, read)},
        "cards": asdict(config), "selection": asdict(selection)}

    def compute(session: Session, run: RunDir) -> dict:
        import pandas as pd

        from realmodels.analysis.pipelines import cached_selection, harmful_selection
        from realmodels.interpret.cards import build_cards, example_rows, logit_lens_rows
        from realmodels.interpret.examples import scan_dataset
        from realmodels.interpret.report import report_html
        from realmodels.interpret.unembed import logit_lens

        listed: dict[int, list[dict]] = {}

        def add(name: str, indices: list[int], **columns: list[float]) -> None:
            for rank, feature in enumerate(indices):
                extra = {key: float(values[rank]) for key, values in columns.items()}
                listed.setdefault(int(feature), []).append({"list": name, "rank": rank + 1, **extra})

        add("given", explicit)
        if harmful is not None:
            chosen = harmful_selection(session, harmful, harmless, selection, cache=run.cached_json, log=log)
            add("harmful", chosen.indices, score=chosen.scores)
        if tied is not None:
            chosen = cached_selection(session, "features/tied.json", tied, contrast, selection,
                                      names=("tied", "control"), name="tied", cache=run.cached_json, log=log,
                                      message="identifying the features tied to the dataset (dataset vs control)")
            add("tied", chosen.indices, score=chosen.scores)
        if movers is not None:
            add("amplification", movers.features, measured=movers.measured)
        order = list(listed)

        def lens() -> list[dict]:
            log(f"logit lens of {len(order)} features")
            return [asdict(x) for x in logit_lens(session.bundle.model, session.tokenizer, session.decoder, order,
                                                  config.top_tokens)]

        lenses = run.cached_json("stages/logit_lens.json", lens)
        scans = []
        for n, (label, dataset) in enumerate(zip(labels, read)):
            def scan(dataset=dataset, label=label) -> dict:
                log(f"snippets and histograms of {len(order)} features on {label}")
                return scan_dataset(session.bundle, dataset.tokenized(session.tokenizer, session.max_length), order,
                                    n_examples=config.examples, context=config.context,
                                    batch_size=session.batch_size, progress=session.progress, description=label,
                                    line_numbers=list(dataset.line_numbers))
            scans.append((label, run.cached_json(f"stages/examples/{n}-{label}.json", scan)))
        cards = build_cards(order, listed, lenses, scans, config, neuronpedia)
        meta = {"model": session.choice.to_config(), "neuronpedia": neuronpedia, "convention": CONVENTION,
                "datasets": {label: d.entry() for label, d in zip(labels, read)}}
        write_json(run.file("cards.json"), {**meta, "cards": cards})
        write_csv(run.file("logit_lens.csv"), pd.DataFrame(logit_lens_rows(cards), columns=[
            "feature", "side", "rank", "token_id", "token", "logit"]))
        write_csv(run.file("top_examples.csv"), pd.DataFrame(example_rows(cards), columns=[
            "feature", "rank", "dataset", "line", "sample", "position", "activation", "max_token", "text"]))
        choice_text = session.choice.to_config()
        lines = [f"model {choice_text.get('checkpoint') or choice_text.get('model')}"
                 f"{' + adapter ' + choice_text['adapter'] if choice_text.get('adapter') else ''} · SAE "
                 f"{session.sources.sae.name} ({d_sae} features) at layer {session.sources.layer}",
                 "datasets: " + ", ".join(f"{label} ({scan['n_tokens']} assistant tokens)" for label, scan in scans),
                 CONVENTION]
        with atomic_path(run.file("report.html")) as tmp:
            tmp.write_text(report_html(cards, {"title": f"Feature cards: {len(cards)} SAE features", "lines": lines}),
                           encoding="utf-8")
        return {"n_cards": len(cards), "features": order, "lists": {
                    name: [f for f, s in listed.items() if any(x["list"] == name for x in s)]
                    for name in ("given", "harmful", "tied", "amplification")},
                "neuronpedia": neuronpedia,
                "datasets": {label: scan["n_tokens"] for label, scan in scans},
                "cards": [{"feature": c["feature"], "promoted": [t["token"] for t in c["logit_lens"]["promoted"][:5]],
                           "suppressed": [t["token"] for t in c["logit_lens"]["suppressed"][:5]],
                           "top_example": c["examples"][0]["tokens"][c["examples"][0]["position"]
                                                                     - c["examples"][0]["start"]]
                           if c["examples"] else None, "max_activation": c["histogram"]["max"]} for c in cards]}

    outcome = run_analysis("features", model, options, run_config, read + [d for d in (harmful, harmless, tied,
                                                                                        contrast) if d], compute,
                           log=log)
    return FeatureCardsResult(outcome.run.path, outcome.summary, outcome.already_finished)
