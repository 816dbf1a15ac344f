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
    html = "html"


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
) -> None:
    """Entity-level precision, recall and F1 per type (seqeval, conlleval-compatible)."""
    from winner.heads.ner import evaluate_tagger, format_report

    scores = evaluate_tagger(run_dir, data, plot)
    if as_json:
        typer.echo(json.dumps({k: scores[k] for k in ("precision", "recall", "f1", "per_type")}))
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
    output_format: Annotated[OutputFormat, typer.Option("--format", help="token/tag lines, JSON spans or a "
                                                                           "self-contained HTML page.")
                             ] = OutputFormat.conll,
    input_format: Annotated[InputFormat, typer.Option(help="How to read INPUT (auto: CoNLL if it parses as "
                                                           "CoNLL, else raw text).")] = InputFormat.auto,
) -> None:
    """Tag raw text or a CoNLL file."""
    from winner.heads.ner import read_input, tag_sentences

    fmt = input_format.value
    if input_path == "-":
        if fmt == "conll":
            raise WinnerError("--input-format conll needs a file, not standard input")
        sentences = read_input(None, sys.stdin.read(), "text")
    else:
        path = Path(input_path)
        if not path.is_file():
            raise WinnerError(f"{path}: no such file")
        if fmt == "auto":
            fmt = "conll" if _parses_as_conll(path) else "text"
        sentences = read_input(str(path), path.read_text(encoding="utf-8") if fmt == "text" else None, fmt)
    if output_format is OutputFormat.html:
        from winner.heads.render import tag_page

        typer.echo(tag_page(run_dir, sentences), nl=False)
        return
    typer.echo(tag_sentences(run_dir, sentences, output_format.value), nl=False)


def _parses_as_conll(path: Path) -> bool:
    try:
        read_conll(path)
        return True
    except DataFormatError:
        return False
