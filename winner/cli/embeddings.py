"""`winner embeddings ...`: a trained model's word vectors out (word2vec format) and its nearest words."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from winner.cli.common import RunDirArgument, cli_errors

embeddings_app = typer.Typer(no_args_is_help=True, help="A trained model's (fine-tuned) word vectors.")


@embeddings_app.command("export")
@cli_errors
def export_cmd(
    run_dir: RunDirArgument,
    out: Annotated[Path, typer.Argument(dir_okay=False, help="The word2vec file to write.")],
    binary: Annotated[bool, typer.Option("--binary", help="word2vec binary format instead of text.")] = False,
) -> None:
    """Write the model's embedding table in word2vec format (gensim's KeyedVectors.load_word2vec_format reads it)."""
    from winner.heads.vectors import export_vectors

    n = export_vectors(run_dir, out, binary)
    typer.echo(f"{n:,} words -> {out}", err=True)


@embeddings_app.command("neighbors")
@cli_errors
def neighbors_cmd(
    run_dir: RunDirArgument,
    word: Annotated[str, typer.Argument(help="A word of the model's vocabulary.")],
    n: Annotated[int, typer.Option("-n", "--number", min=1, help="How many neighbours.")] = 10,
) -> None:
    """The words nearest to WORD in the model's embedding space (cosine similarity), one per line."""
    from winner.heads.vectors import nearest_words

    for w, score in nearest_words(run_dir, word, n):
        typer.echo(f"{score:.4f}\t{w}")
