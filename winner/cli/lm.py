"""`winner lm ...`: train the fixed-window neural language model, measure perplexity, generate text."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from winner.cli.common import OptimizerName, cli_errors

lm_app = typer.Typer(no_args_is_help=True, help="Fixed-window neural language model (Bengio et al. 2003).")


class Split(str, Enum):
    train = "train"
    valid = "valid"
    test = "test"


# Defaults come from LMSettings so the library and the CLI cannot disagree. winner.heads.lm imports the numerical
# core lazily, so reading them here keeps `winner --help` instant.
def _d(name: str):
    from winner.heads.lm import LMSettings

    return getattr(LMSettings, name)


@lm_app.command("train")
@cli_errors
def train_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory: model/, metrics.jsonl, summary.json.")],
    corpus: Annotated[str, typer.Option(help="'brown' (the shipped streams, Bengio et al. 2003 setup) or a "
                                             "plain-text file (last 10% of tokens = valid) or a directory with "
                                             "train*, valid*/dev* and optional test* files.")] = _d("corpus"),
    min_count: Annotated[int | None, typer.Option(min=1, help="Plain-text corpora: keep training words seen at "
                                                              "least this often, the rest is <unk> [default: 2].")
                         ] = None,
    max_vocab: Annotated[int | None, typer.Option(min=2, help="Plain-text corpora: at most this many words "
                                                              "(with <unk>) [default: no limit].")] = None,
    context: Annotated[int, typer.Option(min=1, help="Words of history, n-1.")] = _d("context"),
    embed_dim: Annotated[int, typer.Option(min=1, help="Word embedding size m.")] = _d("embed_dim"),
    hidden: Annotated[str, typer.Option(help="Hidden layer size h, or sizes like 400,100; 0 = no hidden layer "
                                             "(the output then reads the embeddings directly).")] = _d("hidden"),
    direct: Annotated[bool, typer.Option(help="Direct embedding -> output connections (cost |V|*(n-1)*m per "
                                              "token).")] = _d("direct"),
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs.")] = _d("epochs"),
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many epochs without a better valid "
                                                      "perplexity.")] = _d("patience"),
    batch_size: Annotated[int, typer.Option(min=1, help="Windows (predicted tokens) per update.")
                          ] = _d("batch_size"),
    optimizer: Annotated[OptimizerName, typer.Option(help="Optimiser.")] = OptimizerName(_d("optimizer")),
    lr: Annotated[float, typer.Option(min=0.0, help="Learning rate.")] = _d("lr"),
    adam_eps: Annotated[float, typer.Option(min=0.0, help="Adam's epsilon. Above the usual 1e-8 so that the "
                                                          "outputs of words never seen in train keep their "
                                                          "small initial probability.")] = _d("adam_eps"),
    lr_decay: Annotated[float, typer.Option(min=0.0, max=1.0, help="Multiply the learning rate by this after an "
                                                                   "epoch that does not improve valid perplexity "
                                                                   "(1 = constant).")] = _d("lr_decay"),
    average: Annotated[float, typer.Option(min=0.0, help="Evaluate and keep a moving average of the weights with "
                                                         "this time constant in epochs (0 = the raw weights).")
                       ] = _d("average"),
    word_noise: Annotated[float, typer.Option(min=0.0, max=0.99, help="Each epoch, read every training context "
                                                                      "word as <unk> with this probability.")
                          ] = _d("word_noise"),
    dropout: Annotated[float, typer.Option(min=0.0, max=0.99, help="Dropout on the input embeddings.")
                       ] = _d("dropout"),
    hidden_dropout: Annotated[float, typer.Option(min=0.0, max=0.99, help="Dropout on hidden units.")
                              ] = _d("hidden_dropout"),
    l2: Annotated[float, typer.Option(min=0.0, help="Weight decay (L2 penalty on weights, not biases).")
                  ] = _d("l2"),
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same model.")] = _d("seed"),
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint if it exists.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train the LM; one line per epoch (train loss, valid perplexity, tokens/s); the best model on valid
    perplexity is kept in OUT/model."""
    from winner.heads.lm import LMSettings, train_lm

    train_lm(LMSettings(
        out=str(out), corpus=corpus, min_count=min_count, max_vocab=max_vocab, context=context, embed_dim=embed_dim,
        hidden=hidden, direct=direct, epochs=epochs, patience=patience, batch_size=batch_size,
        optimizer=optimizer.value, lr=lr, adam_eps=adam_eps, lr_decay=lr_decay, average=average, word_noise=word_noise,
        dropout=dropout,
        hidden_dropout=hidden_dropout, l2=l2, seed=seed, resume=resume, quiet=quiet))


@lm_app.command("perplexity")
@cli_errors
def perplexity_cmd(
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Run or model directory.")],
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
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Run or model directory.")],
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
