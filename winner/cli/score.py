"""`winner score ...`: train the max-margin window scorer, rank the windows of raw text, evaluate."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from winner.cli.common import (
    EvalDataOption,
    JsonTableFlag,
    RunDirArgument,
    TextArgument,
    cli_errors,
    read_sentences,
    train_command,
)

score_app = typer.Typer(no_args_is_help=True, help="Max-margin window scorer: is the centre word of a window an "
                                                   "entity of one type (LOC by default)?")


train_command(score_app, "score")


@score_app.command("windows")
@cli_errors
def windows_cmd(
    run_dir: RunDirArgument,
    text: TextArgument = "-",
    top: Annotated[int | None, typer.Option(min=1, help="Show only the N best windows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of {window, centre, score, sentence, "
                                                         "position} instead of the table.")] = False,
) -> None:
    """Score every window of the text and list them best first, the centre word between square brackets.

    In the table, * marks scores at or above the model's stored threshold.
    """
    from winner.heads.scorer import format_windows, load_scorer, rank_windows

    sentences = read_sentences(text, "score")
    scorer = load_scorer(run_dir)
    records = rank_windows(scorer, sentences, top)
    if as_json:
        typer.echo(json.dumps(records, ensure_ascii=False))
    else:
        typer.echo(format_windows(records, scorer.spec.threshold))


@score_app.command("evaluate")
@cli_errors
def evaluate_cmd(
    run_dir: RunDirArgument,
    data: EvalDataOption,
    as_json: JsonTableFlag = False,
) -> None:
    """ROC-AUC and average precision over all windows; token-level precision, recall, F1 at the stored threshold."""
    from winner.heads.scorer import evaluate_scorer, format_evaluation

    result = evaluate_scorer(run_dir, data)
    if as_json:
        keys = ("auc", "average_precision", "precision", "recall", "f1", "threshold", "label", "windows", "positives")
        typer.echo(json.dumps({k: result[k] for k in keys}))
    else:
        typer.echo(format_evaluation(result))
