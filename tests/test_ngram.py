"""Interpolated modified Kneser-Ney (heads/ngram.py): exact normalisation, the vectorised model against a plain
dictionary implementation of Chen & Goodman's formulas, the Brown perplexities, save/load and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from winner.data.vocab import UNK, Vocab
from winner.heads.lm import load_corpus
from winner.heads.mixture import em_weights
from winner.heads.ngram import NGramModel, modified_discounts

V = 12


def tiny_stream(n=400, seed=0):
    rng = np.random.default_rng(seed)
    # a skewed, repetitive stream, so every order has counts 1, 2, 3 and more; words 10, 11 never occur
    return (rng.zipf(1.6, n) % 10).astype(np.int64)


def tiny_vocab():
    return Vocab([UNK, *(f"w{i}" for i in range(1, V))])


def naive_kn_prob(stream, order, history, w):
    """p(w | history) straight from the formulas, with dictionaries of n-gram tuples."""
    grams = {k: Counter(tuple(stream[i - k + 1 : i + 1]) for i in range(k - 1, len(stream)))
             for k in range(1, order + 1)}
    counts = {order: grams[order]}
    for k in range(1, order):
        counts[k] = Counter(g[1:] for g in grams[k + 1])
    disc = {k: modified_discounts(np.array(list(counts[k].values()))) for k in counts}

    def p(k, w):
        if k == 0:
            return 1.0 / V
        ctx = tuple(history[len(history) - (k - 1):]) if k > 1 else ()
        items = {g: c for g, c in counts[k].items() if g[:-1] == ctx}
        total = sum(items.values())
        if total == 0:
            return p(k - 1, w)
        c = items.get((*ctx, w), 0)
        d = disc[k][min(c, 3) - 1] if c else 0.0
        gamma = sum(disc[k][min(n, 3) - 1] for n in items.values()) / total
        return max(c - d, 0.0) / total + gamma * p(k - 1, w)

    return p(order, w)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one_for_seen_and_unseen_histories(order):
    stream = tiny_stream()
    model = NGramModel.train(stream, order, tiny_vocab())
    for history in ([1, 1, 1], [int(stream[5]), int(stream[6]), int(stream[7])], [11, 10, 11], [3]):
        total = np.exp(model.log_proba_all(history)).sum()
        assert abs(total - 1.0) < 1e-12, (history, total)


@pytest.mark.parametrize("order", [2, 3])
def test_vectorised_model_equals_the_formulas(order):
    stream = tiny_stream(200, seed=1)
    model = NGramModel.train(stream, order, tiny_vocab())
    for history in ([int(stream[10]), int(stream[11])], [2, 9], [11, 11]):
        logp = model.log_proba_all(history)
        for w in range(V):
            assert logp[w] == pytest.approx(math.log(naive_kn_prob(stream.tolist(), order, history, w)), rel=1e-12)


def test_token_nll_reads_a_split_after_its_history(tmp_path):
    stream = tiny_stream()
    model = NGramModel.train(stream[:300], 3, tiny_vocab())
    nll = model.token_nll(stream[300:], stream[:300])
    one_by_one = [-model.log_proba_all(stream[: 300 + i].tolist())[stream[300 + i]] for i in range(5)]
    np.testing.assert_allclose(nll[:5], one_by_one, rtol=1e-12)
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(NGramModel.load(tmp_path / "m").token_nll(stream[300:], stream[:300]), nll)


def test_brown_trigram_reproduces_the_reference_perplexities():
    """Issue 14's figures for an interpolated modified KN trigram on these files: valid 333.1, test 308.8."""
    streams, vocab = load_corpus("brown")
    ids = {k: vocab.ids(v) for k, v in streams.items()}
    model = NGramModel.train(ids["train"], 3, vocab)
    valid = math.exp(model.token_nll(ids["valid"], ids["train"]).mean())
    test = math.exp(model.token_nll(ids["test"], np.concatenate([ids["train"], ids["valid"]])).mean())
    assert abs(valid / 333.1 - 1) < 0.005 and abs(test / 308.8 - 1) < 0.005, (valid, test)


def test_em_weights_maximise_the_mixture_likelihood():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.01, 1.0, (2, 500))
    w = em_weights(probs)
    best = max(np.linspace(0, 1, 1001), key=lambda a: np.log(a * probs[0] + (1 - a) * probs[1]).sum())
    assert w.sum() == pytest.approx(1.0) and w[0] == pytest.approx(best, abs=2e-3)


def run(*args):
    return subprocess.run([sys.executable, "-m", "winner.cli", *args], capture_output=True, text=True, timeout=600)


def test_cli_trains_an_ngram_and_mixes_it_twice_in_fresh_processes(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text(" ".join(f"w{i % 7} w{i % 5} w{i % 3}" for i in range(600)), encoding="utf-8")
    outs = []
    for k in range(2):
        r = run("lm", "ngram", "--order", "3", "--corpus", str(text), "--out", str(tmp_path / f"ng{k}"))
        assert r.returncode == 0, r.stderr
        p = run("lm", "perplexity", str(tmp_path / f"ng{k}"), str(tmp_path / "ng0"), "--json")
        assert p.returncode == 0, p.stderr
        outs.append(json.loads(p.stdout))
    assert outs[0] == outs[1]
    assert outs[0]["weights"][0] + outs[0]["weights"][1] == pytest.approx(1.0)
    bad = run("lm", "perplexity", str(tmp_path / "ng0"), str(tmp_path / "ng1"), "--mix-weights", "1,2,3")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "one per model" in bad.stderr + bad.stdout
