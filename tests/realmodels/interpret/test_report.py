"""The HTML report of a feature-cards run on the embedded organism, read with ``html.parser``: one card per feature
in cards.json's order, each with its logit-lens tokens, its histogram and its snippets (max token marked), and no
URL the page would fetch or link to except Neuronpedia pages; the Neuronpedia ids of registered SAEs; and a
screenshot in headless Chromium (skipped where it is not installed, except under CI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from realmodels.interpret.neuronpedia import feature_url, neuronpedia_id
from realmodels.interpret.report import report_html
from realmodels.loading.saes import SaeSource
from tests.realmodels.interpret.html_structure import external_urls, parse_report


def shown(token: str) -> str:
    return token.replace("\n", "↵")


def test_report_structure_matches_the_cards(organism_cards):
    cards = json.loads((organism_cards / "cards.json").read_text())["cards"]
    structure = parse_report((organism_cards / "report.html").read_text(encoding="utf-8"))
    assert list(structure.cards) == [c["feature"] for c in cards] and len(cards) == 6 and cards[0]["feature"] == 3
    assert cards[0]["sources"] == [{"list": "given", "rank": 1}]
    assert [s["list"] for c in cards[1:] for s in c["sources"]] == ["harmful"] * 5
    for card in cards:
        parsed = structure.cards[card["feature"]]
        for side in ("promoted", "suppressed"):
            assert parsed[side] == [shown(t["token"]) for t in card["logit_lens"][side]] and len(parsed[side]) == 6
        assert parsed["histograms"] == 1
        assert parsed["snippets"] == [[shown(t) for t in e["tokens"]] for e in card["examples"]]
        assert parsed["max"] == [shown(e["tokens"][e["position"] - e["start"]]) for e in card["examples"]]
    harmful_cards = [c for c in cards if c["sources"][0]["list"] == "harmful"]
    assert all(len(c["examples"]) == 3 for c in harmful_cards)  # harmful features fire on the harmful data
    assert "script" not in structure.tags and "link" not in structure.tags and "img" not in structure.tags
    assert structure.urls == [("a", "href", f"#feature-{c['feature']}") for c in cards]  # the index only
    assert external_urls(structure) == []


def test_neuronpedia_links_are_the_only_external_urls():
    source = SaeSource(release="gemma-scope-2b-pt-res-canonical", sae_id="layer_12/width_16k/canonical")
    assert neuronpedia_id(source) == "gemma-2-2b/12-gemmascope-res-16k"
    assert feature_url(neuronpedia_id(source), 7) == "https://www.neuronpedia.org/gemma-2-2b/12-gemmascope-res-16k/7"
    assert neuronpedia_id(SaeSource(path="/some/local/sae")) is None and feature_url(None, 7) is None
    token = {"token_id": 1, "token": " <b>&", "logit": 1.5}
    example = {"dataset": "d", "line": 4, "sample": 3, "position": 1, "value": 0.5, "start": 0,
               "tokens": ["a", "\n", "c"], "token_ids": [1, 2, 3], "acts": [0.0, 0.5, 0.1],
               "assistant": [False, True, True]}
    card = {"feature": 7, "sources": [{"list": "given", "rank": 1}], "neuronpedia": feature_url(
        neuronpedia_id(source), 7), "logit_lens": {"promoted": [token], "suppressed": [token]},
        "examples": [example], "histogram": {"edges": [0.0, 0.25, 0.5], "counts": [1, 1], "n_zero": 1,
                                             "n_tokens": 3, "max": 0.5},
        "firing": {"d": {"n_tokens": 3, "n_nonzero": 2, "rate": 2 / 3}}}
    html = report_html([card], {"title": "t", "lines": ["x"]})
    structure = parse_report(html)
    assert ("a", "href", "https://www.neuronpedia.org/gemma-2-2b/12-gemmascope-res-16k/7") in structure.urls
    assert external_urls(structure) == [] and structure.cards[7]["promoted"] == [" <b>&"]
    assert structure.cards[7]["snippets"] == [["a", "↵", "c"]] and structure.cards[7]["max"] == ["↵"]
    tampered = parse_report(html.replace("</main>", '<img src="https://example.com/x.png"></main>'))
    assert external_urls(tampered) == ["https://example.com/x.png"]  # the check sees what it must refuse


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None and os.environ.get("CI") != "true",
                    reason="headless Chromium is not installed (apt-get install -y chromium)")
def test_report_renders_offline_in_headless_chromium(organism_cards, tmp_path):
    from PIL import Image

    assert chromium() is not None, "CI must install chromium (.ci/run)"
    shot = tmp_path / "report.png"
    run = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
                          (organism_cards / "report.html").resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, shading and bars, not a blank page
    orange = sum(n for n, (r, g, b) in colours if r > 180 and 60 < g < 130 and b < 60)
    assert orange > 500  # the histogram bars and the max-token shading are drawn (#c2410c / rgb(234,88,12))


def test_a_run_killed_after_its_stages_resumes_to_the_same_files(organism_cards, organism_world, tmp_path):
    """A run killed before its outputs (the logit lens and one dataset's scan done, the other scan not) reruns into
    the same directory to the uninterrupted run's files, byte for byte."""
    from realmodels.analysis.configs import SelectionConfig
    from realmodels.experiments.features import run_feature_cards
    from realmodels.experiments.spec import RunOptions
    from realmodels.interpret.config import FeatureCardsConfig
    from tests.realmodels.cli_helpers import files

    run = tmp_path / "run"
    shutil.copytree(organism_cards, run)
    expected = files(run)
    for name in ("summary.json", "report.html", "cards.json", "logit_lens.csv", "top_examples.csv",
                 "stages/examples/1-harmful.json"):
        (run / name).unlink()
    result = run_feature_cards([organism_world["inducing_health"], organism_world["harmful"]], features=[3],
                               harmful=organism_world["harmful"], harmless=organism_world["harmless"],
                               selection=SelectionConfig(harmful_k=5),
                               config=FeatureCardsConfig(examples=3, top_tokens=6),
                               options=RunOptions(out=run, progress=False), log=lambda message: None)
    assert not result.already_finished and files(run) == expected
