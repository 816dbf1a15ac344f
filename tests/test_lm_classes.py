"""The LM with a class-factored output (--output classes): exact normalisation through the perplexity path,
save/load with its classes, generation (class then word, never <unk>), the CLI in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from winner.data.vocab import UNK, Vocab
from winner.heads.lm import LanguageModel, token_nll
from winner.heads.lm_output import ClassOutput

WORDS = [UNK, "the", "cat", "sat", "on", "mat", ".", "a", "dog", "<text>", "ran", "far"]
STREAM = np.array([9, 1, 2, 3, 4, 1, 5, 6, 7, 8, 3, 6, 0, 0, 0, 1, 2, 10, 6], dtype=np.int32)


def class_lm(dtype="float32", hidden=(6,), direct=True, n_classes=4, seed=0) -> LanguageModel:
    lm = LanguageModel.create(Vocab(WORDS), 3, 4, hidden, direct, seed=seed, train_ids=STREAM, dtype=dtype,
                              n_classes=n_classes)
    rng = np.random.default_rng(seed)  # far from the unigram start, so the test means something
    lm.model.theta[...] += rng.normal(0, 1.0, lm.model.theta.shape).astype(lm.model.dtype)
    return lm


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden,direct", [((6,), True), ((), False), ((5, 3), False)])
def test_every_history_gives_a_distribution_over_the_vocabulary(dtype, hidden, direct):
    lm = class_lm(dtype, hidden, direct)
    V = len(lm.vocab)
    histories = np.random.default_rng(1).integers(0, V + 1, (20, 3)).astype(np.int32)  # pad id V included
    X = np.repeat(histories, V, axis=0)
    y = np.tile(np.arange(V), len(histories))
    p = np.exp(-token_nll(lm.model, X, y, chunk=7, output=lm.output)).reshape(len(histories), V)
    assert np.abs(p.sum(axis=1) - 1.0).max() < 1e-6


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("hidden,direct", [((6,), True), ((), False), ((5, 3), True)])
def test_fast_nll_equals_the_full_scores(dtype, tol, hidden, direct):
    lm = class_lm(dtype, hidden, direct)
    X, y = lm.windows(np.concatenate([STREAM, STREAM[::-1]]))
    reference = lm.output.nll(lm.model.predict_logits(X), y)
    np.testing.assert_allclose(token_nll(lm.model, X, y, chunk=5, output=lm.output), reference, rtol=tol)


def test_unigram_start_and_classes_by_frequency():
    lm = LanguageModel.create(Vocab(WORDS), 2, 3, (4,), False, train_ids=STREAM, n_classes=3, dtype="float64")
    assert isinstance(lm.output, ClassOutput) and lm.model.config.n_out == lm.output.n_classes + len(WORDS)
    lm.model.params["W1"][...] = 0.0  # the biases alone: exactly the add-1/2 unigram model
    counts = np.bincount(STREAM, minlength=len(WORDS)) + 0.5
    nll = token_nll(lm.model, np.zeros((len(WORDS), 2), np.int32), np.arange(len(WORDS)), output=lm.output)
    np.testing.assert_allclose(np.exp(-nll), counts / counts.sum(), rtol=1e-12)


def test_save_load_keeps_the_classes(tmp_path):
    lm = class_lm()
    lm.save(tmp_path / "m")
    again = LanguageModel.load(tmp_path / "m")
    np.testing.assert_array_equal(again.output.layout.word_class, lm.output.layout.word_class)
    assert again.perplexity(STREAM) == lm.perplexity(STREAM)


@pytest.mark.parametrize("n_classes", [4, 12])  # 12: <unk> is a class of its own
def test_generation_is_seeded_and_never_unk(n_classes):
    lm = class_lm(n_classes=n_classes)
    for t, k in ((1.0, 0), (0.7, 3), (0.0, 0), (2.0, 1)):
        a = lm.generate(["the", "cat"], 40, temperature=t, top_k=k, seed=5)
        assert a == lm.generate(["the", "cat"], 40, temperature=t, top_k=k, seed=5)
        assert UNK not in a


def run(*args):
    return subprocess.run([sys.executable, "-m", "winner.cli", *args], capture_output=True, text=True, timeout=900)


def test_cli_trains_scores_and_generates_twice_in_fresh_processes(tmp_path):
    rng = np.random.default_rng(0)
    words = "the cat sat on the mat . a dog ran in the park . it 's a long long time ago".split()
    for name, lines in (("train.txt", 120), ("valid.txt", 12), ("test.txt", 12)):
        (tmp_path / name).write_text("\n".join(" ".join(rng.choice(words, 12)) for _ in range(lines)))
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        r = run("lm", "train", "--corpus", str(tmp_path), "--out", str(out), "--epochs", "2", "--hidden", "8",
                "--embed-dim", "4", "--batch-size", "16", "--min-count", "1", "--output", "classes", "--classes", "4",
                "--seed", "3", "--quiet")
        assert r.returncode == 0, r.stderr
        config = json.loads((out / "model" / "config.json").read_text())
        assert config["lm"]["output"] == "classes"
        p = run("lm", "perplexity", str(out), "--split", "test", "--json")
        g = run("lm", "generate", str(out), "--prompt", "A long long time ago in a", "-n", "30", "--seed", "1")
        assert p.returncode == 0 and g.returncode == 0, p.stderr + g.stderr
        summary = json.loads((out / "summary.json").read_text())
        outs.append((summary["best_valid_perplexity"], json.loads(p.stdout), g.stdout))
    assert outs[0] == outs[1]
    assert 1.0 < outs[0][1]["perplexity"] < 30
