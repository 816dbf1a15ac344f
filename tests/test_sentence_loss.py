"""Sentence-level training (Collobert et al. 2011, §3.3.2): the forward algorithm's log-partition and Viterbi
against brute force over every tag path, the gradients against finite differences, the batching by sentence,
and the installed `winner ner train --loss sentence` in fresh processes (same seed, same bits; resume)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from winner.heads.crf import Transitions, forward_backward, sentence_loss
from winner.heads.decode import viterbi, viterbi_scored
from winner.heads.sentence_training import epoch_batches, gradcheck_cases

WINNER = str(Path(sys.executable).with_name("winner"))
SAMPLE = str(Path(__file__).parent / "fixtures" / "wikigold_sample.txt")


def path_score(Z, A, start, path) -> float:
    return start[path[0]] + sum(Z[t, y] for t, y in enumerate(path)) + sum(A[a, b] for a, b in itertools.pairwise(path))


@pytest.mark.parametrize("n", [1, 2, 5])
def test_log_partition_equals_brute_force_over_all_paths(n):
    rng = np.random.default_rng(n)
    T = 3
    Z, A, start = rng.normal(size=(n, T)), rng.normal(size=(T, T)), rng.normal(size=T)
    scores = [path_score(Z, A, start, p) for p in itertools.product(range(T), repeat=n)]
    log_z = forward_backward(Z, A, start, np.empty((n, T)), np.empty((n, T)))
    assert log_z == pytest.approx(np.logaddexp.reduce(scores), rel=1e-12)
    y = rng.integers(0, T, size=n)
    crf = Transitions(np.concatenate([A.ravel(), start]))
    loss, dZ = sentence_loss(Z, np.array([0, n]), y, crf, 1.0, np.zeros_like(crf.theta))
    assert loss == pytest.approx(np.logaddexp.reduce(scores) - path_score(Z, A, start, y), rel=1e-12)
    assert np.allclose(dZ.sum(axis=1), 0.0)  # marginals minus a one-hot: each row sums to zero


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_equals_brute_force_argmax_over_allowed_paths(seed):
    rng = np.random.default_rng(seed)
    n, T = 4, 4
    Z, A, start = rng.normal(size=(n, T)), rng.normal(size=(T, T)), rng.normal(size=T)
    allowed = rng.random((T, T)) < 0.7
    start_ok, end_ok = rng.random(T) < 0.8, rng.random(T) < 0.8
    start_ok[0] = end_ok[0] = allowed[0, 0] = True  # at least one valid path
    valid = [p for p in itertools.product(range(T), repeat=n)
             if start_ok[p[0]] and end_ok[p[-1]] and all(allowed[a, b] for a, b in itertools.pairwise(p))]
    best = max(valid, key=lambda p: path_score(Z, A, start, p))
    out = np.empty(n, np.int32)
    viterbi_scored(Z, A, start, allowed, start_ok, end_ok, out)
    assert tuple(out) == best
    plain = np.empty(n, np.int32)  # without learned scores: the word-level decoder
    viterbi(Z, allowed, start_ok, end_ok, plain)
    assert tuple(plain) == max(valid, key=lambda p: path_score(Z, 0 * A, 0 * start, p))


@pytest.mark.parametrize("case", gradcheck_cases(), ids=lambda r: r.name)
def test_sentence_gradients_match_finite_differences(case):
    assert case.ok, [(p.name, p.worst, p.analytic, p.numeric) for p in case.params]


def test_updates_hold_whole_sentences_and_every_window_once():
    lengths = np.array([3, 1, 0, 7, 2, 5, 4], np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    windows, updates = epoch_batches(lengths, 6, seed=1, epoch=2)
    assert sorted(windows.tolist()) == list(range(lengths.sum()))
    assert [u[0] for u in updates[1:]] == [u[-1] for u in updates[:-1]] and updates[-1][-1] == len(windows)
    for u in updates:
        assert u[-1] - u[0] >= 6 or u is updates[-1]
        for a, b in itertools.pairwise(u):  # each piece is one sentence, in order
            if b > a:
                s = int(np.searchsorted(offsets, windows[a], side="right")) - 1
                assert windows[a:b].tolist() == list(range(offsets[s], offsets[s + 1]))
    again, _ = epoch_batches(lengths, 6, seed=1, epoch=2)
    assert np.array_equal(windows, again)


def _train(out: Path, epochs: int, *extra: str) -> subprocess.CompletedProcess:
    args = [WINNER, "ner", "train", "--train", SAMPLE, "--dev", SAMPLE, "--embeddings", "none", "--hidden", "16",
            "--batch-size", "16", "--loss", "sentence", "--context-code", "none", "--epochs", str(epochs), "--patience",
            "9", "--seed", "3", "--quiet", "--out", str(out), *extra]
    r = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    return r


def _params(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "model" / "params.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    spec = json.loads((run / "model" / "config.json").read_text())["tagger"]
    return {**arrays, "transitions": np.array(spec["transitions"]), "start": np.array(spec["start"])}


def test_sentence_level_training_same_seed_same_bits_with_characters(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        _train(run, 2, "--char-filters", "6")
    a, b = _params(runs[0]), _params(runs[1])
    assert a.keys() == b.keys() and "char_W" in a
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.abs(a["transitions"]).max() > 0  # the transitions were trained
    r = subprocess.run([WINNER, "ner", "evaluate", str(runs[0]), "--data", SAMPLE, "--json"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert 0.0 <= json.loads(r.stdout)["f1"] <= 1.0


def test_sentence_level_resume_equals_an_uninterrupted_run(tmp_path):
    _train(tmp_path / "straight", 3)
    _train(tmp_path / "resumed", 2, "--keep-checkpoint")
    _train(tmp_path / "resumed", 3, "--resume")
    a, b = _params(tmp_path / "straight"), _params(tmp_path / "resumed")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def _sentence_tagger(tmp_path: Path):
    from winner.core.mlp import MLPConfig, WindowMLP
    from winner.data.vocab import Vocab
    from winner.data.windows import CASINGS
    from winner.heads.tagger import Tagger, TaggerSpec

    tags = ["O", "B-LOC", "E-LOC", "I-LOC", "S-LOC", "B-PER", "E-PER", "I-PER", "S-PER"]
    words = Vocab(["<pad>", "<unk>", "john", "lives", "in", "paris", "new", "york"])
    cfg = MLPConfig(n_positions=3, vocab_size=len(words), embed_dim=4, n_out=len(tags), hidden=(6,),
                    n_features=len(CASINGS), feature_dim=2)
    rng = np.random.default_rng(5)
    spec = TaggerSpec(1, tags, "iobes", "iob2", transitions=rng.normal(0, 2, (9, 9)).tolist(),
                      start=rng.normal(0, 2, 9).tolist())
    return Tagger(WindowMLP(cfg, seed=2), words, spec)


def test_sentence_level_decoding_lookup_path_equals_raw_scores_and_survives_save(tmp_path):
    """Viterbi over the lookup path's log-softmax equals Viterbi over the raw window scores (the per-token
    normaliser shifts every path alike), and a saved and loaded model tags the same."""
    from winner.heads.tagger import Tagger

    tagger = _sentence_tagger(tmp_path)
    sents = [["John", "lives", "in", "New", "York"], ["Paris"], ["john", "in", "paris", "unknown"] * 30] * 40
    lookup = tagger.predict(sents, scheme="iobes", method="lookup")
    gemm = tagger.predict(sents, scheme="iobes", method="gemm")
    assert lookup == gemm
    allowed, start_ok, end_ok = tagger._constraints
    pos = 0
    ids, feats = tagger.featurize(sents)
    Z = tagger.model.predict_logits(ids, feats).astype(np.float64)
    for s, tags in zip(sents, lookup, strict=True):
        out = np.empty(len(s), np.int32)
        viterbi_scored(Z[pos : pos + len(s)], tagger.crf.A, tagger.crf.start, allowed, start_ok, end_ok, out)
        assert [tagger.spec.tags[i] for i in out] == tags
        pos += len(s)
    tagger.save(tmp_path / "m")
    assert Tagger.load(tmp_path / "m").predict(sents, scheme="iobes") == lookup


def test_a_model_saved_before_sentence_level_training_still_loads(tmp_path):
    """A tagger config.json without the transitions and start keys (every model before them) is word-level."""
    from winner.heads.tagger import Tagger

    tagger = _sentence_tagger(tmp_path)
    tagger.spec.transitions = tagger.spec.start = None
    tagger.crf = None
    tagger.save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    del config["tagger"]["transitions"], config["tagger"]["start"]
    config_path.write_text(json.dumps(config))
    sents = [["John", "lives", "in", "New", "York"]]
    loaded = Tagger.load(tmp_path / "m")
    assert loaded.crf is None and loaded.predict(sents) == tagger.predict(sents)
