"""The NER command line end to end through typer's CliRunner: train, evaluate, tag, run, gradcheck."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from winner.cli.app import app
from winner.data.resources import wikigold_path

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()

# Small and fast: the shipped WikiGold dev split as training data, random embeddings, a small hidden layer.
TINY = ["--embeddings", "none", "--hidden", "16", "--epochs", "2", "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(app, ["ner", "train", "--train", str(wikigold_path("dev")), "--dev",
                                 str(wikigold_path("test")), "--out", str(out), "--keep-checkpoint", *TINY])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_model_metrics_and_pictures(trained):
    model = trained / "model"
    for name in ("config.json", "params.npz", "vocab.json"):
        assert (model / name).is_file()
    config = json.loads((model / "config.json").read_text())
    assert config["format"] == "winner.tagger.v1"
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert (trained / "learning_curve.png").stat().st_size > 1000
    summary = json.loads((trained / "summary.json").read_text())
    assert 0.0 <= summary["best_dev_f1"] <= 1.0
    with np.load(model / "params.npz", allow_pickle=False) as f:
        assert f["W0"].shape == (7 * (config["mlp"]["embed_dim"] + 10), 16)  # window 5, then the 2 document codes


def test_evaluate_json_schema(trained, tmp_path):
    plot = tmp_path / "confusion.png"
    result = runner.invoke(app, ["ner", "evaluate", str(trained), "--data", str(wikigold_path("test")), "--json",
                                 "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert set(scores) == {"precision", "recall", "f1", "per_type", "macro", "token_accuracy", "sentences", "tokens"}
    assert set(scores["per_type"]) == {"LOC", "MISC", "ORG", "PER"}
    for v in [scores["precision"], scores["recall"], scores["f1"]]:
        assert 0.0 <= v <= 1.0
    assert set(scores["per_type"]["LOC"]) == {"precision", "recall", "f1", "support", "gold", "predicted", "correct"}
    assert scores["per_type"]["LOC"]["support"] == 90  # LOC entities in the shipped test split
    assert plot.stat().st_size > 1000


def test_evaluate_table(trained):
    result = runner.invoke(app, ["ner", "evaluate", str(trained / "model"), "--data", str(wikigold_path("test"))])
    assert result.exit_code == 0, result.output
    assert "overall" in result.stdout and "PER" in result.stdout


def test_tag_text_from_stdin_and_json(trained):
    text = "John Smith lives in New York .\nThe European Union met in Brussels ."
    result = runner.invoke(app, ["ner", "tag", str(trained), "-"], input=text)
    assert result.exit_code == 0, result.output
    sentences = result.stdout.strip().split("\n\n")
    assert len(sentences) == 2
    assert [line.split()[0] for line in sentences[0].splitlines()] == "John Smith lives in New York .".split()
    result = runner.invoke(app, ["ner", "tag", str(trained), "-", "--format", "json"], input=text)
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["sentence"] for r in records] == [0, 1]
    assert [r["text"] for r in records] == text.splitlines()
    for r in records:
        for e in r["entities"]:
            assert e["text"] == r["text"][e["start_char"] : e["end_char"]]


def test_tag_conll_file_keeps_every_line_and_appends_the_tag(trained):
    given = (FIXTURES / "conll2003_sample.txt").read_text().splitlines()
    result = runner.invoke(app, ["ner", "tag", str(trained), str(FIXTURES / "conll2003_sample.txt")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(given)
    for before, after in zip(given, lines, strict=True):
        if before.strip():
            assert after.rsplit(" ", 1)[0] == before and len(after.split()) == 5
        else:
            assert after == before
    assert lines[0] == "-DOCSTART- -X- -X- O O"


def test_conlleval_reads_the_tag_output_and_agrees_with_evaluate(trained, tmp_path):
    """Round trip: `ner tag` on a gold CoNLL file, scored by the conlleval package, gives evaluate's F1; the file
    `ner evaluate --predictions` writes is the same one, and the report counts what conlleval counts."""
    conlleval = pytest.importorskip("conlleval")
    data = str(wikigold_path("test"))
    tagged = runner.invoke(app, ["ner", "tag", str(trained), data])
    assert tagged.exit_code == 0, tagged.output
    pred = tmp_path / "pred.txt"
    result = runner.invoke(app, ["ner", "evaluate", str(trained), "--data", data, "--json", "--predictions", str(pred)])
    assert result.exit_code == 0, result.output
    assert pred.read_text() == tagged.stdout
    scores = json.loads(result.stdout)
    theirs = conlleval.evaluate(tagged.stdout.splitlines())
    assert theirs["overall"]["chunks"]["evals"]["f1"] == pytest.approx(scores["f1"], abs=1e-12)
    for kind, v in scores["per_type"].items():
        stats = theirs["slots"]["chunks"][kind]["stats"]
        assert (v["support"], v["predicted"], v["correct"]) == (stats["gold"], stats["pred"], stats["correct"])
        assert v["gold"] == v["support"]
    assert set(scores["macro"]) == {"precision", "recall", "f1"} and 0.0 <= scores["token_accuracy"] <= 1.0
    table = runner.invoke(app, ["ner", "evaluate", str(trained), "--data", data]).stdout
    assert "predicted" in table and "macro" in table and "token accuracy" in table


def test_malformed_training_file_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["ner", "train", "--train", str(FIXTURES / "bad_tag.txt"), "--out",
                                 str(tmp_path / "r"), *TINY])
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "bad_tag.txt:" in err and "FOO" in err
    assert not (tmp_path / "r" / "model").exists()


def test_too_small_training_set_without_dev_is_refused(tmp_path):
    result = runner.invoke(app, ["ner", "train", "--train", str(FIXTURES / "wikigold_sample.txt"), "--out",
                                 str(tmp_path / "r"), *TINY])
    assert result.exit_code == 1
    assert "pass --dev" in result.stderr


def test_evaluate_wrong_directory_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["ner", "evaluate", str(tmp_path), "--data", str(wikigold_path("test"))])
    assert result.exit_code == 1
    assert "no model here" in result.stderr


def test_model_of_another_format_is_refused(trained, tmp_path):
    import shutil

    bad = tmp_path / "model"
    shutil.copytree(trained / "model", bad)
    config = json.loads((bad / "config.json").read_text())
    config["format"] = "winner.tagger.v9"
    (bad / "config.json").write_text(json.dumps(config))
    result = runner.invoke(app, ["ner", "evaluate", str(bad), "--data", str(wikigold_path("test"))])
    assert result.exit_code == 1
    assert "winner.tagger.v1" in result.stderr and "winner.tagger.v9" in result.stderr


def test_resume_continues_from_checkpoint(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    result = runner.invoke(app, ["ner", "train", "--train", str(wikigold_path("dev")), "--dev",
                                 str(wikigold_path("test")), "--out", str(run), "--resume",
                                 *[a if a != "2" else "3" for a in TINY]])
    assert result.exit_code == 0, result.output
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_same_seed_same_model(tmp_path):
    def train(out: Path) -> dict:
        r = runner.invoke(app, ["ner", "train", "--train", str(FIXTURES / "wikigold_sample.txt"), "--dev",
                                str(FIXTURES / "wikigold_sample.txt"), "--out", str(out), "--seed", "3", *TINY])
        assert r.exit_code == 0, r.output
        with np.load(out / "model" / "params.npz", allow_pickle=False) as f:
            return {k: f[k] for k in f.files}

    a, b = train(tmp_path / "a"), train(tmp_path / "b")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_run_pipeline(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text(f"""
name = "tiny"
out = "{tmp_path}/${{name}}"
[vars]
data = "{wikigold_path('dev').parent}"
[[step]]
run = "ner train"
train = "${{data}}/dev.conll"
dev = "${{data}}/test.conll"
embeddings = "none"
hidden = 8
epochs = "${{epochs}}"
quiet = true
[[step]]
run = "ner evaluate"
data = "${{data}}/test.conll"
""")
    result = runner.invoke(app, ["run", str(toml), "--set", "epochs=1"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "tiny" / "pipeline_summary.json").read_text())
    assert [s["run"] for s in summary["steps"]] == ["ner train", "ner evaluate"]
    assert 0.0 <= summary["steps"][1]["result"]["f1"] <= 1.0
    assert (tmp_path / "tiny" / "confusion_test.png").is_file()


def test_run_pipeline_unknown_variable(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('[[step]]\nrun = "ner evaluate"\ndata = "${nowhere}/x"\n')
    result = runner.invoke(app, ["run", str(toml)])
    assert result.exit_code == 1
    assert "nowhere" in result.stderr


def test_gradcheck_command_passes():
    result = runner.invoke(app, ["gradcheck"])
    assert result.exit_code == 0, result.output
    assert "passed" in result.stdout


def test_shipped_pipelines_parse():
    from winner.cli.pipeline import load_pipeline

    for path in sorted(Path(__file__).parents[1].glob("pipelines/*.toml")):
        name, out, steps = load_pipeline(path, {})
        assert steps, path


def test_written_files_have_the_usual_permissions(trained):
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    mode = stat.S_IMODE((trained / "model" / "config.json").stat().st_mode)
    assert mode == 0o666 & ~mask


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("WINNER_THREADS", "two", "error: WINNER_THREADS must be a whole number >= 1, got 'two'"),
    ("WINNER_THREADS", "0", "error: WINNER_THREADS must be a whole number >= 1, got '0'"),
    ("WINNER_BLAS", "mkl", "error: WINNER_BLAS must be numpy or scipy, got 'mkl'"),
])
def test_a_bad_environment_setting_is_a_one_line_error(setting, value, message):
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "winner", "gradcheck"], env={**os.environ, setting: value},
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == message
