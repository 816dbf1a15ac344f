"""Character windows: the encoding, the gradient checks, the fused training step against the plain one, tagging's
fast path (precomputed vocabulary rows, unseen words on the fly) against a per-token computation, and a model
trained, saved and used by the installed command in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from winner.core.chars import CHAR_PAD, CHAR_UNKNOWN, CharOptimizer, CharWindowMLP
from winner.core.mlp import MLPConfig, WindowMLP
from winner.data.resources import wikigold_path
from winner.data.vocab import Vocab
from winner.data.windows import featurize, make_windows, normalise
from winner.heads.characters import CharSpec, attach_words, gradcheck_cases
from winner.heads.tagger import Tagger, TaggerSpec

WINNER = str(Path(sys.executable).with_name("winner"))  # the installed command, without PATH

WORDS = ["<pad>", "<unk>", "paris", "a", "london", "ab0", "zz-top", "the", "of", "unused"]
TAGS = ["O", "S-LOC", "B-LOC", "E-LOC"]


def tiny_tagger(dtype: str = "float64", width: int = 3, dropout: float = 0.0) -> Tagger:
    spec = CharSpec("abdilnoprstzh0", 3, 4, width)
    config = MLPConfig(n_positions=3, vocab_size=len(WORDS), embed_dim=2 + spec.filters, n_out=len(TAGS),
                       hidden=(5,), n_features=8, feature_dim=2, dropout_input=dropout, dtype=dtype)
    model = CharWindowMLP(config, spec.config(), seed=3)
    words = Vocab(WORDS)
    attach_words(model, spec, words)
    return Tagger(model, words, TaggerSpec(1, TAGS, "iobes", "iobes", chars=asdict(spec)))


def test_encoding_pads_each_word_and_marks_unknown_characters():
    spec = CharSpec("ab", 2, 3, 5)
    chars, offsets = spec.encode(["ab", "", "a?"])
    assert offsets.tolist() == [0, 6, 10, 16]
    assert chars[:6].tolist() == [CHAR_PAD, CHAR_PAD, 2, 3, CHAR_PAD, CHAR_PAD]
    assert chars[6:10].tolist() == [CHAR_PAD] * 4
    assert chars[10:].tolist() == [CHAR_PAD, CHAR_PAD, 2, CHAR_UNKNOWN, CHAR_PAD, CHAR_PAD]


@pytest.mark.parametrize("case", gradcheck_cases(), ids=lambda r: r.name)
def test_character_gradients_match_finite_differences(case):
    assert case.ok, [(p.name, p.worst, p.analytic, p.numeric) for p in case.params]


def reference_char_vector(model: CharWindowMLP, chars: np.ndarray) -> np.ndarray:
    """The convolution written out: each window of characters concatenated, times W, plus b, max over windows."""
    C, W, b = model.params["char_E"], model.params["char_W"], model.params["char_b"]
    width = model.chars.width
    rows = [C[chars[t : t + width]].reshape(-1) @ W + b for t in range(len(chars) - width + 1)]
    return np.max(rows, axis=0)


def test_tagging_fast_path_equals_per_token_computation():
    """Vocabulary words read their precomputed rows, unseen ones get theirs on the fly: the same log-probabilities
    as building every token's input from scratch (word vector, or <unk>'s, beside its character vector)."""
    tagger = tiny_tagger("float64", width=5)
    model = tagger.model
    sentences = [["Paris", "of", "Londres", "zz-top"], ["A"], ["the", "Zürich", "ab7", "unseen-word", "paris"]]
    fast = tagger.log_proba(sentences)

    tokens = [w for s in sentences for w in s]
    n = len(tokens)
    table = np.zeros((n + 1, model.config.embed_dim))  # row n: padding
    for i, w in enumerate(tokens):
        row = tagger.words.stoi.get(normalise(w), tagger.words.unk_id)
        table[i, : model.word_dim] = model.E[row, : model.word_dim]
        chars, _ = tagger.chars.encode([normalise(w)])
        table[i, model.word_dim :] = reference_char_vector(model, chars)
    table[n] = model.E[tagger.words.pad_id]
    starts = np.cumsum([0] + [len(s) for s in sentences])
    own = [np.arange(k, k + len(s)) for k, s in zip(starts, sentences, strict=False)]
    ids = make_windows(own, 1, n)
    _, feats = featurize(sentences, tagger.words, 1)
    plain = WindowMLP(MLPConfig(**{**asdict(model.config), "vocab_size": n + 1}), E=table, F=model.F)
    plain.theta[...] = model.theta
    straight = plain.predict_log_proba(ids, feats, method="gemm")
    np.testing.assert_allclose(fast, straight, rtol=0, atol=1e-12)


def test_fused_training_step_equals_plain_gradient_step():
    """One SGD minibatch through train_batches_chars moves every parameter as the plain gradient does: the MLP's
    from loss_and_grad, the character CNN's from the gradient of the words' character columns."""
    tagger = tiny_tagger("float64", width=3)
    model = tagger.model
    rng = np.random.default_rng(0)
    ids = rng.integers(0, len(WORDS) - 1, size=(6, 3)).astype(np.int32)
    feats = rng.integers(0, 8, size=(6, 3)).astype(np.int32)
    targets = rng.integers(0, len(TAGS), size=6).astype(np.int64)
    lr = 0.1
    loss, grads = model.loss_and_grad(ids, feats, targets)
    grads.update(model.char_grads(grads["E"][:, model.word_dim :]))
    expected = {k: v - lr * grads[k] for k, v in model.params.items()}

    opt = CharOptimizer("sgd", lr=lr)
    total = opt.train_batches(model, ids, feats, targets, np.arange(6, dtype=np.int64), 0, 6, 6, 0)
    assert total == pytest.approx(6 * loss, rel=1e-12)
    for name, value in model.params.items():
        got = value[:, : model.word_dim] if name == "E" else value  # E's character columns are refilled
        want = expected[name][:, : model.word_dim] if name == "E" else expected[name]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)


def test_training_is_deterministic_and_changes_the_character_parameters():
    runs = []
    for _ in range(2):
        tagger = tiny_tagger("float32", dropout=0.3)
        before = tagger.model.char_theta.copy()
        ids, feats = featurize([["paris", "of", "london"], ["the", "a"]], tagger.words, 1)
        opt = CharOptimizer("adam", lr=1e-2)
        targets = np.array([1, 0, 1, 0, 0])
        for _ in range(3):
            opt.train_batches(tagger.model, ids, feats, targets, np.arange(5, dtype=np.int64), 0, 5, 2, 7)
        assert not np.array_equal(before, tagger.model.char_theta)
        runs.append(tagger.model.to_arrays())
    for name in runs[0]:
        assert np.array_equal(runs[0][name], runs[1][name]), name


def test_save_and_load_keep_the_character_model(tmp_path):
    tagger = tiny_tagger("float32")
    sentences = [["Paris", "and", "Londres"], ["the", "zz-top"]]
    tagger.save(tmp_path / "m")
    loaded = Tagger.load(tmp_path / "m")
    assert loaded.chars == tagger.chars
    assert np.array_equal(loaded.model.char_theta, tagger.model.char_theta)
    assert np.array_equal(loaded.log_proba(sentences), tagger.log_proba(sentences))
    with np.load(tmp_path / "m" / "params.npz", allow_pickle=False) as f:
        assert {"char_E", "char_W", "char_b"} <= set(f.files)


@pytest.fixture(scope="module")
def char_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("charrun")
    cmd = [WINNER, "ner", "train", "--train", str(wikigold_path("dev")), "--dev", str(wikigold_path("test")),
           "--embeddings", "none", "--hidden", "16", "--epochs", "1", "--char-filters", "8", "--char-dim", "5",
           "--quiet", "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr
    return out


def test_installed_command_trains_and_tags_with_characters_in_fresh_processes(char_run):
    config = json.loads((char_run / "model" / "config.json").read_text())
    assert config["tagger"]["chars"]["filters"] == 8
    outputs = []
    for _ in range(2):
        result = subprocess.run([WINNER, "ner", "tag", str(char_run), "-"], input="Zorblax visited Paris .\n",
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert [line.split()[0] for line in outputs[0].split("\n") if line] == ["Zorblax", "visited", "Paris", "."]


def test_parallel_character_kernel_loads_from_an_empty_cache_and_then_from_it(char_run, tmp_path):
    """fill_all_rows is parallel and cached: with a private numba cache, the first process compiles it and the
    next two load it in fresh processes; each computes the same vocabulary table."""
    script = ("import sys; from winner.heads.tagger import Tagger; t = Tagger.load(sys.argv[1]); "
              "t.model.fill_vocabulary(); print(repr(float(t.model.E.astype('float64').sum())))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    runs = [subprocess.run([sys.executable, "-c", script, str(char_run / "model")], capture_output=True, text=True,
                           timeout=900, env=env) for _ in range(3)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert len({r.stdout for r in runs}) == 1 and runs[0].stdout.strip()
    assert any((tmp_path / "numba-cache").rglob("chars.fill_all_rows*.nbi"))


@pytest.mark.parametrize("options", [("--context-code", "none"), ("--context-code", "none", "--average", "0.3"),
                                     ("--context-code", "none", "--average", "0.3", "--loss", "sentence"),
                                     ("--average", "0.3", "--alone", "0.5")],
                         ids=["plain", "averaged", "averaged-sentence", "averaged-document-codes"])
def test_resume_with_characters_gives_the_same_bits(options, tmp_path):
    """A run stopped after epoch 1 and resumed ends where an unbroken run does, character parameters and their
    Adam moments included (the checkpoint holds them as the model's arrays and the optimiser's state), and with
    --average the average of every parameter (and, for steps outside the fused loop, its window counter)."""
    args = [WINNER, "ner", "train", "--train", str(wikigold_path("dev")), "--dev", str(wikigold_path("test")),
            "--embeddings", "none", "--hidden", "16", "--char-filters", "8", "--char-dim", "5", "--quiet",
            "--keep-checkpoint", *options]
    runs = {"whole": [["--epochs", "2"]], "resumed": [["--epochs", "1"], ["--epochs", "2", "--resume"]]}
    for name, steps in runs.items():
        for extra in steps:
            result = subprocess.run([*args, *extra, "--out", str(tmp_path / name)], capture_output=True, text=True,
                                    timeout=1800)
            assert result.returncode == 0, result.stderr
    for file in ("checkpoint/params.npz", "checkpoint/optimizer.npz", "model/params.npz"):
        with np.load(tmp_path / "whole" / file, allow_pickle=False) as a, \
                np.load(tmp_path / "resumed" / file, allow_pickle=False) as b:
            assert set(a.files) == set(b.files)
            expected = {"params": {"char_E", "char_W", "char_b"},
                        "optimizer": {"avg_theta", "avg_E", "avg_F", "avg_char_theta"} if options else {"char_m"}}
            assert expected[Path(file).stem] <= set(a.files)
            for name in a.files:
                assert np.array_equal(a[name], b[name]), (file, name)
