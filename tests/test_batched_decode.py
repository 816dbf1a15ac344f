"""Decoding a whole batch in one call equals decoding its sentences one by one: decode_batch against viterbi /
viterbi_scored / argmax per sentence, tag_strings' table lookup against convert_tags, and Tagger.predict_scored
against the per-sentence loop it replaced, for word-level and sentence-level models."""

from __future__ import annotations

import numpy as np
import pytest

from winner.core.mlp import MLPConfig, WindowMLP
from winner.data.conll import SCHEMES, convert_tags
from winner.data.vocab import Vocab
from winner.data.windows import CASINGS
from winner.heads.decode import conversion_table, decode_batch, tag_strings, viterbi, viterbi_scored
from winner.heads.tagger import Tagger, TaggerSpec, allowed_transitions

IOBES = ["O", "B-LOC", "E-LOC", "I-LOC", "S-LOC", "B-PER", "E-PER", "I-PER", "S-PER"]
IOB = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER", "B-MISC", "I-MISC"]


def _offsets(lengths) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


def _lengths(rng, n: int) -> list[int]:
    """Sentence lengths with empty and one-token sentences among them, at the start and the end too."""
    return [0, 1, *rng.choice([0, 1, 2, 3, 7, 30], size=n).tolist(), 1, 0]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["word", "sentence", "argmax", "impossible"])
def test_decode_batch_equals_per_sentence(seed, kind):
    rng = np.random.default_rng(seed)
    allowed, start_ok, end_ok = allowed_transitions(IOBES, "iobes")
    T = len(IOBES)
    if kind == "impossible":  # random constraints, some sentences with no valid path: argmax fallback
        allowed, start_ok, end_ok = rng.random((T, T)) < 0.2, rng.random(T) < 0.3, rng.random(T) < 0.3
    A, start = (rng.normal(0, 2, (T, T)), rng.normal(0, 2, T)) if kind == "sentence" else (np.zeros((T, T)),
                                                                                          np.zeros(T))
    lengths = _lengths(rng, 60)
    offsets = _offsets(lengths)
    logp = rng.normal(0, 3, (int(offsets[-1]), T)).astype(np.float32).astype(np.float64)
    out = np.full(len(logp), -1, np.int32)
    decode_batch(logp, offsets, A, start, allowed, start_ok, end_ok, kind == "argmax", out)
    for a, b in zip(offsets[:-1], offsets[1:], strict=True):
        ref = np.empty(b - a, np.int32)
        if kind == "argmax":
            ref[:] = np.argmax(logp[a:b], axis=1)
        elif kind == "sentence":
            viterbi_scored(logp[a:b], A, start, allowed, start_ok, end_ok, ref)
        else:
            viterbi(logp[a:b], allowed, start_ok, end_ok, ref)
        assert np.array_equal(out[a:b], ref)


@pytest.mark.parametrize("src", SCHEMES)
def test_tag_strings_equal_convert_tags_on_any_sequence(src):
    """Ill-formed sequences too (random tags), as an argmax decoder may give them."""
    tags = IOBES if src == "iobes" else IOB
    rng = np.random.default_rng(len(src))
    lengths = _lengths(rng, 300)
    offsets = _offsets(lengths)
    path = rng.integers(0, len(tags), int(offsets[-1])).astype(np.int32)
    for dst in SCHEMES:
        got = tag_strings(path, offsets, conversion_table(tags, src, dst))
        want = [t for a, b in zip(offsets[:-1], offsets[1:], strict=True)
                for t in convert_tags([tags[i] for i in path[a:b]], src, dst)]
        assert got == want, (src, dst)


def _tagger(crf: bool, decode: str = "viterbi") -> Tagger:
    words = Vocab(["<pad>", "<unk>", "john", "lives", "in", "paris", "new", "york"])
    cfg = MLPConfig(n_positions=3, vocab_size=len(words), embed_dim=4, n_out=len(IOBES), hidden=(6,),
                    n_features=len(CASINGS), feature_dim=2)
    rng = np.random.default_rng(5)
    spec = TaggerSpec(1, IOBES, "iobes", "iob1", decode=decode,
                      transitions=rng.normal(0, 2, (9, 9)).tolist() if crf else None,
                      start=rng.normal(0, 2, 9).tolist() if crf else None)
    return Tagger(WindowMLP(cfg, seed=2), words, spec)


def _per_sentence(tagger: Tagger, sentences, scheme: str, method: str):
    """Tagger.predict_scored as it was: a decoder call, a probability step and a conversion per sentence."""
    logp = tagger.log_proba(sentences, method=method)
    allowed, start, end = tagger._constraints
    tags, probs, pos = [], [], 0
    for s in sentences:
        n = len(s)
        path = np.empty(n, dtype=np.int32)
        z = np.ascontiguousarray(logp[pos : pos + n], dtype=np.float64)
        if tagger.spec.decode != "viterbi":
            path[:] = np.argmax(logp[pos : pos + n], axis=1)
        elif tagger.crf is not None:
            viterbi_scored(z, tagger.crf.A, tagger.crf.start, allowed, start, end, path)
        else:
            viterbi(z, allowed, start, end, path)
        probs.append(np.exp(logp[pos + np.arange(n), path].astype(np.float64)))
        tags.append(convert_tags([tagger.spec.tags[i] for i in path], tagger.spec.scheme, scheme))
        pos += n
    return tags, probs


@pytest.mark.parametrize(("crf", "decode"), [(False, "viterbi"), (True, "viterbi"), (False, "argmax")])
def test_predict_scored_equals_the_per_sentence_loop(crf, decode):
    tagger = _tagger(crf, decode)
    rng = np.random.default_rng(1)
    vocab = ["John", "lives", "in", "New", "York", "Paris", "paris", "unknown", "3", "."]
    sentences = [[], ["Paris"], *[rng.choice(vocab, size=n).tolist() for n in rng.integers(0, 25, 200)], []]
    for scheme in SCHEMES:
        for method in ("lookup", "gemm"):
            tags, probs = tagger.predict_scored(sentences, scheme, method=method)
            ref_tags, ref_probs = _per_sentence(tagger, sentences, scheme, method)
            assert tags == ref_tags
            assert len(probs) == len(ref_probs)
            assert all(np.array_equal(p, r) for p, r in zip(probs, ref_probs, strict=True))
