"""What every CLI module shares: turning expected failures into one line on stderr and exit code 1."""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, TypeVar

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


# Options that every head reading labelled sentences (tagger, scorer) takes with the same meaning.
RunDirOption = Annotated[Path, typer.Option("--out", "-o", help="Run directory: model/, metrics.jsonl, plots.")]
EmbeddingsOption = Annotated[str, typer.Option(help="Pretrained vectors: a word2vec (text or binary) or GloVe "
                                                    "file, a gensim-downloader name already on disk, 'default' "
                                                    "(word2vec on the shipped Brown text) or 'none'.")]
TrustPickleOption = Annotated[bool, typer.Option("--trust-pickle", help="Allow --embeddings to be a gensim native "
                                                                        "(pickle) file; this RUNS CODE inside the "
                                                                        "file — only for files you made yourself.")]
WindowOption = Annotated[int, typer.Option(min=0, help="Half-width w: windows of 2w+1 words.")]
HiddenOption = Annotated[int, typer.Option(min=1, help="Units per hidden layer.")]
LayersOption = Annotated[int, typer.Option(min=0, help="Hidden layers.")]
ActivationOption = Annotated[Activation, typer.Option(help="Hidden activation.")]
CasingDimOption = Annotated[int, typer.Option(min=0, help="Size of the casing feature embedding (0: none).")]
MaxPretrainedOption = Annotated[int, typer.Option(min=0, help="Most frequent pretrained words added to the "
                                                              "vocabulary beside the training words (0: all).")]
UnkReplaceOption = Annotated[float, typer.Option(min=0.0, max=1.0, help="Chance that a use of a word seen once in "
                                                                        "training and without a pretrained vector "
                                                                        "is shown as <unk> (trains <unk>).")]
