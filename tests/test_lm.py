"""The fixed-window language model: windows over one continuous stream, exact chunked perplexity,
generation, save/load, gradient checks, CLI and pipeline round trips on tiny corpora."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from winner.cli.app import app
from winner.core.optim import Optimizer
from winner.data.corpus import tokenize
from winner.data.vocab import UNK, Vocab
from winner.errors import ModelFormatError, WinnerError
from winner.heads.lm import (
    ContextNoise,
    LanguageModel,
    LMSettings,
    LRSchedule,
    UnseenOutputs,
    evaluate_lm,
    gradcheck_cases,
    lm_windows,
    perplexity,
    render,
    split_windows,
    token_nll,
)
from winner.heads.settings import parse_hidden

WORDS = [UNK, "the", "cat", "sat", "on", "mat", ".", "a", "dog", "<text>"]


def tiny_lm(hidden=(6,), direct=True, context=3, seed=0, dtype="float64") -> LanguageModel:
    vocab = Vocab(WORDS)
    stream = np.array([9, 1, 2, 3, 4, 1, 5, 6, 7, 8, 3, 6], dtype=np.int32)
    return LanguageModel.create(vocab, context, 4, hidden, direct, seed=seed, train_ids=stream, dtype=dtype)


def reference_nll(lm: LanguageModel, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unchunked, straight from the log-softmax of all logits at once."""
    Z = lm.model.predict_logits(X).astype(np.float64)
    lse = np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1)) + Z.max(1)
    return lse - Z[np.arange(len(y)), y]


# ---------------------------------------------------------------- windows


def naive_windows(stream, context, pad, history=()):
    full = [*history, *stream]
    off = len(history)
    rows = []
    for i in range(len(stream)):
        ctx = [full[j] if j >= 0 else pad for j in range(off + i - context, off + i)]
        rows.append(ctx)
    return np.array(rows, dtype=np.int32).reshape(len(stream), context)


@pytest.mark.parametrize("context", [1, 2, 4])
def test_windows_match_a_naive_loop(context):
    rng = np.random.default_rng(context)
    stream = rng.integers(0, 9, 11)
    history = rng.integers(0, 9, 2)  # shorter than the context: padding fills the rest
    X, y = lm_windows(stream, context, pad_id=99, history=history)
    np.testing.assert_array_equal(X, naive_windows(stream, context, 99, list(history)))
    np.testing.assert_array_equal(y, stream)
    X0, _ = lm_windows(stream, context, pad_id=99)
    np.testing.assert_array_equal(X0, naive_windows(stream, context, 99))
    assert X.dtype == np.int32 and y.dtype == np.int64


def test_splits_are_one_continuous_stream():
    ids = {"train": np.arange(10), "valid": np.arange(10, 13), "test": np.arange(13, 20)}
    Xv, yv = split_windows(ids, "valid", 4, pad_id=-1)
    np.testing.assert_array_equal(Xv[0], [6, 7, 8, 9])
    Xt, yt = split_windows(ids, "test", 4, pad_id=-1)
    np.testing.assert_array_equal(Xt[0], [9, 10, 11, 12])  # across valid into train
    np.testing.assert_array_equal(Xt[1], [10, 11, 12, 13])
    Xtr, ytr = split_windows(ids, "train", 4, pad_id=-1)
    np.testing.assert_array_equal(Xtr[0], [-1, -1, -1, -1])
    assert (len(ytr), len(yv), len(yt)) == (10, 3, 7)  # every token is predicted


def test_shipped_brown_windows_count_every_token():
    from winner.data.corpus import brown_streams, brown_vocab

    streams = brown_streams()
    vocab = brown_vocab(streams)
    ids = {k: vocab.ids(v) for k, v in streams.items()}
    Xv, yv = split_windows(ids, "valid", 4, pad_id=len(vocab))
    Xt, yt = split_windows(ids, "test", 4, pad_id=len(vocab))
    assert (len(yv), len(yt)) == (200_000, 171_652)
    np.testing.assert_array_equal(Xv[0], ids["train"][-4:])
    np.testing.assert_array_equal(Xt[0], ids["valid"][-4:])
    assert int((yv == vocab.unk_id).sum()) == 7_069  # <unk> targets are counted too


def test_parse_hidden():
    assert parse_hidden("200") == (200,)
    assert parse_hidden("400, 100") == (400, 100)
    assert parse_hidden("0") == ()
    with pytest.raises(WinnerError, match="--hidden"):
        parse_hidden("big")
    with pytest.raises(WinnerError, match="positive"):
        parse_hidden("100,0")


# ---------------------------------------------------------------- probabilities and perplexity


@pytest.mark.parametrize("hidden,direct", [((6,), True), ((6,), False), ((), False), ((5, 4), True)])
def test_probabilities_sum_to_one(hidden, direct):
    lm = tiny_lm(hidden, direct)
    V = len(lm.vocab)
    X = np.array([[1, 2, 3], [9, 9, 9], [10, 10, 1]], dtype=np.int32)  # 10 = padding row
    for row in X:
        nll = token_nll(lm.model, np.repeat(row[None], V, 0), np.arange(V), chunk=4)
        assert math.isclose(float(np.exp(-nll).sum()), 1.0, rel_tol=1e-12)


def test_uniform_model_has_perplexity_v():
    lm = tiny_lm(dtype="float32")
    for name, p in lm.model.params.items():
        if name not in ("E", "F", "W0", "b0"):  # the output layer and the direct connections
            p[...] = 0.0
    X, y = lm.windows(np.arange(len(lm.vocab)).repeat(5))
    assert perplexity(lm.model, X, y, chunk=7) == pytest.approx(len(lm.vocab), rel=1e-6)


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_chunked_nll_equals_unchunked(chunk):
    lm = tiny_lm()
    rng = np.random.default_rng(0)
    X, y = lm.windows(rng.integers(0, len(lm.vocab), 40))
    np.testing.assert_allclose(token_nll(lm.model, X, y, chunk=chunk), reference_nll(lm, X, y), rtol=1e-12)


def test_nll_is_the_training_loss():
    lm = tiny_lm()
    X, y = lm.windows(np.random.default_rng(1).integers(0, len(lm.vocab), 25))
    loss, _ = lm.model.loss_and_grad(X, None, y)
    assert float(token_nll(lm.model, X, y, chunk=4).mean()) == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize("case", gradcheck_cases(), ids=lambda r: r.name)
def test_gradient_check_lm(case):
    for p in case.params:
        assert p.worst < 1e-6, (f"{case.name}: {p.name} worst relative error {p.worst:.3e} at {p.worst_index} "
                                f"(analytic {p.analytic}, numeric {p.numeric})")
        assert p.untouched_rows_zero, f"{case.name}: unused rows of {p.name} have a nonzero gradient"


def test_output_bias_starts_at_log_unigram():
    lm = tiny_lm(hidden=(6,), direct=False)
    b = lm.model.params["b1"]
    assert math.isclose(float(np.exp(b).sum()), 1.0, rel_tol=1e-9)
    assert b[1] > b[2] > b[0]  # "the" (twice) > "cat" (once) > <unk> (never)


# ---------------------------------------------------------------- generation


def test_generation_is_reproducible_under_a_seed():
    lm = tiny_lm()
    a = lm.generate(["the", "cat"], 30, temperature=1.0, seed=5)
    assert a == lm.generate(["the", "cat"], 30, temperature=1.0, seed=5)
    assert len(a) == 30 and UNK not in a
    others = [lm.generate(["the", "cat"], 30, temperature=1.0, seed=s) for s in range(6, 9)]
    assert any(o != a for o in others)


def test_greedy_is_deterministic_and_follows_the_argmax():
    lm = tiny_lm()
    words = lm.generate(["a", "dog"], 10, temperature=0.0, seed=1)
    assert words == lm.generate(["a", "dog"], 10, temperature=0.0, seed=2)
    history = [int(i) for i in lm.vocab.ids(["a", "dog"])]
    for w in words:
        logits = lm.next_logits(history)
        logits[lm.vocab.unk_id] = -np.inf
        assert w == lm.vocab.itos[int(np.argmax(logits))]
        history.append(lm.vocab.stoi[w])
    assert lm.generate(["a", "dog"], 10, temperature=1.0, top_k=1, seed=3) == words


def test_next_distribution_never_gives_unk_and_sums_to_one():
    lm = tiny_lm()
    out_bias = lm.model.params["b1"]
    out_bias[lm.vocab.unk_id] = 50.0  # <unk> is by far the most likely word
    for t, k in ((1.0, 0), (0.5, 3), (2.0, 0), (0.0, 0)):
        p = lm.next_distribution([1, 2], temperature=t, top_k=k)
        assert p[lm.vocab.unk_id] == 0.0
        assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-12)
        if k:
            assert int((p > 0).sum()) == k
    assert UNK not in lm.generate([], 20, seed=0)


def test_prompt_shorter_than_context_and_unknown_words():
    lm = tiny_lm()
    assert len(lm.generate([], 5, seed=0)) == 5  # all padding
    assert len(lm.generate(["zebra"], 5, seed=0)) == 5  # read as <unk>
    with pytest.raises(WinnerError, match="temperature"):
        lm.generate(["the"], 3, temperature=-1.0)


def test_render_shows_text_markers_as_paragraphs():
    assert render(["the", "end", ".", "<text>", "a", "new", "one"]) == "the end .\n\na new one"


# ---------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
    lm = tiny_lm(dtype="float32")
    lm.save(tmp_path / "m", {"corpus": "x"})
    back = LanguageModel.load(tmp_path / "m")
    X, y = lm.windows(np.arange(10))
    np.testing.assert_array_equal(back.model.predict_logits(X), lm.model.predict_logits(X))
    assert back.vocab == lm.vocab and back.context == lm.context and back.meta["corpus"] == "x"
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["format"] == "winner.lm.v1"


def test_load_refuses_other_kinds(tmp_path):
    from winner.heads.model_io import save_model_dir

    lm = tiny_lm()
    save_model_dir(tmp_path / "t", "tagger", {}, lm.model.to_arrays(), lm.vocab)
    with pytest.raises(ModelFormatError, match="winner.lm.v1"):
        LanguageModel.load(tmp_path / "t")


@pytest.mark.parametrize("direct", [True, False])
def test_outputs_of_words_unseen_in_train_keep_their_initial_values(direct):
    lm = tiny_lm(hidden=(6,), direct=direct, dtype="float32")
    train = np.array([1, 2, 3, 4, 1, 5, 6, 7, 3, 6] * 5, dtype=np.int32)  # never 0 (<unk>), 8 or 9
    unseen = UnseenOutputs(lm, train)
    assert list(unseen.cols) == [0, 8, 9]
    before = {k: v.copy() for k, v in lm.model.params.items()}
    opt = Optimizer("adam", lr=0.05, eps=1e-8)
    X, y = lm.windows(train)
    opt.train_batches(lm.model, X, np.zeros_like(X), y, np.arange(len(y)), 0, len(y), 8, 0)
    names = ["W1", "b1", *(["D"] if direct else [])]
    assert all(not np.array_equal(lm.model.params[k][..., [0, 8, 9]], before[k][..., [0, 8, 9]]) for k in names)
    unseen.restore(lm.model, opt)
    for k in names:
        np.testing.assert_array_equal(lm.model.params[k][..., [0, 8, 9]], before[k][..., [0, 8, 9]])
        assert not np.array_equal(lm.model.params[k][..., 1], before[k][..., 1])  # seen words trained
        view = lm.model.params[k]
        off = (view.__array_interface__["data"][0] - lm.model.theta.__array_interface__["data"][0]) // 4
        m = opt.state["m"][off : off + view.size].reshape(view.shape)
        assert np.all(m[..., [0, 8, 9]] == 0.0) and np.any(m[..., 1] != 0.0)


def test_parameter_average_is_an_ema_of_the_iterates_and_swaps_back():
    lm = tiny_lm(dtype="float64")
    opt = Optimizer("adam", lr=0.01, average_windows=0.5 * 40)
    X, y = lm.windows(np.arange(40) % len(lm.vocab))
    order = np.arange(40)
    opt.train_batches(lm.model, X, np.zeros_like(X), y, order, 0, 20, 4, 0)
    np.testing.assert_array_equal(opt.state["avg_theta"], lm.model.theta)  # starts at the first iterate
    first = lm.model.theta.copy()
    opt.train_batches(lm.model, X, np.zeros_like(X), y, order, 20, 40, 4, 0)
    rate = 1.0 - math.exp(-20 / 20.0)
    np.testing.assert_allclose(opt.state["avg_theta"], (1 - rate) * first + rate * lm.model.theta, rtol=1e-12)
    raw = lm.model.to_arrays()
    with lm.model.use_params(opt.averaged()):
        np.testing.assert_array_equal(lm.model.theta, opt.state["avg_theta"])
        np.testing.assert_array_equal(lm.model.E, opt.state["avg_E"])
    for k, v in lm.model.params.items():
        np.testing.assert_array_equal(v, raw[k])
    assert opt.steps == 10 and opt.hyperparams()["lr"] == 0.01


def test_context_noise_is_seeded_per_epoch_and_spares_padding():
    X = lm_windows(np.arange(1, 2001) % 9 + 1, 3, pad_id=10)[0]
    clean = X.copy()
    noise = ContextNoise(X, 0.2, unk_id=0, pad_id=10, seed=3)
    noise.draw(1)
    first = X.copy()
    hit = first != clean
    assert np.all(first[hit] == 0) and abs(hit.mean() - 0.2) < 0.02
    assert np.all(first[clean == 10] == 10)
    noise.draw(2)
    assert not np.array_equal(X, first)
    noise.draw(1)
    np.testing.assert_array_equal(X, first)
    noise.p = 0.0
    noise.draw(5)
    np.testing.assert_array_equal(X, clean)


def test_lr_schedule_decays_when_valid_does_not_improve():
    opt = Optimizer("sgd", lr=0.1)
    s = LRSchedule(opt, 0.5)
    for improved in (True, True, False, True, False):  # valid perplexity 300, 280, 290, 270, 270
        s.update(improved)
    assert opt.lr == pytest.approx(0.025)
    assert s.last_lr == pytest.approx(0.05)


# ---------------------------------------------------------------- CLI and pipeline on a tiny corpus


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = ("the cat sat on the mat . a dog ran in the park . she did n't see john 's hat . it 's a long "
             "long time ago").split()
    d = tmp_path_factory.mktemp("corpus")
    for name, lines in (("train.txt", 150), ("valid.txt", 15), ("test.txt", 15)):
        text = "\n".join(" ".join(rng.choice(words, 12)) for _ in range(lines))
        (d / name).write_text(text.replace("did n't", "didn't").replace("john 's", "John's"))
    return d


@pytest.fixture(scope="module")
def trained(corpus_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "lm"
    r = CliRunner().invoke(app, ["lm", "train", "--corpus", str(corpus_dir), "--out", str(out), "--epochs", "3",
                                 "--hidden", "8", "--embed-dim", "4", "--batch-size", "16", "--min-count", "1",
                                 "--quiet"])
    assert r.exit_code == 0, r.output
    return out


def test_cli_train_writes_a_run(trained):
    assert (trained / "model" / "config.json").is_file()
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all("valid perplexity" in r and "windows_per_s" in r and "lr" in r for r in records)
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["best_valid_perplexity"] == min(r["valid perplexity"] for r in records)


def test_cli_perplexity_json(trained, corpus_dir):
    r = CliRunner().invoke(app, ["lm", "perplexity", str(trained), "--split", "test", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert set(result) == {"perplexity", "tokens"}
    assert result["tokens"] == len(tokenize((corpus_dir / "test.txt").read_text()))  # every token
    assert 1.0 < result["perplexity"] < 40
    r = CliRunner().invoke(app, ["lm", "perplexity", str(trained), "--text", str(corpus_dir / "test.txt")])
    assert r.exit_code == 0 and "perplexity" in r.stdout
    valid = evaluate_lm(trained, "valid")
    summary = json.loads((trained / "summary.json").read_text())
    assert valid["perplexity"] == pytest.approx(summary["best_valid_perplexity"], rel=1e-9)


def test_cli_generate_is_reproducible(trained):
    args = ["lm", "generate", str(trained / "model"), "--prompt", "A long long time ago in a", "-n", "15",
            "--seed", "1"]
    a = CliRunner().invoke(app, args)
    b = CliRunner().invoke(app, args)
    assert a.exit_code == 0, a.output
    assert a.stdout == b.stdout
    assert a.stdout.startswith("a long long time ago in a ")
    assert len(a.stdout.split()) == 7 + 15
    g = CliRunner().invoke(app, [*args[:-2], "--temperature", "0", "--json"])
    assert g.exit_code == 0
    assert len(json.loads(g.stdout)["words"]) == 15


def test_cli_errors_are_one_line(trained, corpus_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["lm", "train", "--corpus", "brown", "--min-count", "3", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "error:" in r.output and "Brown vocabulary is fixed" in r.output
    r = runner.invoke(app, ["lm", "train", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "expected 'brown' or an existing file" in r.output
    r = runner.invoke(app, ["lm", "perplexity", str(corpus_dir)])
    assert r.exit_code == 1 and "no model here" in r.output
    # a malformed option value is a usage error: one line, exit 2 (as for every command, see cli/usage.py)
    r = runner.invoke(app, ["lm", "train", "--corpus", str(corpus_dir), "--hidden", "x", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--hidden" in r.output


def test_single_file_corpus_holds_out_valid(tmp_path, corpus_dir):
    text = (corpus_dir / "train.txt").read_text()
    (tmp_path / "all.txt").write_text(text)
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["lm", "train", "--corpus", str(tmp_path / "all.txt"), "--out", str(out),
                                 "--epochs", "1", "--hidden", "0", "--embed-dim", "3", "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["lm", "perplexity", str(out), "--split", "test"])
    assert r.exit_code == 1 and "no test split" in r.output


def test_resume_continues_the_learning_rate_from_the_checkpoint(corpus_dir, tmp_path):
    """The learning rate a schedule reached is in the checkpoint: a run stopped after epoch 2 and resumed has
    the same learning rates, metrics and parameters as one that ran 4 epochs straight, and metrics.jsonl holds
    each epoch once even when it was written past the checkpoint (the old resume read the rate from there)."""
    from winner.heads.lm import train_lm

    base = dict(corpus=str(corpus_dir), min_count=1, hidden="8", embed_dim=4, batch_size=16, lr=0.05,
                lr_decay=0.5, patience=10, quiet=True)
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_lm(LMSettings(**base, out=str(straight), epochs=4))
    train_lm(LMSettings(**base, out=str(split), epochs=2, keep_checkpoint=True))
    last = json.loads((split / "metrics.jsonl").read_text().splitlines()[-1])
    with (split / "metrics.jsonl").open("a") as f:  # an epoch logged after the last checkpoint, then killed
        f.write(json.dumps({**last, "epoch": 3, "next_lr": 12.5}) + "\n")
    train_lm(LMSettings(**base, out=str(split), epochs=4, resume=True))
    a = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]
    assert [r["lr"] for r in b] == [r["lr"] for r in a] and len({r["lr"] for r in a}) > 1  # the schedule fired
    assert [r["valid perplexity"] for r in b] == [r["valid perplexity"] for r in a]
    with np.load(straight / "model" / "params.npz") as x, np.load(split / "model" / "params.npz") as y:
        for k in x.files:
            np.testing.assert_array_equal(x[k], y[k])


def test_pipeline_runs_train_perplexity_generate(corpus_dir, tmp_path):
    from winner.cli.pipeline import run_pipeline

    toml = tmp_path / "p.toml"
    toml.write_text(f"""
name = "tiny_lm"
out = "{tmp_path / 'out'}"
[[step]]
run = "lm train"
corpus = "{corpus_dir}"
min_count = "1"
hidden = "8"
embed_dim = "4"
epochs = "2"
quiet = true
[[step]]
run = "lm perplexity"
split = "test"
[[step]]
run = "lm generate"
prompt = "the cat"
n = "5"
seed = "1"
""")
    summary = run_pipeline(toml)
    steps = {s["run"]: s["result"] for s in summary["steps"]}
    assert steps["lm perplexity"]["tokens"] > 0
    assert len(steps["lm generate"]["words"]) == 5
    assert "best_valid_perplexity" in steps["lm train"]


def test_brown_pipeline_file_parses():
    from pathlib import Path

    from winner.cli.pipeline import load_pipeline

    path = Path(__file__).resolve().parents[1] / "pipelines" / "brown_lm.toml"
    name, out, steps = load_pipeline(path, {"seed": "3"})
    assert [k for k, _ in steps] == ["lm train", "lm train", "lm ngram", "lm perplexity", "lm perplexity",
                                     "lm perplexity", "lm generate"]
    assert steps[0][1]["seed"] == steps[1][1]["seed"] == 3 and steps[1][1]["into"] == "context8"
    assert steps[5][1]["models"] == [".", "context8", "ngram"]
    assert out.name == "brown_lm_seed3"
