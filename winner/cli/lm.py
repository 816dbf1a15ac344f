"""`winner lm ...`: train the fixed-window neural language model, measure perplexity, generate text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from winner.cli.common import RunDirArgument, choice_enum, cli_errors, train_command

lm_app = typer.Typer(no_args_is_help=True, help="Fixed-window neural language model (Bengio et al. 2003).")


Split = choice_enum("split", ("train", "valid", "test"))


train_command(lm_app, "lm")


@lm_app.command("perplexity")
@cli_errors
def perplexity_cmd(
    run_dir: RunDirArgument,
    split: Annotated[Split, typer.Option(help="Split of the training corpus, read as one stream after the "
                                              "splits before it.")] = Split.valid,
    text: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Plain-text file instead of a "
                                                                              "split (tokenised like prompts).")
                    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"perplexity": p, "tokens": n}.')] = False,
) -> None:
    """Exact perplexity (full softmax, every token counted, <unk> included)."""
    from winner.heads.lm import evaluate_lm

    result = evaluate_lm(run_dir, split.value, text)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        where = str(text) if text else f"{split.value} split"
        typer.echo(f"perplexity {result['perplexity']:.2f} on {result['tokens']:,} tokens ({where})")


@lm_app.command("generate")
@cli_errors
def generate_cmd(
    run_dir: RunDirArgument,
    prompt: Annotated[str, typer.Option(help="Text to continue, tokenised like the training text; unknown words "
                                             "are read as <unk>.")] = "",
    n: Annotated[int, typer.Option("-n", "--words", min=0, help="Words to generate.")] = 50,
    temperature: Annotated[float, typer.Option(min=0.0, help="Softmax temperature; 0 = greedy (always the most "
                                                             "likely word).")] = 1.0,
    top_k: Annotated[int, typer.Option(min=0, help="Sample among the k most likely words only (0 = all).")] = 0,
    seed: Annotated[int, typer.Option(help="Sampling seed: the same seed gives the same text.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print prompt tokens, words and text as JSON.")] = False,
) -> None:
    """Continue a prompt word by word (never <unk>; a <text> marker starts a new paragraph)."""
    from winner.heads.lm import generate_text

    result = generate_text(run_dir, prompt, n, temperature, top_k, seed)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    if result["unknown"]:
        typer.echo(f"note: not in the vocabulary, read as <unk>: {' '.join(result['unknown'])}", err=True)
    typer.echo(result["text"])
