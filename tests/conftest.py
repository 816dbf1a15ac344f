"""Shared test set-up: the numerical core initialised once, as every model does before its first kernel call."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from winner.core import runtime


@pytest.fixture(scope="session", autouse=True)
def core_ready() -> None:
    """Tests call kernels directly too, so the core's one initialisation runs before any of them."""
    runtime.init()


@pytest.fixture(scope="session")
def small_tagger(tmp_path_factory):
    """A tagger trained briefly on the shipped WikiGold training split (random embeddings): small, but it finds
    names like John Smith. Trained in-process once per session for the explain, page and server tests."""
    from typer.testing import CliRunner

    from winner.cli.app import app
    from winner.data.resources import wikigold_path

    out = tmp_path_factory.mktemp("small_tagger")
    result = CliRunner().invoke(app, ["ner", "train", "--train", str(wikigold_path("train")), "--dev",
                                      str(wikigold_path("dev")), "--embeddings", "none", "--hidden", "32",
                                      "--epochs", "4", "--batch-size", "16", "--seed", "0", "--quiet", "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    return out


@contextmanager
def running_server(run_dir: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """`winner serve RUN --port 0` in a new process, as users start it; yields it and the port it printed."""
    proc = subprocess.Popen(["winner", "serve", str(run_dir), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # blocks until the server is listening (or has died)
        assert line.startswith("serving on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        yield proc, int(line.split(":")[2].split("/")[0])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def start_server():
    """`running_server`, for the tests of `winner serve` and of its page in a browser."""
    return running_server


@pytest.fixture(scope="session")
def tiny_tagger(small_tagger):
    """small_tagger's model directory, for tests that tag and only need some trained model."""
    return small_tagger / "model"
