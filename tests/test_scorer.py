"""The max-margin window scorer: hinge gradients, corrupt sampling, threshold, save/load, CLI, pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from winner.cli.app import app
from winner.core import gradcheck
from winner.core.mlp import MLPConfig, WindowMLP
from winner.data.resources import wikigold_path
from winner.data.vocab import Vocab
from winner.errors import ModelFormatError, WinnerError
from winner.heads.scorer import (
    Scorer,
    ScorerSpec,
    ScoreSettings,
    best_threshold,
    centre_is_label,
    dense_grads,
    featurize,
    gradcheck_cases,
    hinge_grads,
    sample_pairs,
    token_scores,
    train_scorer,
)

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parents[1]
runner = CliRunner()
TINY = ["--embeddings", "none", "--hidden", "8", "--epochs", "1", "--batch-size", "16", "--quiet"]


def tiny_model(seed: int = 0, **kw) -> WindowMLP:
    cfg = MLPConfig(**{"n_positions": 5, "vocab_size": 20, "embed_dim": 4, "n_features": 6, "feature_dim": 2,
                       "n_out": 1, "hidden": (7,), "loss": "none", "dtype": "float64", **kw})
    return WindowMLP(cfg, seed=seed)


def windows(n: int, seed: int = 1, vocab: int = 17) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, vocab, (n, 5)).astype(np.int32), rng.integers(0, 5, (n, 5)).astype(np.int32))


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("case", gradcheck_cases(), ids=lambda r: r.name)
def test_hinge_gradient_check_every_parameter(case):
    for p in case.params:
        assert p.worst < gradcheck.TOLERANCE, (
            f"{case.name}: {p.name} worst relative error {p.worst:.3e} at {p.worst_index} "
            f"(analytic {p.analytic}, numeric {p.numeric}), mean {p.mean:.3e}")
        assert p.untouched_rows_zero, f"{case.name}: rows of {p.name} no window uses have a nonzero gradient"


def test_gradcheck_command_includes_the_scorer():
    from winner.heads.registry import gradcheck_cases as every_case

    names = [r.name for r in every_case()]
    assert sum(n.startswith("scorer hinge") for n in names) == 3


def test_all_pairs_satisfied_gives_zero_loss_and_exactly_zero_gradients():
    model = tiny_model()
    ids, feats = windows(2 + 2 * 3)
    Z = model.predict_logits(ids, feats)[:, 0]
    gaps = Z[:2, None] - Z[2:].reshape(2, 3)
    loss, n_active, grads = hinge_grads(model, ids, feats, 2, margin=float(gaps.min()) - 0.1)
    assert loss == 0.0 and n_active == 0
    for name, g in dense_grads(model, grads).items():
        assert np.all(g == 0.0), f"{name} has a nonzero gradient although J = 0 for every pair"


def test_loss_matches_a_numpy_reference_and_counts_violations():
    model = tiny_model()
    B, K = 3, 4
    ids, feats = windows(B * (K + 1))
    margin = 0.3
    Z = model.predict_logits(ids, feats)[:, 0]
    J = np.maximum(0.0, margin - Z[:B, None] + Z[B:].reshape(B, K))
    loss, n_active, _ = hinge_grads(model, ids, feats, B, margin)
    assert loss == pytest.approx(J.sum() / B, rel=1e-12)
    assert n_active == int((J > 0).sum())


def test_stacked_batch_equals_the_mean_of_its_true_windows():
    """Row B + i*K + k belongs to true window i: the batch's gradient is the mean of the one-window batches."""
    model = tiny_model()
    B, K = 3, 2
    ids, feats = windows(B * (K + 1), seed=4)
    margin = 1.5
    loss, _, g = hinge_grads(model, ids, feats, B, margin)
    whole = dense_grads(model, g)
    parts_loss, parts = 0.0, None
    for i in range(B):
        rows = np.r_[i, B + i * K + np.arange(K)]
        li, _, gi = hinge_grads(model, ids[rows], feats[rows], 1, margin)
        gi = dense_grads(model, gi)
        parts_loss += li / B
        parts = {k: v / B for k, v in gi.items()} if parts is None else {k: parts[k] + gi[k] / B for k in parts}
    assert loss == pytest.approx(parts_loss, rel=1e-12)
    for k in whole:
        np.testing.assert_allclose(whole[k], parts[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_word_shared_by_true_and_corrupt_window_gets_both_gradients():
    """The same embedding row in a true window and in its corrupt window: the contributions add."""
    model = tiny_model()
    ids, feats = windows(2, seed=5, vocab=15)
    ids[0, 2] = ids[1, 2] = 3  # shared centre word
    ids[0, 0] = ids[1, 4] = 3  # and again at other positions
    others = np.setdiff1d(ids, [3])
    assert others.size and 3 not in others
    margin = 10.0  # the pair is violated
    _, _, g = hinge_grads(model, ids, feats, 1, margin)
    shared = dense_grads(model, g)["E"][3].copy()
    # the same windows with every use of word 3 replaced by its own copy of the row
    split = WindowMLP(MLPConfig(**{**model.config.__dict__, "vocab_size": 24}), seed=0)
    split.set_params({**{k: v for k, v in model.params.items() if k != "E"},
                      "E": np.concatenate([model.E, np.repeat(model.E[[3]], 4, axis=0)])})
    ids2 = ids.copy()
    ids2[0, 2], ids2[1, 2], ids2[0, 0], ids2[1, 4] = 20, 21, 22, 23
    _, n_active, g2 = hinge_grads(split, ids2, feats, 1, margin)
    assert n_active == 1
    G = dense_grads(split, g2)["E"]
    np.testing.assert_allclose(shared, G[20] + G[21] + G[22] + G[23], rtol=1e-12, atol=1e-15)
    assert np.any(G[20] != 0) and np.any(G[21] != 0)


def test_hinge_rejects_a_batch_that_is_not_b_plus_kb_rows():
    model = tiny_model()
    ids, feats = windows(5)
    with pytest.raises(ValueError, match="stacked batch"):
        hinge_grads(model, ids, feats, 2, 1.0)


# ---------------------------------------------------------------- windows, pairs, threshold


def test_centre_is_label_takes_every_prefix_of_the_type_only():
    tags = [["B-LOC", "I-LOC", "O", "E-LOC", "S-LOC", "I-ORG", "B-LOCATION"]]
    assert centre_is_label(tags, "LOC").tolist() == [True, True, False, True, True, False, False]
    assert centre_is_label(tags, "ORG").tolist() == [False] * 5 + [True, False]


def test_corrupt_windows_never_centre_on_the_label_and_are_reproducible():
    rng = np.random.default_rng(0)
    is_true = rng.random(500) < 0.1
    order, corrupt = sample_pairs(is_true, 7, seed=3, epoch=2)
    assert sorted(order.tolist()) == np.flatnonzero(is_true).tolist()  # every true window once
    assert corrupt.shape == (order.size, 7)
    assert not is_true[corrupt].any()
    again = sample_pairs(is_true, 7, seed=3, epoch=2)
    np.testing.assert_array_equal(order, again[0])
    np.testing.assert_array_equal(corrupt, again[1])
    for other in (sample_pairs(is_true, 7, seed=3, epoch=3), sample_pairs(is_true, 7, seed=4, epoch=2)):
        assert not np.array_equal(corrupt, other[1])  # drawn afresh each epoch, and per seed


def test_sampling_needs_both_kinds_of_window():
    with pytest.raises(WinnerError):
        sample_pairs(np.ones(5, dtype=bool), 2, 0, 1)


def test_featurize_is_the_taggers_featurisation():
    from winner.heads.tagger import Tagger, TaggerSpec

    sentences = [["Paris", "is", "in", "France", "."], ["It", "rained", "in", "1999"]]
    words = Vocab(["<pad>", "<unk>", "paris", "is", "in", "0000"])
    cfg = MLPConfig(n_positions=7, vocab_size=len(words), embed_dim=2, n_out=3, n_features=8, feature_dim=2)
    tagger = Tagger(WindowMLP(cfg), words, TaggerSpec(3, ["O", "B-LOC", "I-LOC"], "iob2", "iob2"))
    ours = featurize(sentences, words, 3)
    theirs = tagger.featurize(sentences)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_best_threshold_maximises_token_f1():
    scores = np.array([5.0, 4.0, 3.0, 3.0, 1.0, 0.0])
    gold = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    threshold, prf = best_threshold(scores, gold)
    assert threshold == 2.0  # cut below the tied pair of 3s: 3 of 4 predicted are right, all found
    assert prf == pytest.approx({"precision": 0.75, "recall": 1.0, "f1": 6 / 7})
    for t in np.unique(scores):
        assert token_scores(scores >= t, gold)["f1"] <= prf["f1"] + 1e-12


def test_best_threshold_never_cuts_inside_ties():
    scores = np.array([1.0, 1.0, 1.0, 0.0])
    gold = np.array([1, 0, 0, 0], dtype=bool)
    threshold, prf = best_threshold(scores, gold)
    assert threshold == 0.5 and prf["precision"] == pytest.approx(1 / 3)


# ---------------------------------------------------------------- save, load, train


def test_save_load_round_trip(tmp_path):
    model = tiny_model(n_features=8)  # one row per casing class
    words = Vocab(["<pad>", "<unk>"] + [f"w{i}" for i in range(18)])
    scorer = Scorer(model, words, ScorerSpec(window=2, label="LOC", margin=1.0, threshold=0.25))
    scorer.save(tmp_path / "m", {"note": "test"})
    loaded = Scorer.load(tmp_path / "m")
    assert loaded.spec == scorer.spec and loaded.words == words
    sentences = [["w1", "w2", "w3"], ["w4"]]
    np.testing.assert_array_equal(loaded.score(sentences), scorer.score(sentences))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format"] == "winner.scorer.v1" and config["scorer"]["threshold"] == 0.25


def test_a_casing_table_too_small_for_the_casing_classes_is_refused():
    words = Vocab(["<pad>", "<unk>"] + [f"w{i}" for i in range(18)])
    with pytest.raises(ModelFormatError, match="casing"):
        Scorer(tiny_model(), words, ScorerSpec(window=2, label="LOC", margin=1.0))


def test_loading_another_kind_of_model_fails_clearly(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"format": "winner.tagger.v1"}))
    with pytest.raises(ModelFormatError, match="winner.scorer.v1"):
        Scorer.load(tmp_path)


def _settings(out: Path, **kw) -> ScoreSettings:
    return ScoreSettings(out=str(out), train=str(wikigold_path("dev")), dev=str(wikigold_path("test")),
                         embeddings="none", batch_size=16, quiet=True, **{"epochs": 2, "hidden": 8, **kw})


def test_same_seed_same_model(tmp_path):
    a = train_scorer(_settings(tmp_path / "a", seed=3))
    b = train_scorer(_settings(tmp_path / "b", seed=3))
    assert a["threshold"] == b["threshold"]
    with np.load(tmp_path / "a" / "model" / "params.npz") as fa, np.load(tmp_path / "b" / "model" / "params.npz") as fb:
        for k in fa.files:
            np.testing.assert_array_equal(fa[k], fb[k])


def test_training_separates_true_from_corrupt_windows(tmp_path):
    """A few epochs on a small set: on its own training data the scorer ranks locations far above the rest."""
    from winner.data.hub import load_sentences
    from winner.heads.scorer import load_scorer, ranking_scores

    summary = train_scorer(_settings(tmp_path, epochs=8, hidden=32, dropout=0.0, patience=8))
    scorer = load_scorer(tmp_path)
    train = load_sentences(str(wikigold_path("dev")))
    gold = centre_is_label([s.tags for s in train], "LOC")
    assert ranking_scores(scorer.score([s.tokens for s in train]), gold)["auc"] > 0.97
    assert summary["threshold"] == scorer.spec.threshold


def test_resume_continues_from_the_checkpoint(tmp_path):
    train_scorer(_settings(tmp_path, epochs=1, keep_checkpoint=True))
    summary = train_scorer(_settings(tmp_path, epochs=2, resume=True))
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2] and summary["epochs_run"] == 2


def test_with_average_the_kept_scorer_is_the_averaged_weights(tmp_path):
    """--average: the model kept after epoch 1 is the optimiser's average (the checkpoint's), not the last
    iterate; the average moved every eighth of its time constant (count_windows), so it differs from it."""
    train_scorer(_settings(tmp_path, epochs=1, keep_checkpoint=True, average=0.5))
    model = Scorer.load(tmp_path / "model").model
    with np.load(tmp_path / "checkpoint" / "optimizer.npz") as opt, \
            np.load(tmp_path / "checkpoint" / "params.npz") as raw:
        np.testing.assert_array_equal(model.theta, opt["avg_theta"])
        np.testing.assert_array_equal(model.E, opt["avg_E"])
        assert not np.array_equal(model.E, raw["E"])


# ---------------------------------------------------------------- command line and pipeline


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The default data (shipped WikiGold train/dev), one epoch, tiny hidden layer."""
    out = tmp_path_factory.mktemp("score_run")
    result = runner.invoke(app, ["score", "train", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_model_metrics_and_summary(trained):
    config = json.loads((trained / "model" / "config.json").read_text())
    assert config["format"] == "winner.scorer.v1"
    assert config["scorer"]["label"] == "LOC" and np.isfinite(config["scorer"]["threshold"])
    assert config["mlp"]["n_out"] == 1 and config["mlp"]["loss"] == "none"
    assert config["training"]["train_source"].endswith("train.conll")
    record = json.loads((trained / "metrics.jsonl").read_text().splitlines()[0])
    assert {"dev F1", "dev threshold", "dev AUC", "dev AP", "violated_pairs"} <= set(record)
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["threshold"] == config["scorer"]["threshold"]
    assert (trained / "learning_curve.png").is_file()


def test_evaluate_json_schema(trained):
    result = runner.invoke(app, ["score", "evaluate", str(trained), "--data", str(wikigold_path("test")), "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert {"auc", "average_precision", "precision", "recall", "f1", "threshold"} <= set(r)
    for k in ("auc", "average_precision", "precision", "recall", "f1"):
        assert 0.0 <= r[k] <= 1.0
    assert r["threshold"] == json.loads((trained / "model" / "config.json").read_text())["scorer"]["threshold"]
    table = runner.invoke(app, ["score", "evaluate", str(trained / "model"), "--data", str(wikigold_path("test"))])
    assert table.exit_code == 0 and "ROC-AUC" in table.stdout


def test_windows_lists_every_window_best_first(trained):
    text = "Not all museums in Paris are amazing\nRain in Spain ."
    result = runner.invoke(app, ["score", "windows", str(trained), text, "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert len(records) == 7 + 4
    assert {tuple(sorted(r)) for r in records} == {("centre", "position", "score", "sentence", "window")}
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True)
    paris = next(r for r in records if r["centre"] == "Paris")
    assert paris["window"] == ["museums", "in", "Paris", "are", "amazing"]
    assert (paris["sentence"], paris["position"]) == (0, 4)
    first = next(r for r in records if r["centre"] == "Not")
    assert first["window"][:2] == ["<pad>", "<pad>"]  # sentence edges pad
    top = runner.invoke(app, ["score", "windows", str(trained), "-", "--top", "2"], input=text)
    assert top.exit_code == 0, top.output
    lines = top.stdout.strip().splitlines()
    assert len(lines) == 2 and all("[" in line and "]" in line for line in lines)


def test_malformed_input_gives_one_line_and_exit_1(trained, tmp_path):
    cases = [
        ["score", "evaluate", str(trained), "--data", str(FIXTURES / "bad_tag.txt")],
        ["score", "evaluate", str(tmp_path), "--data", str(wikigold_path("test"))],  # no model here
        ["score", "windows", str(trained), "   "],
        ["score", "train", "--out", str(tmp_path / "x"), "--train", str(FIXTURES / "bad_column_count.txt"), *TINY],
        ["score", "train", "--out", str(tmp_path / "y"), "--label", "CITY", *TINY],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_tagger_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"format": "winner.tagger.v1"}))
    result = runner.invoke(app, ["score", "windows", str(tmp_path), "Paris"])
    assert result.exit_code == 1 and "winner.scorer.v1" in result.stderr


def test_pipeline_runs_train_and_evaluate(tmp_path):
    from winner.cli.pipeline import run_pipeline

    toml = tmp_path / "p.toml"
    toml.write_text(f"""name = "tiny_scorer"
out = "{tmp_path / 'run'}"
[[step]]
run = "score train"
train = "{wikigold_path('dev')}"
dev = "{wikigold_path('test')}"
embeddings = "none"
hidden = 8
epochs = "1"
quiet = true
[[step]]
run = "score evaluate"
data = "{wikigold_path('test')}"
""")
    summary = run_pipeline(toml)
    assert [s["run"] for s in summary["steps"]] == ["score train", "score evaluate"]
    assert 0.0 <= summary["steps"][1]["result"]["auc"] <= 1.0


def test_shipped_pipeline_parses():
    from winner.cli.pipeline import load_pipeline

    _, out, steps = load_pipeline(REPO / "pipelines" / "conll2003_location_scorer.toml", {"seed": "2"})
    assert [k for k, _ in steps] == ["score train", "score evaluate"]
    assert steps[0][1]["label"] == "LOC" and str(out).endswith("seed2")


def test_compare_script(trained, tmp_path, capsys):
    import importlib.util

    from winner.data.windows import CASINGS
    from winner.heads.tagger import Tagger, TaggerSpec

    # an untrained tagger is enough to exercise the comparison
    tags = ["O", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
    words = Vocab(["<pad>", "<unk>", "paris", "the"])
    cfg = MLPConfig(n_positions=5, vocab_size=len(words), embed_dim=3, n_out=len(tags), hidden=(4,),
                    n_features=len(CASINGS), feature_dim=2)
    tagger_run = tmp_path / "ner"
    Tagger(WindowMLP(cfg), words, TaggerSpec(2, tags, "iob1", "iob1", "argmax")).save(tagger_run / "model")
    script = REPO / "scripts" / "compare_location.py"
    spec = importlib.util.spec_from_file_location("compare_location", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = ["--scorer", str(trained), "--tagger", str(tagger_run), "--data", str(wikigold_path("test"))]
    capsys.readouterr()
    assert module.main([*args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["label"] == "LOC" and r["tokens"] == 3427
    for side in ("scorer", "tagger"):
        assert 0.0 <= r[side]["f1"] <= 1.0
    assert r["f1_difference"] == pytest.approx(r["scorer"]["f1"] - r["tagger"]["f1"])
    assert module.main(args) == 0
    table = capsys.readouterr().out
    assert "softmax tagger" in table and "scorer (threshold" in table
    assert module.main([*args[:2], "--tagger", str(tmp_path / "nothing"), *args[4:]]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=True)
    assert "usage" in help_text.stdout
