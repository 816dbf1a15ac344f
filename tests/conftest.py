"""Shared test set-up: the numerical core initialised once, as every model does before its first kernel call."""

from __future__ import annotations

import pytest

from winner.core import runtime


@pytest.fixture(scope="session", autouse=True)
def core_ready() -> None:
    """Tests call kernels directly too, so the core's one initialisation runs before any of them."""
    runtime.init()


@pytest.fixture(scope="session")
def tiny_tagger(tmp_path_factory):
    """A tagger trained for one epoch on the shipped WikiGold dev split (random embeddings, 8 hidden units):
    its tags are poor, which is all that tagging tests need."""
    from typer.testing import CliRunner

    from winner.cli.app import app
    from winner.data.resources import wikigold_path

    out = tmp_path_factory.mktemp("tiny_tagger")
    result = CliRunner().invoke(app, ["ner", "train", "--train", str(wikigold_path("dev")), "--dev",
                                      str(wikigold_path("test")), "--out", str(out), "--embeddings", "none",
                                      "--hidden", "8", "--epochs", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    return out / "model"
