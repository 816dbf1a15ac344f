"""Shared test set-up: the numerical core initialised once, as every model does before its first kernel call."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

from winner.core import runtime

WINNER = str(Path(sys.executable).with_name("winner"))  # the installed command, without PATH

# The modules that take longest (cold numba cache); pytest-xdist hands whole modules to its two workers in
# collection order, so these go first and the short ones fill in at the end. test_hostile's tiny runs train in
# subprocesses with a timeout, so it comes after modules that compile the training kernels into the cache.
LONGEST_FIRST = ("test_cross_process.py", "test_api.py", "test_resume.py", "test_hostile.py", "test_chars.py",
                 "test_scale.py", "test_sentence_loss.py", "test_embeddings.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run LONGEST_FIRST's modules first; every other module, and every module's own tests, keep their order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker (and every `winner` it starts) keeps numba to one thread unless
    WINNER_THREADS says otherwise: two workers each splitting products over both cores would put four busy
    threads on CI's two. Tests of thread counts set them themselves; test_cross_process clears the variable."""
    if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("WINNER_THREADS"):
        os.environ["WINNER_THREADS"] = "1"


@pytest.fixture(scope="session", autouse=True)
def core_ready() -> None:
    """Tests call kernels directly too, so the core's one initialisation runs before any of them."""
    runtime.init()


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The directory `name`, filled by `build` once per test session even when pytest-xdist runs the tests in
    several worker processes: the first worker to need it builds it under a file lock, the others wait for it
    and reuse it. Only for what tests read and never change (a trained run, shared inputs)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's directory, above each worker's own
    out, done = root / name, root / f"{name}.built"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            shutil.rmtree(out, ignore_errors=True)  # a build that failed half-way is redone
            out.mkdir()
            build(out)
            done.touch()
    return out


def _train_small_tagger(out: Path) -> None:
    from typer.testing import CliRunner

    from winner.cli.app import app
    from winner.data.resources import wikigold_path

    result = CliRunner().invoke(app, ["ner", "train", "--train", str(wikigold_path("train")), "--dev",
                                      str(wikigold_path("dev")), "--embeddings", "none", "--hidden", "32",
                                      "--epochs", "4", "--batch-size", "16", "--seed", "0", "--average", "0",
                                      "--quiet", "--out", str(out)])  # raw weights: 4 epochs are too few to average
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def small_tagger(tmp_path_factory):
    """A tagger trained briefly on the shipped WikiGold training split (random embeddings): small, but it finds
    names like John Smith. Trained in-process once per session for the explain, page, server and API tests."""
    return built_once(tmp_path_factory, "small_tagger", _train_small_tagger)


@contextmanager
def running_server(run_dir: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """`winner serve RUN --port 0` in a new process, as users start it; yields it and the port it printed."""
    proc = subprocess.Popen([WINNER, "serve", str(run_dir), "--port", "0"], stdout=subprocess.PIPE,
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
