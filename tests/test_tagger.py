"""Windows, casing, constrained decoding and the tagger's save/load round trip."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from winner.core.mlp import MLPConfig, WindowMLP
from winner.data.conll import convert_tags, tags_to_spans
from winner.data.vocab import Vocab
from winner.data.windows import CASINGS, build_word_vocab, casing, make_windows, normalise, word_ids
from winner.errors import ModelFormatError
from winner.heads.decode import viterbi
from winner.heads.tagger import Tagger, TaggerSpec, allowed_transitions


def test_normalise_and_casing():
    assert normalise("Paris1999") == "paris0000"
    names = [CASINGS[casing(w)] for w in ["the", "The", "EU", "iPhone", "1996", "B52", ".", "McDonald"]]
    assert names == ["lower", "title", "upper", "mixed", "numeric", "has_digit", "other", "mixed"]


def test_windows_pad_at_sentence_edges():
    sents = [np.array([5, 6], np.int32), np.array([7], np.int32), np.array([8, 9, 10], np.int32)]
    w = make_windows(sents, 2, 0)
    assert w.dtype == np.int32 and w.shape == (6, 5)
    np.testing.assert_array_equal(w, [[0, 0, 5, 6, 0], [0, 5, 6, 0, 0], [0, 0, 7, 0, 0],
                                      [0, 0, 8, 9, 10], [0, 8, 9, 10, 0], [8, 9, 10, 0, 0]])
    assert make_windows([], 1, 0).shape == (0, 3)


def test_vocab_adds_pretrained_words_after_training_words():
    v = build_word_vocab([["The", "cat"]], extra_words=["dog", "the", "Cat"])
    assert v.itos == ["<pad>", "<unk>", "cat", "the", "dog"]
    np.testing.assert_array_equal(word_ids([["CAT", "zebra"]], v)[0], [2, 1])


IOBES_TAGS = ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-PER", "I-PER", "E-PER", "S-PER"]


def _valid_iobes(seq: list[str]) -> bool:
    return convert_tags(convert_tags(seq, "iobes", "iob2"), "iob2", "iobes") == seq


def test_viterbi_returns_best_valid_sequence_by_brute_force():
    allowed, start, end = allowed_transitions(IOBES_TAGS, "iobes")
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = 4
        logp = np.log(rng.dirichlet(np.ones(len(IOBES_TAGS)), size=n))
        out = np.empty(n, np.int32)
        viterbi(logp, allowed, start, end, out)
        best = max((p for p in itertools.product(range(len(IOBES_TAGS)), repeat=n)
                    if _valid_iobes([IOBES_TAGS[i] for i in p])),
                   key=lambda p: sum(logp[t, i] for t, i in enumerate(p)))
        assert tuple(out) == best


def _tiny_tagger(seed: int = 0) -> Tagger:
    words = Vocab(["<pad>", "<unk>", "john", "lives", "in", "paris"])
    cfg = MLPConfig(n_positions=3, vocab_size=len(words), embed_dim=4, n_out=len(IOBES_TAGS), hidden=(6,),
                    n_features=len(CASINGS), feature_dim=2)
    return Tagger(WindowMLP(cfg, seed=seed), words, TaggerSpec(1, IOBES_TAGS, "iobes", "iob1"))


def test_predictions_are_well_formed_and_round_trip_through_save(tmp_path):
    tagger = _tiny_tagger()
    sents = [["John", "lives", "in", "Paris"], ["Paris"], ["unknown", "words", "here", "too", "."]]
    tags = tagger.predict(sents, scheme="iobes")
    for t in tags:
        assert _valid_iobes(t)
    tagger.save(tmp_path / "m")
    again = Tagger.load(tmp_path / "m")
    assert again.predict(sents) == tagger.predict(sents)
    for a, b in zip(again.model.to_arrays().values(), tagger.model.to_arrays().values(), strict=True):
        assert np.array_equal(a, b)
    iob1 = tagger.predict(sents)
    assert [tags_to_spans(t, "iob1") for t in iob1] == [tags_to_spans(t, "iobes") for t in tags]


def test_load_names_the_mismatched_shape(tmp_path):
    tagger = _tiny_tagger()
    tagger.save(tmp_path / "m")
    arrays = dict(np.load(tmp_path / "m" / "params.npz"))
    arrays["W0"] = arrays["W0"][:, :5]
    np.savez(tmp_path / "m" / "params.npz", **arrays)
    with pytest.raises(ModelFormatError, match=r"W0 is \(18, 5\), expected .*hidden\[0\]"):
        Tagger.load(tmp_path / "m")


def test_params_file_with_pickled_object_is_refused(tmp_path):
    tagger = _tiny_tagger()
    tagger.save(tmp_path / "m")
    arrays = dict(np.load(tmp_path / "m" / "params.npz"))
    arrays["W0"] = np.array([{"evil": 1}], dtype=object)
    np.savez(tmp_path / "m" / "params.npz", **arrays)
    with pytest.raises(ModelFormatError, match="cannot read parameters"):
        Tagger.load(tmp_path / "m")


def test_rare_words_without_vectors_sometimes_become_unk():
    from winner.data.labelled import replace_rare_with_unk

    tagger = _tiny_tagger()
    # john (2) twice, lives (3) once with a vector, paris (5) once without one
    ids = make_windows([np.array([2, 3, 4, 5, 2], np.int32)], 1, 0)
    has_vector = np.array([False, False, True, True, True, False])
    out = replace_rare_with_unk(ids, tagger.words, has_vector, 1.0, np.random.default_rng(0))
    assert not np.any(out == 5) and np.count_nonzero(out == 1) == np.count_nonzero(ids == 5)
    np.testing.assert_array_equal(out[ids != 5], ids[ids != 5])
    assert np.array_equal(replace_rare_with_unk(ids, tagger.words, has_vector, 0.0, np.random.default_rng(0)), ids)
