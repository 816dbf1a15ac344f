"""`winner ner ...`: train, evaluate and apply the softmax NER tagger."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from winner.cli.common import EvalDataOption, JsonTableFlag, RunDirArgument, cli_errors, train_command
from winner.data.conll import read_conll
from winner.errors import DataFormatError, WinnerError

ner_app = typer.Typer(no_args_is_help=True, help="Named-entity tagging with the softmax window tagger.")


class OutputFormat(str, Enum):
    conll = "conll"
    json = "json"


class InputFormat(str, Enum):
    auto = "auto"
    text = "text"
    conll = "conll"


train_command(ner_app, "ner")


@ner_app.command("evaluate")
@cli_errors
def evaluate_cmd(
    run_dir: RunDirArgument,
    data: EvalDataOption,
    as_json: JsonTableFlag = False,
    plot: Annotated[Path | None, typer.Option(help="Also write a token confusion matrix PNG here.")] = None,
    predictions: Annotated[Path | None, typer.Option(dir_okay=False, help="Also write the data with the "
                                                                          "predicted tags as a last column "
                                                                          "(conlleval's input) here.")] = None,
    split: Annotated[str, typer.Option(help="The split of a dataset with splits (test, validation, train).")
                     ] = "test",
) -> None:
    """Entity-level precision, recall and F1 per type (seqeval, conlleval-compatible), entity counts, the macro
    average and token accuracy."""
    from winner.heads.ner import evaluate_tagger, format_report

    scores = evaluate_tagger(run_dir, data, plot, predictions, split)
    if as_json:
        keys = ("precision", "recall", "f1", "per_type", "macro", "token_accuracy", "sentences", "tokens")
        typer.echo(json.dumps({k: scores[k] for k in keys}))
    else:
        typer.echo(format_report(scores))
        if plot:
            typer.echo(f"confusion matrix: {plot}")


@ner_app.command("tag")
@cli_errors
def tag_cmd(
    run_dir: RunDirArgument,
    input_path: Annotated[str, typer.Argument(metavar="[INPUT|-]", help="Text file (one sentence per line), "
                                                                        "CoNLL file, or - for stdin.")] = "-",
    output_format: Annotated[OutputFormat, typer.Option("--format", help="token/tag lines or JSON spans.")
                             ] = OutputFormat.conll,
    input_format: Annotated[InputFormat, typer.Option(help="How to read INPUT (auto: CoNLL if it parses as "
                                                           "CoNLL, else raw text).")] = InputFormat.auto,
) -> None:
    """Tag raw text or a CoNLL file.

    Text: one or more sentences per line, tokenised as CoNLL-2003 is; JSON gives each entity's start_char and
    end_char in its line. CoNLL: the file comes back whole with the predicted tag as a last column, so
    conlleval can score it.
    """
    from winner.heads.ner import tag_conll, tag_text

    fmt = input_format.value
    if input_path == "-":
        if fmt == "conll":
            raise WinnerError("--input-format conll needs a file, not standard input")
        typer.echo(tag_text(run_dir, sys.stdin.read(), output_format.value), nl=False)
        return
    path = Path(input_path)
    if not path.is_file():
        raise WinnerError(f"{path}: no such file")
    if fmt == "auto":
        fmt = "conll" if _parses_as_conll(path) else "text"
    if fmt == "conll":
        typer.echo(tag_conll(run_dir, path, output_format.value), nl=False)
    else:
        typer.echo(tag_text(run_dir, path.read_text(encoding="utf-8"), output_format.value), nl=False)


def _parses_as_conll(path: Path) -> bool:
    try:
        read_conll(path)
        return True
    except DataFormatError:
        return False
