"""A reader of the feature-cards report's structure with ``html.parser``: the cards, their logit-lens tokens and
snippets, and every URL the page would load or link to."""

from __future__ import annotations

from html.parser import HTMLParser


class ReportStructure(HTMLParser):
    """``cards``: feature -> {"promoted": [token texts], "suppressed": [...], "snippets": [[token texts]],
    "max": [max token text per snippet], "histograms": count}; ``urls``: (tag, attribute, value) of every src /
    href; ``tags``: every tag name seen."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cards: dict[int, dict] = {}
        self.urls: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()
        self._card = self._side = None
        self._cell = self._token = False
        self._max = False
        self._depth = 0  # open <section> depth of the current card

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        for name in ("src", "href", "srcset", "data", "action"):
            if attrs.get(name) is not None:
                self.urls.append((tag, name, attrs[name]))
        classes = (attrs.get("class") or "").split()
        if tag == "section" and "card" in classes:
            self._card = int(attrs["data-feature"])
            self.cards[self._card] = {"promoted": [], "suppressed": [], "snippets": [], "max": [], "histograms": 0}
        elif self._card is None:
            return
        elif tag == "table" and ("promoted" in classes or "suppressed" in classes):
            self._side = "promoted" if "promoted" in classes else "suppressed"
        elif tag == "td" and "token" in classes and self._side:
            self._cell = True
            self.cards[self._card][self._side].append("")
        elif tag == "svg" and "histogram" in classes:
            self.cards[self._card]["histograms"] += 1
        elif tag == "div" and "snippet" in classes:
            self.cards[self._card]["snippets"].append([])
        elif tag == "span" and "tok" in classes:
            self._token, self._max = True, "max" in classes
            self.cards[self._card]["snippets"][-1].append("")

    def handle_endtag(self, tag):
        if tag == "section":
            self._card = None
        elif tag == "table":
            self._side = None
        elif tag == "td":
            self._cell = False
        elif tag == "span" and self._token:
            if self._max:
                self.cards[self._card]["max"].append(self.cards[self._card]["snippets"][-1][-1])
            self._token = self._max = False

    def handle_data(self, data):
        if self._card is None:
            return
        if self._cell:
            self.cards[self._card][self._side][-1] += data
        elif self._token:
            self.cards[self._card]["snippets"][-1][-1] += data


def parse_report(text: str) -> ReportStructure:
    parser = ReportStructure()
    parser.feed(text)
    parser.close()
    return parser


def external_urls(structure: ReportStructure, allowed_prefix: str = "https://www.neuronpedia.org/") -> list[str]:
    """Every http(s) or protocol-relative URL in a src/href that is not a Neuronpedia link (``<a href>``)."""
    bad = []
    for tag, attribute, value in structure.urls:
        remote = value.strip().lower().startswith(("http:", "https:", "//"))
        if remote and not (tag == "a" and attribute == "href" and value.startswith(allowed_prefix)):
            bad.append(value)
    return bad
