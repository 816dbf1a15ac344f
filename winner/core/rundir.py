"""A run directory's lifecycle: what winner writes in it, and when a training run may use it.

A new run needs a directory that holds no run yet; `--resume` continues the one there from its checkpoint, and
`--overwrite` replaces it, removing only the files winner writes (never a file of the user's). Before either,
a swap or a save that a kill interrupted is recovered and its temporaries removed (winner.core.atomic).

One training at a time per directory: `prepare_run_dir` takes an exclusive lock (flock on RUN/.winner.lock,
which holds the holder's pid) before it changes anything, and a second training, resume or overwrite there is
refused naming the holder. The kernel drops a flock when its process dies, even by kill -9, so the lock of a
killed run is simply taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from winner.core.atomic import remove_stale_temporaries
from winner.errors import RunInUseError, UsageError, WinnerError

# What a run writes in its directory: the model, the checkpoint, and files.
RUN_DIRS = {"model": {"config.json", "params.npz", "vocab.json"},
            "checkpoint": {"params.npz", "optimizer.npz", "state.json"}}
RUN_FILES = ("metrics.jsonl", "summary.json", "learning_curve.png", "pipeline_summary.json")
LOCK_NAME = ".winner.lock"
_held: dict[Path, tuple[int, int]] = {}  # run directory -> (lock file descriptor, times taken by this process)
HOW = "pass --resume to continue it, --overwrite to replace it (in a pipeline: --set overwrite=true), or another --out"


def prepare_run_dir(out: str | Path, resume: bool = False, overwrite: bool = False) -> Path:
    """Check that a training run may write in `out`, recover what a kill left there, and create it.

    Refuses (one-line WinnerError): an empty path, a path that is a file, a directory holding a run unless
    `resume` or `overwrite`, `resume` with no checkpoint, files of the user's inside model/ or checkpoint/,
    a directory winner cannot write in, and one another process trains in. The caller holds the directory's
    lock until it calls `release_run_dir(out)`."""
    if str(out).strip() in ("", "."):  # typer reads --out '' as "."
        raise WinnerError("--out is empty or the current directory; name a run directory")
    out = Path(out)
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other; pass one")
    if out.exists() and not out.is_dir():
        raise WinnerError(f"{out}: exists and is not a directory; --out needs a run directory")
    created = not out.exists()
    if out.is_dir():
        _check_writable(out)
    elif not resume:
        _make_dir(out)
    else:
        raise WinnerError(f"{out}: nothing to resume, no such directory; run without --resume")
    lock_run_dir(out)
    try:
        _prepare_locked(out, resume, overwrite)
    except BaseException:
        release_run_dir(out)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return out


@contextlib.contextmanager
def training_run_dir(out: str | Path, resume: bool = False, overwrite: bool = False) -> Iterator[Path]:
    """prepare_run_dir(), and the directory's lock held until the block ends."""
    path = prepare_run_dir(out, resume, overwrite)
    try:
        yield path
    finally:
        release_run_dir(path)


def _prepare_locked(out: Path, resume: bool, overwrite: bool) -> None:
    """prepare_run_dir's checks and clean-up, with the directory locked."""
    remove_stale_temporaries(out, (*RUN_DIRS, *RUN_FILES))
    _refuse_foreign_files(out)
    held = run_contents(out)
    if resume:
        if not (out / "checkpoint" / "state.json").is_file():
            done = " (the run finished: summary.json is there)" if (out / "summary.json").is_file() else ""
            raise WinnerError(f"{out}: nothing to resume, no checkpoint{done}; run without --resume")
    elif held and not overwrite:
        raise WinnerError(f"{out}: already holds a run ({', '.join(held)}); {HOW}")
    elif held:
        remove_run(out)


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WinnerError(f"{out}: cannot create the run directory ({e.strerror})") from None
    _check_writable(out)


def lock_run_dir(out: Path) -> None:
    """Take the run directory's lock for this process (again, if it holds it: taken and released in pairs), or
    raise RunInUseError naming the process that holds it."""
    key = out.resolve()
    if key in _held:
        fd, count = _held[key]
        _held[key] = (fd, count + 1)
        return
    path = out / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise WinnerError(f"{path}: cannot create the run's lock file ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise RunInUseError(f"{out}: another winner process (pid {holder}) is training in this run directory; "
                                f"wait for it to end or stop it, or use another --out") from None
        try:  # the holder before us may have removed the file we locked: lock the one at the path
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = (fd, 1)


def release_run_dir(out: str | Path) -> None:
    """Give back a lock taken by lock_run_dir; the last release removes the lock file."""
    key = Path(out).resolve()
    if key not in _held:
        return
    fd, count = _held.pop(key)
    if count > 1:
        _held[key] = (fd, count - 1)
        return
    with contextlib.suppress(OSError):
        os.unlink(key / LOCK_NAME)
    os.close(fd)


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "unknown"
    except (OSError, UnicodeDecodeError):
        return "unknown"


def run_contents(out: Path) -> list[str]:
    """The names of what a run wrote that are in `out`."""
    return [n for n in (*RUN_DIRS, *RUN_FILES) if (out / n).exists() or (out / n).is_symlink()]


def remove_run(out: Path) -> None:
    """Remove what a run wrote in `out` (and nothing else)."""
    for name in RUN_DIRS:
        path = out / name
        if path.is_symlink():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def _refuse_foreign_files(out: Path) -> None:
    """model/ and checkpoint/ are replaced whole; a file winner did not write there would be lost."""
    for name, known in RUN_DIRS.items():
        path = out / name
        if path.is_dir() and not path.is_symlink():
            foreign = sorted(p.name for p in path.iterdir() if p.name not in known)
            if foreign:
                raise WinnerError(f"{path}: holds {', '.join(foreign[:3])}, which winner did not write and would "
                                  f"replace; move it out of the run directory first")


def _check_writable(out: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=out, prefix=".winner-write-test."):
            pass
    except OSError as e:
        raise WinnerError(f"{out}: cannot write in the run directory ({e.strerror or e})") from None


def remove_checkpoint(out: Path) -> None:
    """A finished run's checkpoint is removed (it is as big as the model and its optimiser state together)."""
    path = out / "checkpoint"
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
