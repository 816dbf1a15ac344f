"""Context codes beyond the window (FOFE, winner.core.context): the codes against their definition, the gradients
against finite differences, tagging's recurrence over projected rows against the codes concatenated and multiplied
(and a numpy forward pass), and the installed `winner ner train --context-code sentence` in fresh processes (same
seed, same bits; resume; save and load)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from winner.core import context
from winner.core.chars import CharConfig
from winner.core.context import (
    ContextCodes,
    coded_log_proba,
    occurrence_links,
    sentence_bounds,
    within_sentences,
)
from winner.heads.context_training import gradcheck_cases, tiny_context_model, tiny_links, tiny_sentences

WINNER = str(Path(sys.executable).with_name("winner"))
SAMPLE = str(Path(__file__).parent / "fixtures" / "wikigold_sample.txt")


def _definition(E: np.ndarray, words, lengths, half: int, forget: float, width: int) -> tuple[np.ndarray, np.ndarray]:
    """L_t and R_t of every token written out: sum over the sentence's words beyond the window of forget^(k-1) e."""
    N, lo = len(words), 0
    left, right = np.zeros((N, E.shape[1])), np.zeros((N, E.shape[1]))
    for n in lengths:
        for t in range(lo, lo + n):
            for k, j in enumerate(range(t - half - 1, lo - 1, -1)):
                left[t, :width] += forget**k * E[words[j], :width]
            for k, j in enumerate(range(t + half + 1, lo + n)):
                right[t, :width] += forget**k * E[words[j], :width]
        lo += n
    return left, right


def _nearest(words, doc_tokens, most: int) -> list[list[int]]:
    """Each token's links written out: the other tokens of its document with its word, nearest first (the left one
    first at equal distance), at most `most`."""
    out, lo = [], 0
    for n in doc_tokens:
        for t in range(lo, lo + n):
            same = [j for j in range(lo, lo + n) if j != t and words[j] == words[t]]
            out.append(sorted(same, key=lambda j: (abs(j - t), j))[:most])
        lo += n
    return out


def _document_definition(E, words, lengths, doc_tokens, half: int, forget: float, width: int, most: int):
    """Document codes written out: the mean over a token's links j of sum_(d<=half) forget^(d-1) e(x_(j-/+d)),
    within j's sentence."""
    lo, hi = sentence_bounds(lengths)
    left, right = np.zeros((len(words), E.shape[1])), np.zeros((len(words), E.shape[1]))
    for t, links in enumerate(_nearest(words, doc_tokens, most)):
        for j in links:
            for d in range(1, half + 1):
                if j - d >= lo[j]:
                    left[t, :width] += forget ** (d - 1) * E[words[j - d], :width] / len(links)
                if j + d < hi[j]:
                    right[t, :width] += forget ** (d - 1) * E[words[j + d], :width] / len(links)
    return left, right


def test_document_links_are_the_nearest_other_occurrences():
    rng = np.random.default_rng(7)
    keys = rng.integers(-1, 4, size=40)
    doc_tokens = np.array([13, 1, 0, 26])
    for most in (1, 2, 5, 40):
        links = occurrence_links(keys, doc_tokens, most)
        got = [links.links[a:b].tolist() for a, b in zip(links.start[:-1], links.start[1:], strict=True)]
        expected = [[] if k < 0 else near for k, near in zip(keys, _nearest(keys, doc_tokens, most), strict=True)]
        assert got == expected


def test_a_sentence_read_alone_keeps_only_its_own_links():
    keys = np.random.default_rng(8).integers(0, 3, size=30)
    lengths = np.array([4, 7, 1, 9, 9])
    links = occurrence_links(keys, np.array([11, 19]), 4)
    lo, hi = sentence_bounds(lengths)
    alone = np.repeat(np.array([True, False, True, True, False]), lengths)
    kept = within_sentences(links, alone, lo, hi)
    for t in range(30):
        mine = links.links[links.start[t] : links.start[t + 1]].tolist()
        expected = [j for j in mine if lo[t] <= j < hi[t]] if alone[t] else mine
        assert kept.links[kept.start[t] : kept.start[t + 1]].tolist() == expected


def test_document_codes_equal_their_definition():
    model = tiny_context_model(0)
    words, lengths, ids, feats = tiny_sentences(np.random.default_rng(3))
    codes = ContextCodes(1, 0.6, 3, 0, "document", 2)
    lo, hi = sentence_bounds(lengths)
    idx = np.array([9, 0, 17, 6, 10, 12, 3], np.int64)
    batch = codes.batch(model.E, model.E[:0], ids[idx], feats[idx], idx, words, lo, hi, tiny_links(words, lengths))
    left, right = _document_definition(model.E, words, lengths, [lengths[:2].sum(), lengths[2:].sum()], 1, 0.6, 3, 2)
    assert np.abs(left[idx]).sum() > 0 and np.abs(right[idx]).sum() > 0
    U, B = len(batch.rows), len(idx)
    np.testing.assert_allclose(batch.table[U : U + B], left[idx], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(batch.table[U + B :], right[idx], rtol=1e-14, atol=1e-15)


def test_codes_equal_their_definition():
    model = tiny_context_model(0)
    words, lengths, ids, feats = tiny_sentences(np.random.default_rng(3))
    codes = ContextCodes(1, 0.6, 3, 0)
    lo, hi = sentence_bounds(lengths)
    idx = np.array([9, 0, 17, 6, 10, 12], np.int64)  # any windows, in any order
    batch = codes.batch(model.E, model.E[:0], ids[idx], feats[idx], idx, words, lo, hi)
    left, right = _definition(model.E, words, lengths, 1, 0.6, 3)
    U, B = len(batch.rows), len(idx)
    np.testing.assert_allclose(batch.table[U : U + B], left[idx], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(batch.table[U + B :], right[idx], rtol=1e-14, atol=1e-15)
    assert np.array_equal(batch.rows[batch.ids[:, :3]], ids[idx])  # the window positions read their words' rows
    assert (batch.ids[:, 3] == U + np.arange(B)).all() and (batch.ids[:, 4] == U + B + np.arange(B)).all()


@pytest.mark.parametrize("case", gradcheck_cases(), ids=lambda r: r.name)
def test_context_gradients_match_finite_differences(case):
    assert case.ok, [(p.name, p.worst, p.analytic, p.numeric) for p in case.params]


def _numpy_log_proba(model, ids, feats, left, right, feature: int) -> np.ndarray:
    """The straightforward forward pass in numpy: concatenate every block, multiply, tanh, softmax."""
    p = model.params
    blocks = []
    for k in range(ids.shape[1]):
        blocks += [model.E[ids[:, k]], model.F[feats[:, k]]]
    code_f = np.repeat(model.F[feature][None], len(ids), axis=0)
    X = np.concatenate([*blocks, left, code_f, right, code_f], axis=1)
    Z = np.tanh(X @ p["W0"] + p["b0"]) @ p["W1"] + p["b1"]
    return Z - np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1, keepdims=True)) - Z.max(1, keepdims=True)


@pytest.mark.parametrize("chars", [False, True], ids=["words", "with character columns"])
def test_document_codes_over_projected_rows_equal_codes_concatenated_and_multiplied(chars):
    """Tagging's document codes (neighbour sums over projected rows, averaged per token) equal the codes built and
    run through the ordinary kernels and numpy's forward pass, in parts cut at document ends or in one."""
    model = tiny_context_model(4, chars=CharConfig(8, 3, 2, 3) if chars else None)
    d = model.config.embed_dim
    lengths = np.array([7, 1, 2, 9, 4, 6])
    words, lengths, ids, feats = tiny_sentences(np.random.default_rng(5), tuple(lengths))
    ids[ids == words[3]] = 12  # an unseen word, read from extra
    words = np.where(words == words[3], 12, words).astype(np.int32)
    extra = np.random.default_rng(6).normal(size=(1, d))
    documents = np.array([2, 1, 3])  # sentences per document
    doc_tokens = np.add.reduceat(lengths, [0, 2, 3])
    links = occurrence_links(words.astype(np.int64), doc_tokens, 3)
    codes = ContextCodes(1, 0.7, 3, 0, "document", 3)
    fast = coded_log_proba(model, codes, ids, feats, lengths, extra, "lookup", 8, links, documents)
    plain = coded_log_proba(model, codes, ids, feats, lengths, extra, "gemm", 8, links, documents)
    whole = coded_log_proba(model, codes, ids, feats, lengths, extra, "gemm", 1000, links, documents)
    np.testing.assert_allclose(fast, plain, rtol=1e-12, atol=1e-12)
    assert np.array_equal(plain, whole)
    table = np.concatenate([model.E, extra])
    left, right = _document_definition(table, words, lengths, doc_tokens, 1, 0.7, 3, 3)
    reference = _numpy_log_proba(type("M", (), {"E": table, "F": model.F, "params": model.params}), ids, feats,
                                 left, right, 0)
    np.testing.assert_allclose(plain, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("chars", [False, True], ids=["words", "with character columns"])
def test_tagging_recurrence_equals_codes_concatenated_and_multiplied(chars):
    """The fast path (projected rows, the recurrence, the lookup kernel) equals the codes built and run through the
    ordinary kernels, and both equal numpy's forward pass; an id >= V (a word the vocabulary lacks) reads extra."""
    model = tiny_context_model(4, chars=CharConfig(8, 3, 2, 3) if chars else None)
    d = model.config.embed_dim
    words, lengths, ids, feats = tiny_sentences(np.random.default_rng(5), (7, 1, 2, 9, 4))
    ids[ids == words[3]] = 12  # an unseen word, read from extra
    words = np.where(words == words[3], 12, words).astype(np.int32)
    extra = np.random.default_rng(6).normal(size=(1, d))
    codes = ContextCodes(1, 0.7, 3, 0)
    fast = coded_log_proba(model, codes, ids, feats, lengths, extra, "lookup", batch=8)
    plain = coded_log_proba(model, codes, ids, feats, lengths, extra, "gemm", batch=8)
    np.testing.assert_allclose(fast, plain, rtol=1e-12, atol=1e-12)
    table = np.concatenate([model.E, extra])
    left, right = _definition(table, words, lengths, 1, 0.7, 3)
    reference = _numpy_log_proba(type("M", (), {"E": table, "F": model.F, "params": model.params}), ids, feats,
                                 left, right, 0)
    np.testing.assert_allclose(plain, reference, rtol=1e-10, atol=1e-10)


def _train(out: Path, epochs: int, *extra: str) -> None:
    args = [WINNER, "ner", "train", "--train", SAMPLE, "--dev", SAMPLE, "--embeddings", "none", "--hidden", "16",
            "--batch-size", "16", "--context-code", "sentence", "--forget", "0.6", "--epochs", str(epochs),
            "--patience", "9", "--seed", "3", "--quiet", "--out", str(out), *extra]
    r = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr


def _params(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "model" / "params.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_context_training_same_seed_same_bits_and_tags_after_loading(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        _train(run, 2, "--char-filters", "6")
    a, b = _params(runs[0]), _params(runs[1])
    assert "char_W" in a and all(np.array_equal(a[k], b[k]) for k in a)
    config = json.loads((runs[0] / "model" / "config.json").read_text())
    assert config["tagger"]["context"] == {"mode": "sentence", "forget": 0.6}
    assert config["mlp"]["n_positions"] == 7  # window 5, then the left and the right code
    r = subprocess.run([WINNER, "ner", "evaluate", str(runs[0]), "--data", SAMPLE, "--json"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert 0.0 <= json.loads(r.stdout)["f1"] <= 1.0
    from winner.data.conll import read_conll
    from winner.heads.tagger import Tagger

    tagger = Tagger.load(runs[0] / "model")
    sents = [s.tokens for s in read_conll(SAMPLE)] + [["Zyxwv", "visited", "Qwerty", "Land", "."]]
    assert tagger.predict(sents, method="lookup") == tagger.predict(sents, method="gemm")


def test_context_training_resume_equals_an_uninterrupted_run(tmp_path):
    """3 epochs in one go, and 2 then a --resume to 3 (each its own process): the same bits."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for out, epochs, extra in ((straight, 3, ()), (resumed, 2, ("--keep-checkpoint",)), (resumed, 3, ("--resume",))):
        _train(out, epochs, *extra)
    a, b = _params(straight), _params(resumed)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_context_codes_need_the_word_level_loss():
    r = subprocess.run([WINNER, "ner", "train", "--context-code", "sentence", "--loss", "sentence", "--out", "x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "context_code" in r.stderr.replace("-", "_") and len(r.stderr.splitlines()) == 1


def test_a_tagger_saved_before_context_codes_loads_and_tags_as_before(tmp_path):
    """A config.json without the "context" key (every model before it) is a window-only tagger, tagging the same
    through the lookup and the matrix-product paths; a malformed context is refused in one line."""
    from winner.core.mlp import MLPConfig, WindowMLP
    from winner.data.vocab import Vocab
    from winner.data.windows import CASINGS
    from winner.errors import ModelFormatError
    from winner.heads.tagger import Tagger, TaggerSpec

    words = Vocab(["<pad>", "<unk>", "john", "lives", "in", "paris"])
    cfg = MLPConfig(n_positions=3, vocab_size=len(words), embed_dim=4, n_out=3, hidden=(6,), n_features=len(CASINGS),
                    feature_dim=2)
    tagger = Tagger(WindowMLP(cfg, seed=2), words, TaggerSpec(1, ["O", "S-LOC", "S-PER"], "iobes", "iob2"))
    sents = [["John", "lives", "in", "Paris"], ["paris"]] * 50
    before = tagger.log_proba(sents, method="lookup")
    tagger.save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    del config["tagger"]["context"]
    config_path.write_text(json.dumps(config))
    loaded = Tagger.load(tmp_path / "m")
    assert loaded.context is None
    assert np.array_equal(loaded.log_proba(sents, method="lookup"), before)
    assert loaded.predict(sents, method="gemm") == tagger.predict(sents, method="lookup")
    config["tagger"]["context"] = {"mode": "paragraph", "forget": 0.5}
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match="context"):
        Tagger.load(tmp_path / "m")


def test_document_codes_train_evaluate_and_tag_in_fresh_processes(tmp_path):
    """`--context-code document` end to end with the installed command: the model records its codes, `ner evaluate`
    reads the file's documents (as the Python API does with documents=), and `ner tag` gives the same tags twice,
    each record its own document."""
    run = tmp_path / "run"
    _train(run, 2, "--context-code", "document", "--occurrences", "3", "--alone", "0.5")
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["tagger"]["context"] == {"mode": "document", "forget": 0.6, "occurrences": 3}
    r = subprocess.run([WINNER, "ner", "evaluate", str(run), "--data", SAMPLE, "--json"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    from winner.data.conll import convert_tags, detect_scheme, read_conll
    from winner.heads.metrics import entity_scores
    from winner.heads.tagger import Tagger

    sentences = read_conll(SAMPLE)
    tagger = Tagger.load(run / "model")
    gold = [convert_tags(s.tags, detect_scheme([s.tags for s in sentences]), "iob2") for s in sentences]
    pred = tagger.predict([s.tokens for s in sentences], scheme="iob2", documents=[s.doc for s in sentences])
    assert json.loads(r.stdout)["f1"] == entity_scores(gold, pred)["f1"]
    text = tmp_path / "in.txt"
    text.write_text("Blue Harbour is in Blue Harbour .\nThe Blue Harbour team beat Paris .\n")
    outs = [subprocess.run([WINNER, "ner", "tag", str(run), str(text)], capture_output=True, text=True, timeout=600)
            for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), outs[0].stderr
    assert outs[0].stdout == outs[1].stdout and outs[0].stdout.count("\n") >= 2


@pytest.mark.parametrize("mode", ["sentence", "document"])
def test_the_whole_vocabulary_table_gives_the_bits_of_the_per_part_tables(mode, monkeypatch):
    """A model that keeps its whole vocabulary's first-layer table (and the codes' projections of every word) tags
    with the same bits as one that builds a table of the call's distinct words, and as one that builds tables of
    each part's distinct words (the call's too big): every row is a stable product."""
    model = tiny_context_model(4, chars=CharConfig(8, 3, 2, 3), dtype="float32")
    lengths = np.array([7, 1, 2, 9, 4, 6])
    words, lengths, ids, feats = tiny_sentences(np.random.default_rng(5), tuple(lengths))
    documents = np.array([2, 1, 3])
    links = occurrence_links(words.astype(np.int64), np.add.reduceat(lengths, [0, 2, 3]), 3)
    codes = ContextCodes(1, 0.7, 3, 0, mode, 3)
    extra = np.zeros((0, model.config.embed_dim), np.float32)
    whole = coded_log_proba(model, codes, ids, feats, lengths, extra, "lookup", 8, links, documents)
    assert model.vocabulary_table(ids.size) is not None
    monkeypatch.setattr(model, "vocabulary_table", lambda n_lookups: None)
    distinct = coded_log_proba(model, codes, ids, feats, lengths, extra, "lookup", 8, links, documents)
    monkeypatch.setattr(context, "LOOKUP_TABLE_BYTES", 0)
    assert context.call_tables(model, codes, ids, extra) is None
    parts = coded_log_proba(model, codes, ids, feats, lengths, extra, "lookup", 8, links, documents)
    assert np.array_equal(whole, distinct) and np.array_equal(whole, parts)
