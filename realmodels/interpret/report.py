"""The feature cards as one self-contained static HTML file: inline CSS, histograms as inline SVG, no script, no
fetched resource (the only external URLs are Neuronpedia links, followed only when clicked), so it opens from disk
offline. One ``<section class="card" id="feature-<i>" data-feature="<i>">`` per card holds: why the feature is
listed, its logit lens (``table.promoted`` / ``table.suppressed``), its histogram (``svg.histogram``) and its
snippets (``div.snippet``: one ``span.tok`` per token shaded by its activation relative to the feature's largest
snippet activation, the max token ``span.tok.max``, non-assistant tokens ``span.tok.ctx``)."""

from __future__ import annotations

from html import escape

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f6f3;color:#1d1d1b}
header{padding:16px 24px;background:#1d2b3a;color:#f1f1ee}
header h1{margin:0 0 6px;font-size:22px} header p{margin:3px 0;font-size:13px}
nav{padding:8px 24px;font-size:13px;line-height:1.9} nav a{margin-right:8px;color:#1d4e89}
main{padding:0 24px 24px}
.card{background:#fff;border:1px solid #d8d8d2;border-radius:6px;margin:14px 0;padding:12px 16px}
.card h2{margin:0 0 4px;font-size:18px} .sources{margin:0 0 6px;font-size:13px;color:#444}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
table{border-collapse:collapse;font-size:12px} caption{font-weight:600;text-align:left;padding-bottom:2px}
td{padding:1px 6px;border-bottom:1px solid #eee} td.logit{text-align:right;font-variant-numeric:tabular-nums}
td.token,.tok{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre}
table.promoted caption{color:#1a7f37} table.suppressed caption{color:#b42318}
.examples{margin-top:8px} .snippet{font-size:12px;margin:3px 0;line-height:1.8}
.where{display:inline-block;min-width:210px;color:#555;font-family:system-ui,sans-serif}
.tok{border-radius:2px;padding:0 1px;margin-right:2px} .tok.max{outline:2px solid #c2410c} .tok.ctx{color:#8a8a85}
.none{color:#777;font-size:12px} a.neuronpedia{font-size:13px}
"""
WIDTH, HEIGHT, PAD = 360, 130, 24


def token_html(text: str) -> str:
    """A token's text for display: escaped, a newline shown as ↵ (the text itself kept in the span)."""
    return escape(text.replace("\n", "↵"))


def histogram_svg(histogram: dict) -> str:
    """Inline SVG bars of the non-zero activations' histogram, with the zero count in the caption."""
    counts, edges = histogram["counts"], histogram["edges"]
    top = max(counts) or 1
    bar = (WIDTH - 2 * PAD) / len(counts)
    bars = "".join(
        f'<rect x="{PAD + i * bar:.1f}" y="{HEIGHT - PAD - (HEIGHT - 2 * PAD) * c / top:.1f}" '
        f'width="{max(bar - 1, 0.5):.1f}" height="{(HEIGHT - 2 * PAD) * c / top:.1f}" fill="#c2410c">'
        f"<title>[{edges[i]:.3g}, {edges[i + 1]:.3g}): {c}</title></rect>" for i, c in enumerate(counts))
    axis = (f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#555"/>'
            f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{edges[0]:.3g}</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="10" text-anchor="end">{edges[-1]:.3g}</text>'
            f'<text x="{PAD}" y="12" font-size="10">max count {top}</text>')
    n_nonzero = sum(counts)
    caption = (f"non-zero activations on {n_nonzero} of {histogram['n_tokens']} assistant tokens "
               f"({histogram['n_zero']} zero)")
    return (f'<figure><svg class="histogram" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="activation histogram">{axis}{bars}</svg>'
            f"<figcaption class=\"none\">{escape(caption)}</figcaption></figure>")


def lens_table(side: str, tokens: list[dict]) -> str:
    """An HTML table of logit-lens tokens and their logits, captioned ``side`` (promoted or suppressed)."""
    rows = "".join(f'<tr><td class="token">{token_html(t["token"])}</td><td class="logit">{t["logit"]:+.3f}</td></tr>'
                   for t in tokens)
    return f'<table class="{side}"><caption>{side}</caption>{rows}</table>'


def snippet_html(example: dict, scale: float) -> str:
    """One snippet: where it is from, then each token shaded by activation / ``scale``."""
    centre = example["position"] - example["start"]
    where = escape(f"{example['dataset']}:{example['line'] if example['line'] is not None else example['sample']} "
                   f"· {example['value']:.3g}")
    spans = []
    for i, (text, act, assistant) in enumerate(zip(example["tokens"], example["acts"], example["assistant"])):
        alpha = 0.0 if scale <= 0 else min(max(act / scale, 0.0), 1.0)
        classes = "tok" + (" max" if i == centre else "") + ("" if assistant else " ctx")
        spans.append(f'<span class="{classes}" style="background:rgba(234,88,12,{alpha:.3f})" '
                     f'title="{act:.4g}">{token_html(text)}</span>')
    return (f'<div class="snippet" data-dataset="{escape(example["dataset"])}" data-value="{example["value"]:.6g}">'
            f'<span class="where">{where}</span>{"".join(spans)}</div>')


def source_text(source: dict) -> str:
    """Where a card's feature was listed: ``<list> #<rank>`` and its float statistics."""
    extra = "".join(f", {key} {value:.3g}" for key, value in source.items()
                    if key not in ("list", "rank") and isinstance(value, float))
    return f"{source['list']} #{source['rank']}{extra}"


def card_html(card: dict) -> str:
    """One feature card as an HTML section: where it was listed, its firing rates, the Neuronpedia link if any, the
    logit-lens tables, the activation histogram and the top-activating snippets."""
    i = card["feature"]
    sources = "; ".join(source_text(s) for s in card["sources"]) or "given"
    link = (f'<p><a class="neuronpedia" href="{escape(card["neuronpedia"])}">Neuronpedia page of feature {i}</a></p>'
            if card["neuronpedia"] else "")
    rates = ", ".join(f"{escape(name)} {f['rate']:.2%}" if f["rate"] is not None else f"{escape(name)} n/a"
                      for name, f in card["firing"].items())
    scale = max((e["value"] for e in card["examples"]), default=0.0)
    examples = ("".join(snippet_html(e, scale) for e in card["examples"]) if card["examples"]
                else '<p class="none">no assistant token of the datasets activates this feature</p>')
    return (f'<section class="card" id="feature-{i}" data-feature="{i}"><h2>Feature {i}</h2>'
            f'<p class="sources">listed as: {escape(sources)} · fires on (assistant tokens): {rates}</p>{link}'
            f'<div class="row"><div class="lens row">{lens_table("promoted", card["logit_lens"]["promoted"])}'
            f'{lens_table("suppressed", card["logit_lens"]["suppressed"])}</div>{histogram_svg(card["histogram"])}'
            f'</div><div class="examples"><h3>top-activating snippets</h3>{examples}</div></section>')


def report_html(cards: list[dict], meta: dict) -> str:
    """The whole report. ``meta``: ``title``, ``lines`` (header lines, plain text)."""
    header = "".join(f"<p>{escape(line)}</p>" for line in meta["lines"])
    nav = " ".join(f'<a href="#feature-{c["feature"]}">{c["feature"]}</a>' for c in cards)
    body = "".join(card_html(card) for card in cards)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(meta["title"])}</title>'
            f'<style>{CSS}</style></head><body><header><h1>{escape(meta["title"])}</h1>{header}</header>'
            f"<nav>features: {nav}</nav><main>{body}</main></body></html>\n")
