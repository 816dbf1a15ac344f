"""Terminal output: one rich console on stderr (stdout stays for results) and a quiet-aware progress bar."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True, highlight=False, soft_wrap=True)  # piped logs: one line each, never cut at 80


def kernels_cached() -> bool:
    """Whether numba's cache already holds compiled core kernels (else the first kernel calls compile them,
    which takes a minute or more: worth a notice). Looks where numba's cache locators put them: under
    NUMBA_CACHE_DIR as `core_<sha1 of this directory>`, else in `__pycache__` beside the sources."""
    here = os.path.dirname(os.path.abspath(__file__))
    base = os.environ.get("NUMBA_CACHE_DIR")
    if base:
        where = Path(base) / f"{os.path.basename(here)}_{hashlib.sha1(here.encode()).hexdigest()}"
    else:
        where = Path(here) / "__pycache__"
    return any(where.glob("*.nbi"))


@contextmanager
def compiling_notice(quiet: bool = False) -> Iterator[None]:
    """A one-line notice (and a spinner on a terminal) while numba compiles the kernels on a first run; nothing
    when they come from numba's cache."""
    if quiet or kernels_cached():
        yield
        return
    message = "compiling the numeric kernels (first run only: a minute or two, then cached)"
    if not console.is_terminal:
        console.print(message + " ...")
        yield
        return
    with console.status(message):
        yield


@contextmanager
def progress_bar(label: str, total: int, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """Yields advance(n). Shows a bar only on a terminal and when not quiet."""
    if quiet or not console.is_terminal:
        yield lambda n: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as p:
        task = p.add_task(label, total=total)
        yield lambda n: p.advance(task, n)
