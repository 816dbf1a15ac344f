"""Benchmark rows of tagging with document codes (core/context.py): the bench's NER network with character
windows and the two code inputs, each token linked to the nearest other occurrences of its word in its document.

The timed call is what `Tagger.log_proba` does after featurizing: find the links (from integer word keys), then
tag part by part, the codes' share of the first layer over projected rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from winner.core.bench_chars import CHARS, random_words
from winner.core.bench_common import Report, lookup_tagging_rows, windows_of, zipf_ids
from winner.core.chars import CharConfig, CharWindowMLP
from winner.core.context import CODE_POSITIONS, ContextCodes, coded_log_proba, occurrence_links
from winner.core.mlp import MLPConfig

SENTENCE_TOKENS = 25
DOCUMENT_SENTENCES = 10  # documents of 250 tokens, about a CoNLL-2003 news story's
OCCURRENCES = 6  # `winner ner train --context-code document`'s default
FORGET = 0.7


def document_tag_workload(report: Report, rng: np.random.Generator, ner: dict, threads: tuple[int, ...],
                          repeats: int, quick: bool, progress: Callable[[str], None]) -> None:
    """Tagging tokens/s with character windows and document codes (winner only)."""
    doc_tokens = SENTENCE_TOKENS * DOCUMENT_SENTENCES
    n_tok = (50_000 if quick else 200_000) // doc_tokens * doc_tokens
    V, half = ner["vocab"], ner["positions"] // 2
    cfg = MLPConfig(n_positions=ner["positions"] + CODE_POSITIONS, vocab_size=V,
                    embed_dim=ner["embed"] + CHARS["n_filters"], n_out=ner["classes"], hidden=(ner["hidden"],))
    model = CharWindowMLP(cfg, CharConfig(**CHARS), seed=1)
    model.set_words(*random_words(rng, V, CHARS["n_chars"]))
    model.fill_vocabulary()
    ids = windows_of(zipf_ids(rng, V, n_tok), ner["positions"])
    feats = np.zeros_like(ids)
    keys = ids[:, half].astype(np.int64)
    lengths = np.full(n_tok // SENTENCE_TOKENS, SENTENCE_TOKENS)
    documents = np.full(n_tok // doc_tokens, DOCUMENT_SENTENCES)
    codes = ContextCodes(half, FORGET, model.word_dim, 0, "document", OCCURRENCES)
    extra = np.zeros((0, cfg.embed_dim), model.dtype)

    def tag(method: str) -> np.ndarray:
        links = occurrence_links(keys, np.full(len(documents), doc_tokens), OCCURRENCES)
        return coded_log_proba(model, codes, ids, feats, lengths, extra, method, 4096, links, documents)

    counts = np.diff(occurrence_links(keys, np.full(len(documents), doc_tokens), OCCURRENCES).start)
    lookup_tagging_rows(report, "tagging, characters + document codes", "character windows and document codes", n_tok,
                        tag, threads, repeats, progress,
                        f"documents of {doc_tokens} tokens, up to {OCCURRENCES} occurrences linked: "
                        f"{(counts > 0).mean():.0%} of tokens have links, {counts.mean():.2f} per token")
