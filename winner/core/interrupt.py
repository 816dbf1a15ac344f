"""Stopping training cleanly on Ctrl-C (SIGINT) or SIGTERM.

While `stop_on_signals()` is active, a first signal only sets a flag; training checks it between stretches of
minibatches (`check_stop`, called by every progress update) and after each epoch, so nothing is ever stopped
half-written. A second signal acts as usual (KeyboardInterrupt, or termination).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from winner.errors import WinnerError

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested: list[int] = []  # the signal received, if any


class Interrupted(WinnerError):
    """Training stopped on a signal; the exit code is the shell's for that signal (130, 143)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopRequested(Exception):
    """Raised where training may stop; fit() turns it into Interrupted with what was kept."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handle(signum: int, frame) -> None:
    _requested.append(signum)
    signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT / SIGTERM request a stop instead of ending the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    _requested.clear()
    for s in _SIGNALS:
        signal.signal(s, _handle)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _requested.clear()


def check_stop() -> None:
    """Raise StopRequested if a stop was requested: call it only where stopping loses nothing but work."""
    if _requested:
        raise StopRequested(_requested[0])
