"""Shared test set-up: the numerical core initialised once, as every model does before its first kernel call."""

from __future__ import annotations

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
