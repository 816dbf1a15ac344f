"""Expected failures: bad input files, wrong model kinds, missing data.

The CLI prints these as one line on stderr and exits 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class WinnerError(Exception):
    """An expected, user-facing failure with a one-line message; the CLI exits with `exit_code`."""

    exit_code = 1


class UsageError(WinnerError):
    """A command line the command cannot run (an option's value, options that contradict each other): exit 2,
    as click's own usage errors."""

    exit_code = 2


class RunInUseError(WinnerError):
    """Another process is training in the run directory."""


class DataFormatError(WinnerError):
    """A malformed input file: the message reads `PATH:LINE: what was expected, what was found`."""

    def __init__(self, path: str | Path, line: int, message: str):
        self.path = str(path)
        self.line = line
        self.detail = message
        super().__init__(f"{path}:{line}: {message}")

    def __reduce__(self):
        """Picklable with its three fields (a Ray worker's error must reach the driver as itself)."""
        return type(self), (self.path, self.line, self.detail)


class ModelFormatError(WinnerError):
    """A model directory that is missing files, has the wrong kind, or has mismatched shapes."""


class DivergenceError(WinnerError):
    """Training diverged (a non-finite loss, or one far above chance); the last good model was kept."""


class SettingError(WinnerError, ValueError):
    """An environment setting (WINNER_THREADS, WINNER_BLAS) with a value the core cannot use."""
