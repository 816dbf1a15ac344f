"""Labelled sentences made ready for a window head: train/dev resolution, the embedding table aligned to the
vocabulary, and word dropout for `<unk>`. Shared by the tagger and the scorer."""

from __future__ import annotations

import numpy as np

from winner.core.console import console
from winner.data import embeddings
from winner.data.conll import Sentence
from winner.data.embeddings import BROWN_EMBEDDINGS, DEFAULT_EMBEDDINGS
from winner.data.hub import load_sentences, validation_split
from winner.data.resources import wikigold_path
from winner.data.vocab import Vocab
from winner.data.windows import build_word_vocab, normalise
from winner.errors import WinnerError


def resolve_data(train_source: str | None, dev_source: str | None,
                 ) -> tuple[list[Sentence], list[Sentence], str, str]:
    """(train, dev, train source, dev source); no train source means the shipped WikiGold split; no dev
    source means the training dataset's validation split if it has one, else every 10th training sentence."""
    train_src = train_source or str(wikigold_path("train"))
    own_split = validation_split(train_src) if train_source and not dev_source else None
    if dev_source or own_split:
        dev_src = dev_source or train_src
    elif train_source is None:
        dev_src = str(wikigold_path("dev"))
    else:
        dev_src = ""
    train = load_sentences(train_src, split="train")
    if dev_src:
        dev = load_sentences(dev_src, split="validation")
        if own_split:
            dev_src = f"{train_src} ({own_split} split)"
    else:  # hold out every tenth sentence for early stopping
        dev = train[9::10]
        train = [s for i, s in enumerate(train) if i % 10 != 9]
        dev_src = f"every 10th sentence of {train_src}"
    if not dev:
        raise WinnerError(f"{train_src}: too few sentences to hold out a dev set for early stopping; pass --dev")
    return train, dev, train_src, dev_src


def embedding_table(spec: str, max_pretrained: int, train: list[Sentence], rng: np.random.Generator,
                    quiet: bool = False, trust_pickle: bool = False,
                    ) -> tuple[np.ndarray | None, list[str], dict, np.ndarray]:
    """(table or None, vocabulary words, stats, has_vector): pretrained vectors (`spec`: a file, a downloader
    name, "default" (the shipped GloVe subset), "brown-word2vec" or "none") aligned to the training words plus
    the `max_pretrained` most frequent pretrained
    words (0: all); has_vector marks the words that got a pretrained row. A pickled (gensim native) file is
    refused unless trust_pickle, as unpickling runs code."""
    tokens = [s.tokens for s in train]
    if spec.lower() == "none":
        vocab = build_word_vocab(tokens)
        return None, vocab.itos, {"embeddings": "none"}, np.zeros(len(vocab), dtype=bool)
    if spec == DEFAULT_EMBEDDINGS:
        kv = embeddings.shipped_glove()
    elif spec == BROWN_EMBEDDINGS:
        kv = embeddings.default_vectors(progress=not quiet)
    else:
        kv = embeddings.load_keyed_vectors(spec, progress=not quiet, trust_pickle=trust_pickle)
    top = embeddings.top_words(kv, max_pretrained or len(kv.index_to_key))
    vocab = build_word_vocab(tokens, extra_words=top)
    table, stats = embeddings.align_vectors(kv, vocab.itos, rng)
    train_words = [normalise(w) for t in tokens for w in t]
    token_cov = float(np.mean([w in kv.key_to_index or w.lower() in kv.key_to_index for w in train_words]))
    stats = {**stats, "embeddings": spec, "train_token_coverage": token_cov}
    console.print(f"embeddings {spec}: {stats['found']:,}/{stats['total']:,} vocabulary words have a vector "
                  f"({100 * stats['coverage']:.1f}%), {100 * token_cov:.1f}% of training tokens")
    has_vector = np.fromiter((w in kv.key_to_index or w.lower() in kv.key_to_index for w in vocab.itos),
                             dtype=bool, count=len(vocab))
    return table, vocab.itos, stats, has_vector


def replace_rare_with_unk(ids: np.ndarray, words: Vocab, has_vector: np.ndarray, p: float,
                          rng: np.random.Generator) -> np.ndarray:
    """Word dropout for the `<unk>` row: each use of a word seen once in training and without a pretrained
    vector becomes `<unk>` with probability p, so `<unk>` learns what rare unseen words (often names) look
    like instead of staying a random vector that only test data ever reaches."""
    unk = words.unk_id
    if p <= 0.0 or unk is None:
        return ids
    centre = ids[:, ids.shape[1] // 2]  # each token once
    counts = np.bincount(centre, minlength=len(words))
    rare = (counts == 1) & ~has_vector
    rare[[i for i in (words.pad_id, unk) if i is not None]] = False
    out = ids.copy()
    out[rare[ids] & (rng.random(ids.shape) < p)] = unk
    return out
