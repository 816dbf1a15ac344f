"""`winner lm ...`: train the fixed-window neural language model, measure perplexity, generate text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from winner.cli.common import RunDirArgument, choice_enum, cli_errors, train_command
from winner.core.rundir import training_run_dir

lm_app = typer.Typer(no_args_is_help=True, help="Fixed-window neural language model (Bengio et al. 2003).")


Split = choice_enum("split", ("train", "valid", "test"))


train_command(lm_app, "lm")


@lm_app.command("perplexity")
@cli_errors
def perplexity_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(exists=True, file_okay=False,
                                                   help="Run or model directories (neural or n-gram); several are "
                                                        "mixed linearly.")],
    split: Annotated[Split, typer.Option(help="Split of the training corpus, read as one stream after the "
                                              "splits before it.")] = Split.valid,
    text: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Plain-text file instead of a "
                                                                              "split (tokenised like prompts).")
                    ] = None,
    mix_weights: Annotated[str, typer.Option(help="Mixture weights, one per model (like 0.7,0.3), or 'auto': fitted "
                                                  "by EM on the valid split.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help='Print {"perplexity": p, "tokens": n} (and the mixture\'s '
                                                         '"weights" and "each" model\'s perplexity).')] = False,
) -> None:
    """Exact perplexity (every token counted, <unk> included) of a model or of a linear mixture of models."""
    from winner.heads.mixture import evaluate_mixture

    result = evaluate_mixture(run_dirs, split.value, mix_weights, text)
    if as_json:
        typer.echo(json.dumps(result))
        return
    where = str(text) if text else f"{split.value} split"
    typer.echo(f"perplexity {result['perplexity']:.2f} on {result['tokens']:,} tokens ({where})")
    if "weights" in result:
        for r, w, p in zip(run_dirs, result["weights"], result["each"], strict=True):
            typer.echo(f"  weight {w:.3f}  {r} (alone: {p:.2f})")


@lm_app.command("ngram")
@cli_errors
def ngram_cmd(
    out: Annotated[Path, typer.Option(help="Run directory: model/ and summary.json.")],
    order: Annotated[int, typer.Option(min=1, help="n of the n-gram model.")] = 5,
    corpus: Annotated[str, typer.Option(help="'brown' or a plain-text corpus, as for `lm train` (its vocabulary "
                                             "rules too).")] = "brown",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run already in OUT (only the files "
                                                                "winner wrote).")] = False,
) -> None:
    """Interpolated modified Kneser-Ney n-gram model (Chen & Goodman 1998) on the train split; valid perplexity."""
    from winner.heads.ngram import train_ngram

    with training_run_dir(out, overwrite=overwrite):  # never over another run, nor two at once
        train_ngram(corpus, order, out)


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
