"""Resuming after `kill -9`, for every head: the installed `winner` command trains with a checkpoint after
each epoch; one run is killed with SIGKILL as soon as epoch 2's checkpoint is on disk, then resumed with
--resume. metrics.jsonl must hold epochs 1, 2, 3 exactly once, and the learning rates, scores and final
parameters must be those of a run that was never interrupted (same seed, same bits)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from winner.data.resources import brown_stream_path, wikigold_path

pytestmark = pytest.mark.slow

WINNER = str(Path(sys.executable).with_name("winner"))


def _lm_corpus(root: Path) -> Path:
    with gzip.open(brown_stream_path("train"), "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(4000)]
    path = root / "corpus.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _commands(root: Path) -> dict[str, list[str]]:
    train, dev = str(wikigold_path("train")), str(wikigold_path("dev"))
    # small window models: what is checked is the checkpoint and the resume, not what a model learns
    window = ["--train", train, "--dev", dev, "--embeddings", "none", "--hidden", "16", "--patience", "10", "--quiet"]
    return {
        "ner": ["ner", "train", *window, "--char-filters", "8", "--char-dim", "5"],
        "score": ["score", "train", *window, "--label", "LOC"],
        # a high learning rate: valid perplexity gets worse in epoch 2, so epoch 3 runs at half the rate
        # (the full softmax, 4 words, no decay: the settings under which this corpus shows that schedule)
        "lm": ["lm", "train", "--corpus", str(_lm_corpus(root)), "--hidden", "32", "--embed-dim", "16",
               "--output", "full", "--context", "4", "--l2", "0",
               "--lr", "0.1", "--lr-decay", "0.5", "--patience", "10", "--quiet"],
    }


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _checkpoint_epoch(run: Path) -> int:
    try:
        return json.loads((run / "checkpoint" / "state.json").read_text())["loop"]["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def _train_and_kill_after_epoch_2(args: list[str]) -> None:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = Path(args[args.index("--out") + 1])
    deadline = time.monotonic() + 300
    while _checkpoint_epoch(run) < 2:
        assert process.poll() is None, "training ended before its epoch-2 checkpoint"
        assert time.monotonic() < deadline, "no epoch-2 checkpoint within 300 s"
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert _checkpoint_epoch(run) == 2, "epoch 3 finished before the kill; the test needs slower epochs"


@pytest.mark.parametrize("head", ["ner", "score", "lm"])
def test_kill_after_epoch_2_then_resume_matches_an_uninterrupted_run(head, tmp_path):
    args = [WINNER, *_commands(tmp_path)[head], "--epochs", "3", "--seed", "3"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run([*args, "--out", str(straight)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    _train_and_kill_after_epoch_2([*args, "--out", str(killed)])
    resumed = subprocess.run([*args, "--out", str(killed), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a, b = _metrics(straight), _metrics(killed)
    assert [r["epoch"] for r in b] == [1, 2, 3]
    assert [r["lr"] for r in b] == [r["lr"] for r in a]
    assert [r["next_lr"] for r in b] == [r["next_lr"] for r in a]
    assert [r["loss"] for r in b] == [r["loss"] for r in a]
    with np.load(straight / "model" / "params.npz") as x, np.load(killed / "model" / "params.npz") as y:
        for k in x.files:
            np.testing.assert_array_equal(x[k], y[k], err_msg=f"{head}: {k} differs after resuming")
    if head == "lm":
        assert [r["lr"] for r in a] == [0.1, 0.1, 0.05], "the schedule must act between epochs 2 and 3"
