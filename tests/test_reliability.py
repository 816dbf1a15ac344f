"""Runs never lose work, failed training says so, every bad input gets one clear line: drills through the
installed `winner` command in fresh processes (signals, a save killed between its renames, an existing run
directory, divergence). The families of bad files, models, options and pipelines are tests/test_hostile.py's
(the cases of scripts/hostile_drill.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from winner.core.atomic import save_figure
from winner.data.conll import scheme_violations
from winner.data.resources import wikigold_path
from winner.errors import WinnerError

WINNER = str(Path(sys.executable).with_name("winner"))
TINY = ["--train", str(wikigold_path("dev")), "--dev", str(wikigold_path("test")), "--embeddings", "none",
        "--hidden", "16", "--batch-size", "16", "--average", "0", "--quiet"]  # each epoch a better model


def winner(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([WINNER, *args], capture_output=True, text=True, input=stdin, timeout=600)


def assert_one_line_error(done: subprocess.CompletedProcess, *words: str, code: int = 1) -> str:
    """Exit `code`, no traceback, and exactly one line on stderr naming each of `words`."""
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) >= 1 and lines[-1].startswith("error: "), done.stderr
    assert [line for line in lines if line.startswith("error")] == [lines[-1]]
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    return lines[-1]


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    done = winner("ner", "train", *TINY, "--epochs", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


# ---------------------------------------------------------------- the run directory


def test_an_existing_run_is_refused_and_left_as_it_was(run_copy):
    before = snapshot(run_copy)
    done = winner("ner", "train", *TINY, "--epochs", "1", "--out", str(run_copy))
    assert_one_line_error(done, str(run_copy), "--resume", "--overwrite")
    assert snapshot(run_copy) == before


def test_overwrite_replaces_only_what_winner_wrote(run_copy):
    (run_copy / "notes.txt").write_text("mine")
    (run_copy / "model" / "mine.txt").write_text("mine too")
    done = winner("ner", "train", *TINY, "--epochs", "1", "--out", str(run_copy), "--overwrite")
    assert_one_line_error(done, "mine.txt", "did not write")
    (run_copy / "model" / "mine.txt").unlink()
    done = winner("ner", "train", *TINY, "--epochs", "1", "--out", str(run_copy), "--overwrite")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run_copy / "notes.txt").read_text() == "mine"
    assert [json.loads(line)["epoch"] for line in (run_copy / "metrics.jsonl").read_text().splitlines()] == [1]
    assert not (run_copy / "checkpoint").exists(), "a finished run removes its checkpoint"


def test_resume_with_nothing_to_resume_says_so(run_copy, tmp_path):
    assert_one_line_error(winner("ner", "train", *TINY, "--out", str(run_copy), "--resume"), "nothing to resume",
                          "finished")
    assert_one_line_error(winner("ner", "train", *TINY, "--out", str(tmp_path / "new"), "--resume"),
                          "nothing to resume")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("out", ["", ".", "file"])
def test_an_out_that_is_no_run_directory_is_refused(out, tmp_path):
    (tmp_path / "file").write_text("keep me")
    done = subprocess.run([WINNER, "ner", "train", *TINY, "--out", out], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert_one_line_error(done, "--out" if out != "file" else "not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert (tmp_path / "file").read_text() == "keep me"


def test_a_save_killed_between_its_renames_is_recovered(run_copy, tmp_path):
    """The state a kill -9 between the swap's two renames leaves: `.model.old` and no `model/`, plus the
    temporaries of killed saves. Readers find the model; the next run recovers and removes the leftovers."""
    os.replace(run_copy / "model", run_copy / ".model.old")
    (run_copy / ".model.abc123.tmp").mkdir()
    (run_copy / ".model.abc123.tmp" / "params.npz").write_bytes(b"half")
    (run_copy / ".metrics.jsonl.xyz.tmp").write_text("half")
    sentences = tmp_path / "s.txt"
    sentences.write_text("John Smith flew to Paris .\n")
    done = winner("ner", "tag", str(run_copy), str(sentences))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run_copy / "model" / "params.npz").is_file() and not (run_copy / ".model.old").exists()
    done = winner("ner", "train", *TINY, "--epochs", "1", "--out", str(run_copy), "--overwrite")
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in run_copy.iterdir() if p.name.startswith(".")) == []


# ---------------------------------------------------------------- signals and divergence


def _checkpoint_epoch(run: Path) -> int:
    try:
        return json.loads((run / "checkpoint" / "state.json").read_text())["loop"]["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_training_keeping_the_checkpoint_and_says_how_to_resume(sig, code, tmp_path):
    out = tmp_path / "run"
    args = [WINNER, "ner", "train", *TINY, "--epochs", "40", "--patience", "40", "--out", str(out)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _checkpoint_epoch(out) < 2:
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    done = subprocess.CompletedProcess(args, process.returncode, "", stderr)
    line = assert_one_line_error(done, "--resume", str(out / "checkpoint"), code=code)
    stopped = _checkpoint_epoch(out)
    assert stopped >= 2 and f"after epoch {stopped}" in line
    assert (out / "model" / "params.npz").is_file()
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs[:stopped] == list(range(1, stopped + 1))

    resumed = winner("ner", "train", *TINY, "--epochs", str(stopped + 1), "--patience", "40", "--out", str(out),
                     "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, stopped + 2))


def test_divergence_in_epoch_1_fails_and_claims_no_model(tmp_path):
    out = tmp_path / "run"
    line = assert_one_line_error(winner("ner", "train", *TINY, "--epochs", "3", "--lr", "1e6", "--out", str(out)),
                                 "diverged in epoch 1", "smaller --lr", "No model was kept")
    assert "kept in" not in line
    assert not (out / "model").exists() and not (out / "summary.json").exists()


# ---------------------------------------------------------------- bad inputs, one line each


def _broken_checkpoint(run: Path) -> None:
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    del state["loop"]
    (run / "checkpoint" / "state.json").write_text(json.dumps(state))


def test_a_checkpoint_with_missing_keys_is_one_line(tmp_path):
    out = tmp_path / "run"
    done = winner("ner", "train", *TINY, "--epochs", "1", "--keep-checkpoint", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    _broken_checkpoint(out)
    assert_one_line_error(winner("ner", "train", *TINY, "--epochs", "2", "--out", str(out), "--resume"),
                          "state.json", "loop")


def test_plot_never_overwrites_a_file_it_did_not_write(trained, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for plot, word in ((victim, "not a PNG"), (tmp_path, "is a directory")):
        done = winner("ner", "evaluate", str(trained), "--data", str(wikigold_path("test")), "--plot", str(plot))
        assert_one_line_error(done, word)
    assert victim.read_text() == "precious"


# ---------------------------------------------------------------- tag sequences invalid in their scheme


@pytest.mark.parametrize(("tags", "scheme", "count"), [
    (["O", "I-PER", "I-PER", "O"], "iob2", 1),  # I- after O
    (["B-PER", "I-LOC"], "iob2", 1),  # I- of another type
    (["B-PER", "I-PER", "O", "B-LOC"], "iob2", 0),
    (["O", "E-PER", "O"], "iobes", 1),  # E- without B-
    (["B-PER", "O"], "iobes", 1),  # left open
    (["B-PER", "I-PER"], "iobes", 1),  # open at the end
    (["B-PER", "E-PER", "S-LOC", "O"], "iobes", 0),
    (["I-PER", "B-PER", "O", "B-LOC"], "iob1", 1),  # B- not after its own type
])
def test_tags_breaking_their_scheme_are_counted(tags, scheme, count):
    assert scheme_violations([tags], scheme)[0] == count


def test_a_corpus_breaking_its_scheme_is_read_with_one_warning(trained, tmp_path):
    data = tmp_path / "bad.conll"
    data.write_text("John B-PER\nSmith I-PER\nin O\nParis I-LOC\n\nRome B-LOC\nis O\nnice I-MISC\n\nAnn B-PER\n")
    done = winner("ner", "evaluate", str(trained), "--data", str(data), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "2 tag(s) break the iob2 scheme" in warnings[0], done.stderr
    assert json.loads(done.stdout)["per_type"]["LOC"]["support"] == 2  # conlleval: I-LOC after O opens one


# ---------------------------------------------------------------- degenerate inputs


def test_training_data_without_entities_is_refused(tmp_path):
    data = tmp_path / "plain.conll"
    data.write_text("Nothing O\nhere O\n\nnor O\nthere O\n")
    done = winner("ner", "train", *TINY, "--train", str(data), "--out", str(tmp_path / "run"))
    assert_one_line_error(done, str(data), "no entities")


def test_an_lm_vocabulary_of_only_unk_is_refused(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"word{i} other{i} thing{i} .\n" for i in range(300)))
    done = winner("lm", "train", "--corpus", str(corpus), "--min-count", "5", "--out", str(tmp_path / "run"), "-q")
    assert_one_line_error(done, "<unk>", "--max-vocab")


# ---------------------------------------------------------------- full and read-only disks


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (needs root and mount; skipped otherwise), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and mount to make a small file system")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_picture_that_cannot_be_written_is_one_line_naming_it(tmp_path, monkeypatch):
    """The learning curve is the last write of a training: a full disk there names the picture too."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    monkeypatch.setattr(fig, "savefig", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    path = tmp_path / "learning_curve.png"
    with pytest.raises(WinnerError, match=f"^{path}: cannot write it: No space left on device$"):
        save_figure(fig, path)
    assert list(tmp_path.iterdir()) == []


def test_a_full_or_read_only_disk_is_one_line_and_the_run_stays_intact(small_disk):
    out = small_disk / "run"
    done = winner("ner", "train", *TINY, "--epochs", "1", "--keep-checkpoint", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    before = {k: v for k, v in snapshot(out).items() if k.startswith(("model", "checkpoint"))}
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "ballast").write_bytes(b"0" * (free - 100_000))
    done = winner("ner", "train", *TINY, "--epochs", "2", "--resume", "--out", str(out))
    assert_one_line_error(done, str(out / "model"), "No space left on device", "unchanged")
    assert {k: v for k, v in snapshot(out).items() if k.startswith(("model", "checkpoint"))} == before

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    assert_one_line_error(winner("ner", "train", *TINY, "--epochs", "2", "--resume", "--out", str(out)),
                          str(out), "Read-only file system")
    assert_one_line_error(winner("ner", "train", *TINY, "--out", str(small_disk / "new")),
                          str(small_disk / "new"), "Read-only file system")
