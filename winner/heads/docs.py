"""Tagged documents: raw text or pre-tokenised sentences in, tokens and entities with character offsets out.

The Python API (`nlp(text)`, `nlp.pipe(texts)`) and `winner ner tag` (winner.heads.tagging) both tag through
here, so an entity's `start_char` / `end_char` always index the text the user gave:
`doc.text[e.start_char:e.end_char] == e.text`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from winner.data.conll import tags_to_spans
from winner.data.text import Token, model_form, split_sentences, tokenize_with_offsets
from winner.heads.tagger import Tagger

# What a user may pass: raw text, or one sentence already cut into tokens (a list, never a bare string).
TextInput = str | Sequence[str]


@dataclass(frozen=True)
class Entity:
    """One entity: its text as in the input, its type, character offsets (end exclusive), token indices
    (end exclusive) and the model's confidence (geometric mean of its tokens' tag probabilities)."""

    text: str
    label: str
    start_char: int
    end_char: int
    start: int
    end: int
    confidence: float

    def to_json(self) -> dict:
        return {"text": self.text, "label": self.label, "start_char": self.start_char, "end_char": self.end_char,
                "start": self.start, "end": self.end, "confidence": round(self.confidence, 6)}


@dataclass
class Doc:
    """A tagged text: its tokens (with offsets), one tag per token, sentences as token ranges, entities."""

    text: str
    tokens: list[Token]
    tags: list[str]
    sents: list[tuple[int, int]]
    ents: list[Entity]

    def to_json(self) -> dict:
        return {"text": self.text,
                "tokens": [{"text": t.text, "start_char": t.start, "end_char": t.end, "tag": tag}
                           for t, tag in zip(self.tokens, self.tags, strict=True)],
                "entities": [e.to_json() for e in self.ents]}


def pretokenized(tokens: Sequence[str]) -> tuple[str, list[Token]]:
    """The text of a pre-tokenised sentence (tokens joined by single spaces) and each token's offsets in it."""
    if isinstance(tokens, str):
        raise TypeError("a pre-tokenised sentence is a list of tokens; pass a str to have it tokenised")
    out, pos = [], 0
    for tok in tokens:
        if not isinstance(tok, str) or not tok or any(c.isspace() for c in tok):
            raise ValueError(f"a token must be a non-empty string without spaces, got {tok!r}")
        out.append(Token(tok, pos, pos + len(tok)))
        pos += len(tok) + 1
    return " ".join(tokens), out


Prepared = tuple[str, list[Token], list[list[Token]]]


def prepare(item: TextInput) -> Prepared:
    """(text, tokens, sentences) of raw text (tokenised and split into sentences) or of a token list (one
    sentence, as given)."""
    if isinstance(item, str):
        tokens = tokenize_with_offsets(item)
        return item, tokens, split_sentences(tokens)
    text, tokens = pretokenized(item)
    return text, tokens, [tokens] if tokens else []


def tag_docs(tagger: Tagger, items: Iterable[TextInput], batch_size: int = 64) -> Iterator[Doc]:
    """Tag texts (or token lists) `batch_size` at a time: every sentence of a batch goes through the model in
    one call, and the documents come back in input order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    batch: list[Prepared] = []
    for item in items:
        batch.append(prepare(item))
        if len(batch) == batch_size:
            yield from tag_prepared(tagger, batch)
            batch = []
    if batch:
        yield from tag_prepared(tagger, batch)


def tag_prepared(tagger: Tagger, batch: Sequence[Prepared], method: str | None = None,
                 documents: Sequence[int] | None = None) -> list[Doc]:
    """Docs of prepared texts, every sentence of the batch in one model call (`method` as in Tagger.predict);
    `documents`: each text's document id (what document codes read; None: each text is its own document,
    whatever batch it falls in)."""
    sentences = [[model_form(t.text) for t in sent] for _, _, sents in batch for sent in sents]
    ids = range(len(batch)) if documents is None else documents
    per_sentence = [ids[k] for k, (_, _, sents) in enumerate(batch) for _ in sents]
    tags, probs = tagger.predict_scored(sentences, method=method, documents=per_sentence)
    docs, k = [], 0
    for text, tokens, sents in batch:
        doc_tags: list[str] = []
        doc_probs: list[np.ndarray] = []
        ranges = []
        for sent in sents:
            ranges.append((len(doc_tags), len(doc_tags) + len(sent)))
            doc_tags += tags[k]
            doc_probs.append(probs[k])
            k += 1
        p = np.concatenate(doc_probs) if doc_probs else np.zeros(0)
        ents = [_entity(text, tokens, p, kind, s + a, s + b)
                for s, e in ranges for kind, a, b in tags_to_spans(doc_tags[s:e], tagger.spec.output_scheme)]
        docs.append(Doc(text, tokens, doc_tags, ranges, ents))
    return docs


def _entity(text: str, tokens: list[Token], probs: np.ndarray, label: str, start: int, end: int) -> Entity:
    a, b = tokens[start].start, tokens[end - 1].end
    confidence = math.exp(float(np.mean(np.log(np.maximum(probs[start:end], 1e-300)))))
    return Entity(text[a:b], label, a, b, start, end, confidence)
