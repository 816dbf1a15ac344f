"""The heads' settings, declared once (winner.heads.settings): the defaults, the train commands built from them,
and `winner run` applying `--set` to the train steps and checking a pipeline's values like CLI options."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from enum import Enum
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from winner.cli.app import app
from winner.errors import WinnerError
from winner.heads.settings import BadSettingError, LMSettings, NERSettings, ScoreSettings, parse_sizes

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

# The defaults before the settings were declared once (ner_settings.NERSettings, scorer.ScoreSettings,
# lm.LMSettings), written down as they were: `hidden` was an int for the tagger and scorer, text for the LM.
OLD_DEFAULTS = {
    NERSettings: {
        "out": "runs/ner", "train": None, "dev": None, "embeddings": "default", "trust_pickle": False, "window": 2,
        "hidden": 300, "layers": 1, "activation": "tanh", "casing_dim": 10, "random_embed_dim": 50,
        "max_pretrained": 0, "unk_replace": 0.5, "epochs": 30, "patience": 5, "batch_size": 32, "optimizer": "adam",
        "lr": 0.001, "embed_lr_scale": 1.0, "dropout": 0.5, "hidden_dropout": 0.0, "l2": 0.0, "l1": 0.0,
        "scheme": "iobes", "decode": "viterbi", "seed": 0, "resume": False, "quiet": False,
        "overwrite": False, "keep_checkpoint": False},
    ScoreSettings: {
        "out": "runs/score", "train": None, "dev": None, "label": "LOC", "embeddings": "default",
        "trust_pickle": False, "window": 2, "hidden": 300, "layers": 1, "activation": "tanh", "casing_dim": 10,
        "random_embed_dim": 50, "max_pretrained": 0, "unk_replace": 0.5, "corrupt_per_true": 20, "margin": 1.0,
        "epochs": 60, "patience": 10, "batch_size": 32, "optimizer": "adam", "lr": 0.001, "embed_lr_scale": 1.0,
        "dropout": 0.5, "hidden_dropout": 0.0, "l2": 0.0, "seed": 0, "resume": False, "quiet": False,
        "overwrite": False, "keep_checkpoint": False},
    LMSettings: {
        "out": "runs/lm", "corpus": "brown", "min_count": None, "max_vocab": None, "context": 5, "embed_dim": 100,
        "hidden": "200", "direct": False, "output": "classes", "classes": 512, "epochs": 6, "patience": 3,
        "batch_size": 128, "optimizer": "adam", "lr": 0.002, "adam_eps": 1e-05, "lr_decay": 0.5, "average": 0.25,
        "word_noise": 0.0, "dropout": 0.25, "hidden_dropout": 0.25, "l2": 0.0001, "seed": 0, "resume": False,
        "quiet": False, "overwrite": False, "keep_checkpoint": False},
}
OLD_HIDDEN_SIZES = {NERSettings: (300,), ScoreSettings: (300,), LMSettings: (200,)}
# Settings added or retuned since then: the tagger's character windows; the LM's context and epochs (issue 14,
# chosen on valid perplexity).
OLD_DEFAULTS[LMSettings].update({"context": 16, "epochs": 8})
OLD_DEFAULTS[NERSettings].update({"char_filters": 50, "char_dim": 25, "char_width": 3, "loss": "word",
                                  "context_code": "none", "forget": 0.7})

# What each train command's --help showed before its options were generated from the settings: option names,
# the default shown and the range. --hidden was `int, min 1` for the tagger and scorer; its sizes are now text
# ("300", "400,100") checked by the settings (test_hidden_on_the_command_line).
OLD_OPTIONS = {
    "ner": {
        "out": ("--out -o", None, ""), "train": ("--train", None, ""), "dev": ("--dev", None, ""),
        "embeddings": ("--embeddings", "default", ""), "trust_pickle": ("--trust-pickle", False, ""),
        "window": ("--window", 2, "0.."), "hidden": ("--hidden", "300", ""), "layers": ("--layers", 1, "0.."),
        "activation": ("--activation", "tanh", ""), "casing_dim": ("--casing-dim", 10, "0.."),
        "max_pretrained": ("--max-pretrained", 0, "0.."), "unk_replace": ("--unk-replace", 0.5, "0.0..1.0"),
        "epochs": ("--epochs", 30, "1.."), "patience": ("--patience", 5, "1.."),
        "batch_size": ("--batch-size", 32, "1.."), "optimizer": ("--optimizer", "adam", ""),
        "lr": ("--lr", 0.001, "0.0.."), "embed_lr_scale": ("--embed-lr-scale", 1.0, "0.0.."),
        "dropout": ("--dropout", 0.5, "0.0..0.99"), "hidden_dropout": ("--hidden-dropout", 0.0, "0.0..0.99"),
        "l2": ("--l2", 0.0, "0.0.."), "l1": ("--l1", 0.0, "0.0.."), "scheme": ("--scheme", "iobes", ""),
        "decode": ("--decode", "viterbi", ""), "seed": ("--seed", 0, "0..4294967295"),
        "resume": ("--resume --no-resume", False, ""), "quiet": ("--quiet -q", False, ""),
        "overwrite": ("--overwrite --no-overwrite", False, ""),
        "keep_checkpoint": ("--keep-checkpoint --no-keep-checkpoint", False, "")},
    "score": {
        "out": ("--out -o", None, ""), "train": ("--train", None, ""), "dev": ("--dev", None, ""),
        "label": ("--label", "LOC", ""), "embeddings": ("--embeddings", "default", ""),
        "trust_pickle": ("--trust-pickle", False, ""), "window": ("--window", 2, "0.."),
        "hidden": ("--hidden", "300", ""), "layers": ("--layers", 1, "0.."),
        "activation": ("--activation", "tanh", ""), "casing_dim": ("--casing-dim", 10, "0.."),
        "max_pretrained": ("--max-pretrained", 0, "0.."), "unk_replace": ("--unk-replace", 0.5, "0.0..1.0"),
        "corrupt_per_true": ("--corrupt-per-true", 20, "1.."), "margin": ("--margin", 1.0, "0.0.."),
        "epochs": ("--epochs", 60, "1.."), "patience": ("--patience", 10, "1.."),
        "batch_size": ("--batch-size", 32, "1.."), "optimizer": ("--optimizer", "adam", ""),
        "lr": ("--lr", 0.001, "0.0.."), "embed_lr_scale": ("--embed-lr-scale", 1.0, "0.0.."),
        "dropout": ("--dropout", 0.5, "0.0..0.99"), "hidden_dropout": ("--hidden-dropout", 0.0, "0.0..0.99"),
        "l2": ("--l2", 0.0, "0.0.."), "seed": ("--seed", 0, "0..4294967295"),
        "resume": ("--resume --no-resume", False, ""),
        "overwrite": ("--overwrite --no-overwrite", False, ""),
        "keep_checkpoint": ("--keep-checkpoint --no-keep-checkpoint", False, ""),
        "quiet": ("--quiet -q", False, "")},
    "lm": {
        "out": ("--out -o", None, ""), "corpus": ("--corpus", "brown", ""),
        "min_count": ("--min-count", None, "1.."), "max_vocab": ("--max-vocab", None, "2.."),
        "context": ("--context", 5, "1.."), "embed_dim": ("--embed-dim", 100, "1.."),
        "hidden": ("--hidden", "200", ""), "direct": ("--direct --no-direct", False, ""),
        "output": ("--output", "classes", ""), "classes": ("--classes", 512, "0.."), "epochs": ("--epochs", 6, "1.."),
        "patience": ("--patience", 3, "1.."),
        "batch_size": ("--batch-size", 128, "1.."), "optimizer": ("--optimizer", "adam", ""),
        "lr": ("--lr", 0.002, "0.0.."), "adam_eps": ("--adam-eps", 1e-05, "0.0.."),
        "lr_decay": ("--lr-decay", 0.5, "0.0..1.0"), "average": ("--average", 0.25, "0.0.."),
        "word_noise": ("--word-noise", 0.0, "0.0..0.99"), "dropout": ("--dropout", 0.25, "0.0..0.99"),
        "hidden_dropout": ("--hidden-dropout", 0.25, "0.0..0.99"), "l2": ("--l2", 0.0001, "0.0.."),
        "seed": ("--seed", 0, "0..4294967295"), "resume": ("--resume --no-resume", False, ""),
        "overwrite": ("--overwrite --no-overwrite", False, ""),
        "keep_checkpoint": ("--keep-checkpoint --no-keep-checkpoint", False, ""), "quiet": ("--quiet -q", False, "")},
}
OLD_OPTIONS["lm"].update({"context": ("--context", 16, "1.."), "epochs": ("--epochs", 8, "1..")})
OLD_OPTIONS["ner"].update({"char_filters": ("--char-filters", 50, "0.."), "char_dim": ("--char-dim", 25, "1.."),
                           "char_width": ("--char-width", 3, "1.."), "loss": ("--loss", "word", ""),
                           "context_code": ("--context-code", "none", ""), "forget": ("--forget", 0.7, "0.0..1.0")})
# Settings added since then: the weight average, the LM's before, now shared (off by default for the others).
OLD_DEFAULTS[NERSettings]["average"] = OLD_DEFAULTS[ScoreSettings]["average"] = 0.0
OLD_OPTIONS["ner"]["average"] = OLD_OPTIONS["score"]["average"] = ("--average", 0.0, "0.0..")
# The tagger's average on by default since (2 epochs: CoNLL-2003 dev F1, issue 13).
OLD_DEFAULTS[NERSettings]["average"] = 2.0
OLD_OPTIONS["ner"]["average"] = ("--average", 2.0, "0.0..")
# Document codes on by default since (CoNLL-2003 and WikiGold dev F1, issue 13), with their two settings.
OLD_DEFAULTS[NERSettings].update({"context_code": "document", "occurrences": 6, "alone": 0.0})
OLD_OPTIONS["ner"].update({"context_code": ("--context-code", "document", ""),
                           "occurrences": ("--occurrences", 6, "1.."), "alone": ("--alone", 0.0, "0.0..1.0")})
# The document vote on entity types, off by default (it lowered CoNLL-2003 dev F1; WikiGold's pipeline sets it).
OLD_DEFAULTS[NERSettings]["consistency"] = "none"
OLD_OPTIONS["ner"]["consistency"] = ("--consistency", "none", "")
TRAINERS = {"ner": ("winner.heads.ner", "train_tagger"), "score": ("winner.heads.scorer", "train_scorer"),
            "lm": ("winner.heads.lm", "train_lm")}


# ---------------------------------------------------------------- defaults


@pytest.mark.parametrize("cls", list(OLD_DEFAULTS))
def test_defaults_are_the_old_ones(cls):
    old, new = dict(OLD_DEFAULTS[cls]), asdict(cls())
    assert new.pop("hidden") == OLD_HIDDEN_SIZES[cls] and old.pop("hidden") is not None
    assert new == old
    assert all(type(new[k]) is type(v) for k, v in old.items())
    assert cls().hidden_sizes() == OLD_HIDDEN_SIZES[cls]


def test_default_embeddings_are_the_data_layers():
    from winner.data.embeddings import DEFAULT_EMBEDDINGS

    assert NERSettings().embeddings == ScoreSettings().embeddings == DEFAULT_EMBEDDINGS


def test_values_are_coerced_and_checked_on_construction():
    s = NERSettings(epochs="3", lr=1, resume="true", hidden="400, 100", activation="relu", out=Path("x"))
    assert (s.epochs, s.lr, s.resume, s.hidden, s.out) == (3, 1.0, True, (400, 100), "x")
    assert isinstance(s.lr, float) and s.hidden_sizes() == (400, 100)
    assert NERSettings(hidden=300, layers=2).hidden_sizes() == (300, 300)
    assert NERSettings(layers=0).hidden_sizes() == ()
    assert ScoreSettings(hidden=[8]).hidden == (8,) and LMSettings(hidden="0").hidden_sizes() == ()
    assert LMSettings(hidden=0).hidden == () and LMSettings(min_count="2").min_count == 2
    for kw, message in [({"epochs": 0}, "epochs expects an integer >= 1, got 0"),
                        ({"epochs": "x"}, "epochs expects an integer"), ({"epochs": 2.5}, "epochs expects an integer"),
                        ({"dropout": 1.0}, "dropout expects a number in [0.0, 0.99]"),
                        ({"activation": "gelu"}, "activation expects one of tanh, sigmoid, relu"),
                        ({"quiet": "maybe"}, "quiet expects true or false"), ({"hidden": "0"}, "hidden sizes"),
                        ({"hidden": "400,100", "layers": 3}, "layers repeats a single hidden size")]:
        with pytest.raises(BadSettingError, match=message.replace("[", r"\[")):
            NERSettings(**kw)
    with pytest.raises(TypeError):
        NERSettings("runs/x")  # keyword-only: the field order is the CLI's business


def test_parse_sizes():
    assert parse_sizes("400,100") == (400, 100) and parse_sizes(7) == (7,) and parse_sizes([3, 2]) == (3, 2)
    assert parse_sizes("0") == () and parse_sizes("") == ()
    for bad in ("0", "", [0]):
        with pytest.raises(ValueError, match="positive"):
            parse_sizes(bad, none_ok=False)
    with pytest.raises(ValueError, match="sizes like"):
        parse_sizes(True)


# ---------------------------------------------------------------- the train commands


def _train_options(head: str) -> dict[str, tuple[str, object, str]]:
    command = typer.main.get_command(app).commands[head].commands["train"]
    options = {}
    for p in command.params:
        if p.name == "help":
            continue
        lo, hi = getattr(p, "min", None), getattr(p, "max", None)
        default = p.default.value if isinstance(p.default, Enum) else p.default
        rng = "" if lo is None and hi is None else f"{'' if lo is None else lo}..{'' if hi is None else hi}"
        options[p.name] = (" ".join([*p.opts, *p.secondary_opts]), default, rng)
    return options


@pytest.mark.parametrize("head", list(OLD_OPTIONS))
def test_train_options_are_the_old_ones(head):
    assert _train_options(head) == {"config": ("--config -c", None, ""), **OLD_OPTIONS[head]}  # + a settings file
    shown = runner.invoke(app, [head, "train", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    for flags, _, _ in OLD_OPTIONS[head].values():
        for flag in flags.split():
            assert f" {flag} " in shown.output, flag


def test_help_texts_come_from_the_settings():
    shown = {h: runner.invoke(app, [h, "train", "--help"], env={"COLUMNS": "200"}).output for h in OLD_OPTIONS}
    assert "Maximum epochs (one epoch = every true window once)." in shown["score"]
    assert "Weight decay (L2 penalty on weights, not biases)." in shown["lm"]
    assert "L2 penalty on weights (not biases)." in shown["ner"]
    assert "Run directory: model/, metrics.jsonl, summary.json." in shown["lm"]
    assert "[default: (2)]" in shown["lm"]  # --min-count's default is told, not eaten as markup


@pytest.mark.parametrize(("head", "args", "sizes"), [
    ("ner", [], (300,)), ("ner", ["--hidden", "300", "--layers", "2"], (300, 300)),
    ("ner", ["--hidden", "400,100"], (400, 100)), ("score", ["--layers", "0"], ()), ("score", ["--hidden", "8"], (8,)),
    ("lm", [], (200,)), ("lm", ["--hidden", "400,100"], (400, 100)), ("lm", ["--hidden", "0"], ())])
def test_hidden_on_the_command_line(head, args, sizes, monkeypatch, tmp_path):
    import importlib

    seen = []
    monkeypatch.setattr(importlib.import_module(TRAINERS[head][0]), TRAINERS[head][1], seen.append)
    result = runner.invoke(app, [head, "train", "--out", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    assert seen[-1].hidden_sizes() == sizes and seen[-1].out == str(tmp_path)


@pytest.mark.parametrize(("head", "args", "message"), [
    ("ner", ["--hidden", "0"], "error: --hidden sizes must be positive, got '0'"),
    ("score", ["--hidden", "big"], "error: --hidden expects sizes like 200 or 400,100, got 'big'"),
    ("ner", ["--hidden", "4,4", "--layers", "3"], "error: --layers repeats a single hidden size")])
def test_bad_hidden_on_the_command_line_is_one_line(head, args, message, tmp_path):
    result = runner.invoke(app, [head, "train", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1


def test_choices_reach_the_settings_as_text(monkeypatch, tmp_path):
    import winner.heads.ner as ner

    seen = []
    monkeypatch.setattr(ner, "train_tagger", seen.append)
    (tmp_path / "checkpoint").mkdir()  # something to --resume
    (tmp_path / "checkpoint" / "state.json").write_text("{}")
    result = runner.invoke(app, ["ner", "train", "-o", str(tmp_path), "--activation", "relu", "--optimizer", "sgd",
                                 "--scheme", "iob2", "--decode", "argmax", "-q", "--resume"])
    assert result.exit_code == 0, result.output
    s = seen[-1]
    assert (s.activation, s.optimizer, s.scheme, s.decode, s.quiet, s.resume) == ("relu", "sgd", "iob2", "argmax",
                                                                                  True, True)
    assert all(type(v) is str for v in (s.activation, s.optimizer, s.scheme, s.decode))
    assert runner.invoke(app, ["ner", "train", "-o", str(tmp_path), "--activation", "gelu"]).exit_code == 2


def test_help_imports_no_numerics():
    code = "import sys, winner.cli.app; print(sorted({'numpy', 'numba', 'gensim', 'datasets'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- winner run --set and pipeline values


def _pipeline(tmp_path: Path, **train: object) -> Path:
    data = FIXTURES / "wikigold_sample.txt"
    options = {"train": str(data), "dev": str(data), "embeddings": "none", "hidden": 4, "epochs": 5, "patience": 9,
               "quiet": True, **train}
    lines = [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    toml = tmp_path / "p.toml"
    toml.write_text(f'name = "tiny"\nout = "{tmp_path / "run"}"\n[[step]]\nrun = "ner train"\n' + "\n".join(lines)
                    + f'\n[[step]]\nrun = "ner evaluate"\ndata = "{data}"\n')
    return toml


def test_set_changes_the_epochs_a_pipeline_trains(tmp_path):
    result = runner.invoke(app, ["run", str(_pipeline(tmp_path)), "--set", "epochs=2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "pipeline_summary.json").read_text())
    train = summary["steps"][0]
    assert train["options"]["epochs"] == 2 and train["result"]["epochs_run"] == 2
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_set_applies_to_every_train_step_that_has_the_setting():
    from winner.cli.pipeline import load_pipeline

    _, out, steps = load_pipeline(REPO / "pipelines" / "brown_lm.toml",
                                  {"seed": "5", "hidden": "400,100", "word_noise": "0.1"})
    options = dict(steps[:1] + steps[2:])
    assert options["lm train"] == {"corpus": "brown", "seed": 5, "hidden": (400, 100), "word_noise": 0.1}
    assert steps[1][1] == {**options["lm train"], "context": 8, "into": "context8"}
    assert options["lm generate"]["seed"] == "1"  # not a train step: its own seed
    assert out.name == "brown_lm_seed5"  # and the variable


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "epoch=2"], "error: --set epoch: "),
    (["--set", "epochs=0"], "error: --set epochs=0: epochs expects an integer >= 1, got 0"),
    (["--set", "l1=x"], "error: --set l1=x: l1 expects a number, got 'x'")])
def test_bad_set_is_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["run", str(_pipeline(tmp_path)), *args])
    assert result.exit_code == 1 and result.stderr.startswith(message), result.output
    assert len(result.stderr.splitlines()) == 1
    if "epoch=" in args[1]:
        assert "epochs" in result.stderr and "layers" in result.stderr  # the valid keys are listed
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("train", "message"), [
    ({"epochs": -1}, "step 1 (ner train): epochs expects an integer >= 1, got -1"),
    ({"epochs": "x"}, "step 1 (ner train): epochs expects an integer, got 'x'"),
    ({"dropout": 2}, "step 1 (ner train): dropout expects a number in [0.0, 0.99], got 2.0"),
    ({"scheme": "bio"}, "step 1 (ner train): scheme expects one of iob1, iob2, iobes, got 'bio'"),
    ({"epoch": 3}, "step 1 (ner train): unknown option(s) epoch; expected some of ")])
def test_bad_pipeline_value_is_one_line(tmp_path, train, message):
    toml = _pipeline(tmp_path, **train)
    result = runner.invoke(app, ["run", str(toml)])
    assert result.exit_code == 1 and result.stderr.startswith(f"error: {toml} {message}"), result.output
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_settings_from_options_names_where():
    from winner.cli.steps import settings_from_options

    with pytest.raises(WinnerError, match=r"^here: patience expects an integer >= 1, got 0$"):
        settings_from_options(LMSettings, {"patience": "0"}, "here")
    assert settings_from_options(LMSettings, {"max_vocab": "50", "direct": "true"}, "here").max_vocab == 50
