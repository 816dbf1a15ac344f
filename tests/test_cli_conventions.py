"""Command-line conventions: --version, -h, python -m winner, completion, defaults in help, plain unwrapped help and
logs when output is not a terminal, and the notice while kernels compile on a first run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import winner
from winner.cli.app import app
from winner.core import console as console_module
from winner.data.resources import wikigold_path

WINNER = str(Path(sys.executable).with_name("winner"))  # the installed command, without PATH

runner = CliRunner()


def test_version_from_the_command_and_python_m():
    for args in ([WINNER, "--version"], [sys.executable, "-m", "winner", "--version"], [WINNER, "-V"]):
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == f"winner {winner.__version__}", (args, out.stderr)


def test_short_help_everywhere_and_completion():
    for args in ([], ["ner"], ["ner", "train"], ["lm", "generate"], ["score", "windows"]):
        result = runner.invoke(app, [*args, "-h"])
        assert result.exit_code == 0 and "Usage:" in result.stdout, args
    assert "--install-completion" in runner.invoke(app, ["-h"]).stdout


def test_piped_help_is_plain_and_keeps_every_default_on_its_line():
    out = subprocess.run([WINNER, "ner", "train", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "╭" not in out.stdout  # no rich panels cut to 80 columns
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip().startswith("--")}
    assert lines["--window"].rstrip().endswith("[default: 2; x>=0]")
    assert "'none'.  [default: default]" in lines["--embeddings"]
    assert all("[default:" in line for name, line in lines.items() if name in ("--lr", "--epochs", "--dropout"))


def test_piped_training_log_lines_are_not_wrapped(tmp_path):
    args = [WINNER, "ner", "train", "--train", str(wikigold_path("dev")), "--dev", str(wikigold_path("test")),
            "--out", str(tmp_path / "a-long-run-directory-name-to-push-the-summary-line-past-eighty-columns"),
            "--embeddings", "none", "--hidden", "8", "--epochs", "1", "--quiet"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    done = [line for line in out.stderr.splitlines() if line.startswith("done:")]
    assert len(done) == 1 and done[0].rstrip().endswith("/model") and len(done[0]) > 80
    card = (Path(args[args.index("--out") + 1]) / "README.md").read_text()
    assert "\nwinner ner train --train " in card  # the model card records the command line


def test_first_run_compilation_gets_a_notice(monkeypatch, capsys):
    monkeypatch.setattr(console_module, "kernels_cached", lambda: False)
    with console_module.compiling_notice():
        pass
    assert "compiling the numeric kernels (first run only" in capsys.readouterr().err
    monkeypatch.setattr(console_module, "kernels_cached", lambda: True)
    with console_module.compiling_notice():
        pass
    assert capsys.readouterr().err == ""


def test_init_config_then_train_from_it_with_overrides(tmp_path):
    config = tmp_path / "ner.toml"
    result = runner.invoke(app, ["init", "config", str(config)])
    assert result.exit_code == 0, result.output
    text = config.read_text()
    for name in ("out", "embeddings", "hidden", "epochs", "batch_size", "scheme", "decode", "seed"):
        assert f"\n{name} = " in text, name
    assert runner.invoke(app, ["init", "config", str(config)]).exit_code == 1  # no silent overwrite
    text = (text.replace('out = "runs/ner"', f'out = "{tmp_path / "run"}"').replace('embeddings = "default"',
            'embeddings = "none"').replace('hidden = "300"', 'hidden = "8"').replace("epochs = 30", "epochs = 1"))
    config.write_text(text + f'train = "{wikigold_path("dev")}"\ndev = "{wikigold_path("test")}"\n')
    result = runner.invoke(app, ["ner", "train", "--config", str(config), "--hidden", "6", "--quiet"])
    assert result.exit_code == 0, result.output
    model = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    settings = model["training"]["settings"]
    assert (settings["hidden"], settings["epochs"], settings["embeddings"]) == ([6], 1, "none")  # CLI wins
    assert model["winner_version"] == winner.__version__
    card = (tmp_path / "run" / "README.md").read_text()
    assert f"winner {winner.__version__}" in card and "| PER |" in card
    assert str(wikigold_path("dev")) in card


def test_config_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("epoch = 3\n")
    result = runner.invoke(app, ["ner", "train", "-c", str(bad), "-o", str(tmp_path / "r")])
    assert result.exit_code == 1 and "unknown setting(s) epoch" in result.stderr
    bad.write_text('hidden = "x"\n')
    result = runner.invoke(app, ["ner", "train", "-c", str(bad), "-o", str(tmp_path / "r")])
    assert result.exit_code == 1 and f"{bad}: hidden expects sizes" in result.stderr
    result = runner.invoke(app, ["ner", "train", "--epochs", "1"])
    assert result.exit_code == 2 and "missing option --out" in result.stderr  # a usage error


def test_kernels_cached_looks_where_numba_puts_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not console_module.kernels_cached()
    here = os.path.dirname(os.path.abspath(console_module.__file__))
    entry = tmp_path / f"core_{hashlib.sha1(here.encode()).hexdigest()}"  # numba's UserProvidedCacheLocator
    entry.mkdir()
    (entry / "layers.relu-12.py311.nbi").write_bytes(b"")
    assert console_module.kernels_cached()
