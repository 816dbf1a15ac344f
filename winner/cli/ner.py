"""`winner ner ...`: train, evaluate and apply the softmax NER tagger."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from winner.cli.common import EvalDataOption, JsonTableFlag, RunDirArgument, choice_enum, cli_errors, train_command
from winner.core.console import console
from winner.data.stream import resolve_sources
from winner.heads.settings import CONSISTENCY

ner_app = typer.Typer(no_args_is_help=True, help="Named-entity tagging with the softmax window tagger.")


class OutputFormat(str, Enum):
    conll = "conll"
    json = "json"
    html = "html"


class InputFormat(str, Enum):
    auto = "auto"
    text = "text"
    conll = "conll"


Consistency = choice_enum("consistency", CONSISTENCY)


ConsistencyOption = Annotated[Consistency | None, typer.Option(
    help="Decode with this consistency instead of the model's own (document: one entity type per name in a "
         "document, the vote after decoding).")]

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
    consistency: ConsistencyOption = None,
) -> None:
    """Entity-level precision, recall and F1 per type (seqeval, conlleval-compatible), entity counts, the macro
    average and token accuracy."""
    from winner.heads.ner import evaluate_tagger, format_report

    scores = evaluate_tagger(run_dir, data, plot, predictions, split, consistency.value if consistency else None)
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
    inputs: Annotated[list[str] | None, typer.Argument(
        metavar="[INPUT...|-]", help="Files, directories or globs (plain or .gz): one sentence per line or CoNLL; "
                                     "- for standard input.")] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output file (- for standard output).")] = "-",
    output_format: Annotated[OutputFormat, typer.Option("--format", help="token/tag lines, JSON spans or a "
                                                                           "self-contained HTML page.")
                             ] = OutputFormat.conll,
    input_format: Annotated[InputFormat, typer.Option(help="How to read INPUT (auto: CoNLL if its first lines are "
                                                           "CoNLL, else raw text).")] = InputFormat.auto,
    paragraphs: Annotated[bool, typer.Option("--paragraphs", help="Raw text: the lines up to a blank line form one "
                                                                  "document, which document codes and the "
                                                                  "consistency vote read (default: each line is "
                                                                  "one).")] = False,
    workers: Annotated[int, typer.Option(min=0, help="Tag on N Ray workers (0: in this process). Needs the "
                                                     "'ray' extra.")] = 0,
    address: Annotated[str | None, typer.Option(help="Ray cluster to use (auto, ray://host:port); default: "
                                                     "start Ray on this machine.")] = None,
    chunk_mb: Annotated[float, typer.Option(min=0.001, help="With --workers: input bytes per chunk, in MB.")
                        ] = 2.0,
    driver_tags: Annotated[bool, typer.Option(help="With --workers and a local Ray: this process tags chunks "
                                                   "while Ray and its workers start.")] = True,
    consistency: ConsistencyOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress or summary on stderr.")] = False,
) -> None:
    """Tag text or CoNLL files of any size, streaming: the output is written in input order as it is tagged."""
    vote = consistency.value if consistency else None
    sources = resolve_sources(inputs or ["-"], input_format.value, paragraphs)
    if workers or address:
        from winner.scale.tagging import tag_on_ray

        counts = tag_on_ray(run_dir, sources, out, output_format.value, workers or None, address,
                            int(chunk_mb * 1e6), quiet, driver_tags=driver_tags, consistency=vote)
    else:
        from winner.heads.tagging import tag_files

        counts = tag_files(run_dir, sources, out, output_format.value, quiet, vote)
    if not quiet:
        console.print(f"tagged {counts.sentences:,} sentences, {counts.tokens:,} tokens in {counts.seconds:.1f}s "
                      f"({counts.words_per_second:,.0f} words/s end to end)")
