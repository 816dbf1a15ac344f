"""What every CLI module shares: turning expected failures into one line on stderr and exit code 1."""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

import typer

from winner.errors import WinnerError

F = TypeVar("F", bound=Callable)


def cli_errors(fn: F) -> F:
    """Decorate a command so that a WinnerError prints `error: ...` on stderr and exits 1, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WinnerError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


class Activation(str, Enum):
    """Hidden-layer activations of the core (choices for every head's --activation)."""

    tanh = "tanh"
    sigmoid = "sigmoid"
    relu = "relu"


class OptimizerName(str, Enum):
    """Optimisers of the core (choices for every head's --optimizer)."""

    sgd = "sgd"
    adam = "adam"
