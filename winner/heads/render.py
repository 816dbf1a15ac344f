"""Tagged sentences as one self-contained HTML page: entities highlighted per type, explanations as heat strips.

No scripts, fonts or stylesheets from elsewhere, readable without JavaScript; every piece of input text goes
through html.escape, so a sentence holding `<script>` shows as text. `winner ner tag --format html`,
`winner ner explain --html` and the page of `winner serve` all draw through `render_fragment`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from winner.data.conll import tags_to_spans
from winner.heads.explain import WindowExplanation, explain_tagger
from winner.heads.scorer import Scorer
from winner.heads.tagger import Tagger

# Colours of the CoNLL types; other types take one of the rest, chosen by their name.
TYPE_COLOURS = {"PER": "#ffd166", "LOC": "#8ecae6", "ORG": "#b5e48c", "MISC": "#e0b1cb"}
SPARE_COLOURS = ("#f4a261", "#a0c4ff", "#caffbf", "#ffc6ff", "#fdffb6", "#bdb2ff", "#9bf6ff", "#ffadad")
POSITIVE, NEGATIVE = (214, 39, 40), (31, 119, 180)  # red raised the score, blue lowered it

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; color: #222; }
p.sentence { line-height: 2.4; margin: 0.6em 0; }
mark.entity { padding: 0.15em 0.35em; border-radius: 0.3em; }
mark.entity .label { font-size: 0.65em; font-weight: bold; margin-left: 0.4em; vertical-align: middle; }
details.why { margin: 0 0 1.2em 0; }
table.heat { border-collapse: collapse; font-size: 0.85em; }
table.heat td, table.heat th { padding: 0.15em 0.4em; text-align: left; vertical-align: top; }
table.heat .num { text-align: right; font-variant-numeric: tabular-nums; }
.cell { display: inline-block; margin-right: 0.3em; text-align: center; }
.cell .strip { height: 0.6em; border: 1px solid #ccc; }
.cell .case { height: 0.3em; border: 1px solid #eee; }
.cell.centre { font-weight: bold; }
.key { font-size: 0.8em; color: #555; }
"""


@dataclass
class TaggedSentence:
    """A sentence as a page shows it: its tokens, its tags (in `scheme`) and, optionally, why."""

    tokens: list[str]
    tags: list[str]
    scheme: str
    explanations: list[WindowExplanation] = field(default_factory=list)

    def to_json(self) -> dict:
        """{tokens, tags, entities [{type, start, end, text}], explanations [...]}."""
        return {"tokens": self.tokens, "tags": self.tags,
                "entities": [{"type": kind, "start": start, "end": end, "text": " ".join(self.tokens[start:end])}
                             for kind, start, end in tags_to_spans(self.tags, self.scheme)],
                "explanations": [x.to_json() for x in self.explanations]}


def tag(tagger: Tagger, sentences: Sequence[Sequence[str]], explain: bool = False) -> list[TaggedSentence]:
    """Tag token lists, with the explanation of every chosen tag if `explain`."""
    if not explain:
        return [TaggedSentence(list(s), t, tagger.spec.output_scheme) for s, t in
                zip(sentences, tagger.predict(sentences), strict=True)]
    tags, explanations = explain_tagger(tagger, sentences)
    out = [TaggedSentence(list(s), t, tagger.spec.output_scheme) for s, t in zip(sentences, tags, strict=True)]
    for x in explanations:
        out[x.sentence].explanations.append(x)
    return out


def type_colour(kind: str) -> str:
    if kind in TYPE_COLOURS:
        return TYPE_COLOURS[kind]
    return SPARE_COLOURS[sum(map(ord, kind)) % len(SPARE_COLOURS)]


def render_sentence(s: TaggedSentence) -> str:
    """The sentence as a paragraph, each entity a <mark> with its type's colour and its label."""
    e = html.escape
    starts = {start: (kind, end) for kind, start, end in tags_to_spans(s.tags, s.scheme)}
    parts, i = [], 0
    while i < len(s.tokens):
        if i in starts:
            kind, end = starts[i]
            text = e(" ".join(s.tokens[i:end]))
            parts.append(f'<mark class="entity" data-type="{e(kind)}" style="background: {type_colour(kind)}">'
                         f'{text}<span class="label">{e(kind)}</span></mark>')
            i = end
        else:
            parts.append(e(s.tokens[i]))
            i += 1
    return f'<p class="sentence">{" ".join(parts)}</p>'


def heat(value: float, scale: float) -> str:
    """A CSS colour for a contribution: red for positive, blue for negative, stronger the larger |value|."""
    rgb = POSITIVE if value >= 0 else NEGATIVE
    alpha = min(1.0, abs(value) / scale) if scale > 0 else 0.0
    return f"rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.3f})"


def render_heat_strips(explanations: Sequence[WindowExplanation]) -> str:
    """A table with one row per explained window: its token, label, score and the window's words, each over a
    strip coloured by its word's contribution and a thinner one by its casing's."""
    e = html.escape
    scale = max((abs(x) for ex in explanations for x in (*ex.word, *ex.casing)), default=0.0)
    rows = []
    for ex in explanations:
        cells = []
        for word, off, cw, cc in zip(ex.window, ex.offsets, ex.word, ex.casing, strict=True):
            cls = "cell centre" if off == 0 else "cell"
            cells.append(f'<span class="{cls}" title="word {cw:+.3f}, casing {cc:+.3f}">{e(word)}'
                         f'<div class="strip" style="background: {heat(cw, scale)}"></div>'
                         f'<div class="case" style="background: {heat(cc, scale)}"></div></span>')
        rows.append(f'<tr><th>{e(ex.token)}</th><td>{e(ex.label)}</td><td class="num">{ex.score:.3f}</td>'
                    f'<td class="num">{ex.rest:.3f}</td><td>{"".join(cells)}</td></tr>')
    return ('<table class="heat"><tr><th>token</th><th>label</th><th>score</th><th>rest</th>'
            '<th>window: word contribution (upper strip), casing (lower)</th></tr>' + "".join(rows) + "</table>")


def render_fragment(sentences: Sequence[TaggedSentence]) -> str:
    """Every sentence, each followed by its explanations (folded, readable without JavaScript) if it has any."""
    parts = []
    for s in sentences:
        parts.append(render_sentence(s))
        if s.explanations:
            parts.append('<details class="why"><summary>why these tags</summary>'
                         f"{render_heat_strips(s.explanations)}</details>")
    return "\n".join(parts)


def page_head(title: str, key: str = "") -> str:
    """The page up to its first sentence: the inline style, the title and the colour key."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>{key}\n")


PAGE_FOOT = "\n</body></html>\n"


def render_page(sentences: Sequence[TaggedSentence], title: str = "winner: entities") -> str:
    """One self-contained HTML document."""
    key = ('<p class="key">Red: the input raised the score of the chosen tag; blue: it lowered it '
           "(gradient &times; input, from the model's own backward pass).</p>"
           if any(s.explanations for s in sentences) else "")
    return page_head(title, key) + render_fragment(sentences) + PAGE_FOOT


def scorer_page(scorer: Scorer, sentences: Sequence[Sequence[str]],
                explanations: Sequence[WindowExplanation]) -> str:
    """The scorer's explanations as a page: windows scoring at or above the stored threshold are highlighted
    as one-word entities of the scorer's label."""
    out = [TaggedSentence(list(s), ["O"] * len(s), "iobes") for s in sentences]
    for x in explanations:
        s = out[x.sentence]
        if x.score >= scorer.spec.threshold:
            s.tags[x.position] = f"S-{scorer.spec.label}"
        s.explanations.append(x)
    return render_page(out, f"winner: why each window scores as {scorer.spec.label}")


def lm_page(explanations: Sequence[WindowExplanation]) -> str:
    """The language model's explanations as a page: the text, then each word's context as a heat strip."""
    words = [x.token for x in explanations]
    return render_page([TaggedSentence(words, ["O"] * len(words), "iob2", list(explanations))],
                       "winner: which words raised the probability of the next")
