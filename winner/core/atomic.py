"""Write files and directories so that a crash, a kill -9 or a power cut never leaves half of one behind.

A directory is written into a hidden temporary sibling (`.NAME.XXXX.tmp`), fsynced, then swapped in with two
renames through `.NAME.old`. A kill between the renames leaves `.NAME.old` and no `NAME`: `recover_dir` (run
before every write and by every reader of a run directory) renames it back. Temporaries of a killed write are
removed by `remove_stale_temporaries` when a run starts again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from winner.errors import WinnerError


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    with open_atomic(path) as f:
        f.write(text)


@contextlib.contextmanager
def open_atomic(path: str | Path) -> Iterator[TextIO]:
    """A text file to write that appears at `path` (with the usual mode) only once the block ends without error."""
    with _temporary_beside(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as f:
        yield f


def write_file_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    """Let `write` create a temporary file beside `path` (a writer that takes a path, such as gensim's), then
    rename it over `path`."""
    with _temporary_beside(path) as tmp:
        write(tmp)


@contextlib.contextmanager
def _temporary_beside(path: str | Path) -> Iterator[Path]:
    """A temporary file's path beside `path`, renamed over `path` when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; give them the usual mode
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        _raise_write_error(path, e)
        raise


def old_name(path: Path) -> Path:
    """Where write_dir_atomic parks the previous `path` during its swap."""
    return path.with_name(f".{path.name}.old")


def recover_dir(path: str | Path) -> None:
    """Finish or undo a swap that a kill interrupted: `.NAME.old` without `NAME` becomes `NAME` again; beside
    a complete `NAME` it is a leftover and is removed."""
    path = Path(path)
    old = old_name(path)
    if not old.is_dir() or old.is_symlink():
        return
    if path.exists() or path.is_symlink():
        shutil.rmtree(old)
    else:
        os.replace(old, path)
        fsync_dir(path.parent)


def write_dir_atomic(path: str | Path, fill: Callable[[Path], None]) -> None:
    """Let `fill` write a directory's files into a temporary sibling, then swap it in for `path`.

    The old directory (if any) is replaced only after the new one is complete and on disk; at every moment
    either `path` or `.path.old` holds a complete directory. A symlink at `path` is replaced, its target left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        fill(tmp)
        fsync_tree(tmp)
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        if path.exists():
            old = old_name(path)
            os.replace(path, old)
            os.replace(tmp, path)
            fsync_dir(path.parent)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
            fsync_dir(path.parent)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_write_error(path, e)
        raise


def _raise_write_error(path: Path, e: BaseException) -> None:
    """A failing file system (full, read-only, no permission) as one line naming what was being written."""
    if isinstance(e, OSError):
        kept = " (the previous one is unchanged)" if path.exists() else ""
        raise WinnerError(f"{path}: cannot write it: {e.strerror or e}{kept}") from None


def remove_stale_temporaries(directory: str | Path, names: tuple[str, ...]) -> None:
    """Remove the temporaries a killed write of one of `names` left in `directory` (`.NAME.*.tmp`), and
    recover any interrupted swap of them."""
    directory = Path(directory)
    for name in names:
        recover_dir(directory / name)
        for tmp in directory.glob(f".{name}.*.tmp*"):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def fsync_tree(path: Path) -> None:
    """fsync every file in a directory, then the directory itself."""
    for child in path.iterdir():
        if child.is_file():
            fsync_file(child)
    fsync_dir(path)


def fsync_file(path: Path) -> None:
    """Make a written file's contents, or the renames in a directory, survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_file  # the same call: a directory's fsync makes its renames durable


def save_figure(fig, path: str | Path, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG through a temporary sibling file, then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.is_dir():
        raise WinnerError(f"{path}: is a directory; name a .png file to draw into")
    if path.exists() and not _is_png(path):
        raise WinnerError(f"{path}: exists and is not a PNG; winner does not overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    except OSError as e:  # a full or read-only disk: one line naming the picture, as every other write does
        _raise_write_error(path, e)
        raise
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def _is_png(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
