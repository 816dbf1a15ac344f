"""Terminal output: one rich console on stderr (stdout stays for results) and a quiet-aware progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from winner.core.interrupt import check_stop

console = Console(stderr=True, highlight=False)


@contextmanager
def progress_bar(label: str, total: int, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """Yields advance(n). Shows a bar only on a terminal and when not quiet. advance() is where a Ctrl-C or
    SIGTERM stops training (winner.core.interrupt): between stretches of work, never inside a write."""
    if quiet or not console.is_terminal:
        yield lambda n: check_stop()
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as p:
        task = p.add_task(label, total=total)

        def advance(n: int) -> None:
            p.advance(task, n)
            check_stop()

        yield advance
