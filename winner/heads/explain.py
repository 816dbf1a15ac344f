"""Why each head chose what it chose: gradient x input over every window, from the model's own backprop.

The tagger explains each token's chosen tag (the logit of the tag Viterbi picked), the scorer each window's
score, the language model each word's log-probability given the words before it. Every explanation is one
`WindowExplanation`: the window's words and, per position, the contribution of its word embedding and of its
casing embedding (winner.core.attribution), plus the rest of the score (the output bias where linear).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from winner.core.attribution import Attribution, attribute, log_probability_of, logit_of
from winner.data.conll import convert_tags
from winner.data.corpus import tokenize as lm_tokenize
from winner.data.vocab import PAD
from winner.heads.lm import LanguageModel
from winner.heads.scorer import Scorer
from winner.heads.tagger import Tagger


@dataclass
class WindowExplanation:
    """One window's score and where it came from."""

    sentence: int
    position: int  # the token's index in its sentence (the LM: in the text)
    token: str  # the window's centre (the LM: the predicted word)
    label: str  # what was scored: the tag in the model's scheme, the scorer's label, the predicted word
    score: float  # the tag's logit, the window's score, log p(word | context)
    rest: float  # score - sum of contributions: the output bias where the model is linear
    window: list[str]  # the words the model read, <pad> beyond the edges
    offsets: list[int]  # each word's place relative to the token (-w..w; the LM: -context..-1)
    word: list[float]  # gradient x input of each word's embedding
    casing: list[float]  # the same for each word's casing embedding (zeros for the LM)

    def to_json(self) -> dict:
        return asdict(self)


def _windows(sentences: Sequence[Sequence[str]], half: int) -> list[tuple[int, int, list[str]]]:
    """(sentence, position, window words) of every token, in the order featurize makes the windows."""
    out = []
    for i, tokens in enumerate(sentences):
        padded = [PAD] * half + list(tokens) + [PAD] * half
        out.extend((i, j, padded[j : j + 2 * half + 1]) for j in range(len(tokens)))
    return out


def _explanations(a: Attribution, where: list[tuple[int, int, list[str]]], tokens: list[str], labels: list[str],
                  offsets: list[int]) -> list[WindowExplanation]:
    return [WindowExplanation(i, j, tokens[k], labels[k], float(a.score[k]), float(a.rest[k]), window, offsets,
                              [round(float(x), 6) for x in a.word[k]], [round(float(x), 6) for x in a.feature[k]])
            for k, (i, j, window) in enumerate(where)]


def explain_tagger(tagger: Tagger, sentences: Sequence[Sequence[str]]) -> tuple[list[list[str]],
                                                                               list[WindowExplanation]]:
    """(tags in the output scheme, one explanation per token of the tag the model chose for it)."""
    model_tags = tagger.predict(sentences, scheme=tagger.spec.scheme)
    flat = [t for tags in model_tags for t in tags]
    if not flat:
        return [[] for _ in sentences], []
    ids, feats = tagger.featurize(sentences)
    w = tagger.spec.window
    where, offsets, table = _windows(sentences, w), list(range(-w, w + 1)), None
    if tagger.context is not None:  # the codes are two more inputs, shown as two more words beyond the window
        ids, feats, table = tagger.coded_inputs(sentences, ids, feats)
        codes = [f"<{tagger.context.mode} left>", f"<{tagger.context.mode} right>"]
        where = [(i, j, [*window, *codes]) for i, j, window in where]
        offsets += [-(w + 1), w + 1]
    chosen = np.array([tagger.tag_vocab.stoi[t] for t in flat], dtype=np.int64)
    a = attribute(tagger.model, ids, feats, logit_of(chosen), table=table)
    shown = [convert_tags(t, tagger.spec.scheme, tagger.spec.output_scheme) for t in model_tags]
    tokens = [t for s in sentences for t in s]
    return shown, _explanations(a, where, tokens, flat, offsets)


def explain_scorer(scorer: Scorer, sentences: Sequence[Sequence[str]]) -> list[WindowExplanation]:
    """One explanation per window: what raised or lowered its score as a `scorer.spec.label`."""
    tokens = [t for s in sentences for t in s]
    if not tokens:
        return []
    ids, feats = scorer.featurize(sentences)
    a = attribute(scorer.model, ids, feats, logit_of(np.zeros(len(tokens), dtype=np.int64)))
    w = scorer.spec.window
    return _explanations(a, _windows(sentences, w), tokens, [scorer.spec.label] * len(tokens),
                         list(range(-w, w + 1)))


def explain_lm(lm: LanguageModel, text: str) -> list[WindowExplanation]:
    """One explanation per word of `text` (tokenised like the training text): which of the words before it
    raised log p(word | context)."""
    words = lm_tokenize(text, known=lm.vocab.stoi)
    if not words:
        return []
    ids = lm.ids(words)
    X, y = lm.windows(ids)
    a = attribute(lm.model, X, None, log_probability_of(y))
    n = lm.context
    padded = [PAD] * n + words
    where = [(0, j, padded[j : j + n]) for j in range(len(words))]
    labels = [lm.vocab.itos[int(k)] for k in y]  # the word as the model knows it (<unk> if unknown)
    return _explanations(a, where, words, labels, list(range(-n, 0)))


# ---------------------------------------------------------------- the terminal table


def format_table(explanations: Sequence[WindowExplanation], score_name: str = "score") -> str:
    """One line per window: token, label, score = rest + casing + the words' contributions, each word with its
    contribution, the centre word in [brackets]."""
    lines = [f"{'token':<14} {'label':<10} {score_name:>8} {'rest':>7} {'casing':>7}  window (word contribution)"]
    for e in explanations:
        cells = []
        for word, off, c in zip(e.window, e.offsets, e.word, strict=True):
            shown = f"[{word}]" if off == 0 else word
            cells.append(f"{shown} {c:+.2f}")
        lines.append(f"{_clip(e.token, 14):<14} {_clip(e.label, 10):<10} {e.score:8.3f} {e.rest:7.3f} "
                     f"{sum(e.casing):+7.3f}  {'  '.join(cells)}")
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
