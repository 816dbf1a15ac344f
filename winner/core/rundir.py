"""A run directory's lifecycle: what winner writes in it, and when a training run may use it.

A new run needs a directory that holds no run yet; `--resume` continues the one there from its checkpoint, and
`--overwrite` replaces it, removing only the files winner writes (never a file of the user's). Before either,
a swap or a save that a kill interrupted is recovered and its temporaries removed (winner.core.atomic).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from winner.core.atomic import remove_stale_temporaries
from winner.errors import WinnerError

# What a run writes in its directory: the model, the checkpoint, and files.
RUN_DIRS = {"model": {"config.json", "params.npz", "vocab.json"},
            "checkpoint": {"params.npz", "optimizer.npz", "state.json"}}
RUN_FILES = ("metrics.jsonl", "summary.json", "learning_curve.png", "pipeline_summary.json")
HOW = "pass --resume to continue it, --overwrite to replace it (in a pipeline: --set overwrite=true), or another --out"


def prepare_run_dir(out: str | Path, resume: bool = False, overwrite: bool = False) -> Path:
    """Check that a training run may write in `out`, recover what a kill left there, and create it.

    Refuses (one-line WinnerError): an empty path, a path that is a file, a directory holding a run unless
    `resume` or `overwrite`, `resume` with no checkpoint, files of the user's inside model/ or checkpoint/,
    and a directory winner cannot write in."""
    if str(out).strip() in ("", "."):  # typer reads --out '' as "."
        raise WinnerError("--out is empty or the current directory; name a run directory")
    out = Path(out)
    if resume and overwrite:
        raise WinnerError("--resume and --overwrite contradict each other; pass one")
    if out.exists() and not out.is_dir():
        raise WinnerError(f"{out}: exists and is not a directory; --out needs a run directory")
    if out.is_dir():
        _check_writable(out)
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
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WinnerError(f"{out}: cannot create the run directory ({e.strerror})") from None
    _check_writable(out)
    return out


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
