"""`winner score ...`: train the max-margin window scorer, rank the windows of raw text, evaluate."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from winner.cli.common import (
    Activation,
    ActivationOption,
    CasingDimOption,
    EmbeddingsOption,
    HiddenOption,
    LayersOption,
    MaxPretrainedOption,
    OptimizerName,
    RunDirOption,
    TrustPickleOption,
    UnkReplaceOption,
    WindowOption,
    cli_errors,
)

score_app = typer.Typer(no_args_is_help=True, help="Max-margin window scorer: is the centre word of a window an "
                                                   "entity of one type (LOC by default)?")


# Defaults come from ScoreSettings so the library and the CLI cannot disagree.
def _d(name: str):
    from winner.heads.scorer import ScoreSettings

    return getattr(ScoreSettings, name)


@score_app.command("train")
@cli_errors
def train_cmd(
    out: RunDirOption,
    train: Annotated[str | None, typer.Option(help="Training data: CoNLL file or Hugging Face dataset name. "
                                                    "Default: the shipped WikiGold train split.")] = None,
    dev: Annotated[str | None, typer.Option(help="Dev data for early stopping and the threshold (default: shipped "
                                                  "WikiGold dev, or every 10th training sentence with --train).")
                   ] = None,
    label: Annotated[str, typer.Option(help="Entity type of the true windows' centre (LOC, PER, ORG, MISC, ...).")
                     ] = _d("label"),
    embeddings: EmbeddingsOption = _d("embeddings"),
    trust_pickle: TrustPickleOption = _d("trust_pickle"),
    window: WindowOption = _d("window"),
    hidden: HiddenOption = _d("hidden"),
    layers: LayersOption = _d("layers"),
    activation: ActivationOption = Activation(_d("activation")),
    casing_dim: CasingDimOption = _d("casing_dim"),
    max_pretrained: MaxPretrainedOption = _d("max_pretrained"),
    unk_replace: UnkReplaceOption = _d("unk_replace"),
    corrupt_per_true: Annotated[int, typer.Option(min=1, help="Corrupt windows K drawn for each true window, "
                                                              "afresh every epoch.")] = _d("corrupt_per_true"),
    margin: Annotated[float, typer.Option(min=0.0, help="Margin of the hinge J = max(0, margin - s + s_c).")
                      ] = _d("margin"),
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs (one epoch = every true window once).")
                      ] = _d("epochs"),
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many epochs without a better dev F1.")
                        ] = _d("patience"),
    batch_size: Annotated[int, typer.Option(min=1, help="True windows per update (each with its corrupt ones).")
                          ] = _d("batch_size"),
    optimizer: Annotated[OptimizerName, typer.Option(help="Optimiser.")] = OptimizerName(_d("optimizer")),
    lr: Annotated[float, typer.Option(min=0.0, help="Learning rate.")] = _d("lr"),
    embed_lr_scale: Annotated[float, typer.Option(min=0.0, help="Embedding learning rate as a multiple of "
                                                                "--lr (0 freezes them).")] = _d("embed_lr_scale"),
    dropout: Annotated[float, typer.Option(min=0.0, max=0.99, help="Dropout on the input embeddings.")
                       ] = _d("dropout"),
    hidden_dropout: Annotated[float, typer.Option(min=0.0, max=0.99, help="Dropout on hidden units.")
                              ] = _d("hidden_dropout"),
    l2: Annotated[float, typer.Option(min=0.0, help="L2 penalty on weights (not biases).")] = _d("l2"),
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same model.")] = _d("seed"),
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint if it exists.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a max-margin window scorer; the best model on dev (with its F1-maximising threshold) goes to OUT/model."""
    from winner.heads.scorer import ScoreSettings, train_scorer

    settings = ScoreSettings(
        out=str(out), train=train, dev=dev, label=label, embeddings=embeddings, trust_pickle=trust_pickle,
        window=window, hidden=hidden, layers=layers, activation=activation.value, casing_dim=casing_dim,
        max_pretrained=max_pretrained, unk_replace=unk_replace, corrupt_per_true=corrupt_per_true, margin=margin,
        epochs=epochs, patience=patience, batch_size=batch_size, optimizer=optimizer.value, lr=lr,
        embed_lr_scale=embed_lr_scale, dropout=dropout, hidden_dropout=hidden_dropout, l2=l2, seed=seed, resume=resume,
        quiet=quiet)
    train_scorer(settings)


@score_app.command("windows")
@cli_errors
def windows_cmd(
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Run or model directory.")],
    text: Annotated[str, typer.Argument(metavar="[TEXT|-]", help="Raw text, one sentence per line, or - to read "
                                                                 "standard input.")] = "-",
    top: Annotated[int | None, typer.Option(min=1, help="Show only the N best windows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of {window, centre, score, sentence, "
                                                         "position} instead of the table.")] = False,
) -> None:
    """Score every window of the text and list them best first, the centre word between square brackets.

    In the table, * marks scores at or above the model's stored threshold.
    """
    from winner.data.text import tokenize
    from winner.errors import WinnerError
    from winner.heads.scorer import format_windows, load_scorer, rank_windows

    raw = sys.stdin.read() if text == "-" else text
    sentences = [tokenize(line) for line in raw.splitlines() if line.strip()]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise WinnerError("no words to score: give some text (one sentence per line) or pipe it into -")
    scorer = load_scorer(run_dir)
    records = rank_windows(scorer, sentences, top)
    if as_json:
        typer.echo(json.dumps(records, ensure_ascii=False))
    else:
        typer.echo(format_windows(records, scorer.spec.threshold))


@score_app.command("evaluate")
@cli_errors
def evaluate_cmd(
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Run or model directory.")],
    data: Annotated[str, typer.Option(help="CoNLL file or Hugging Face dataset name (its test split).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
) -> None:
    """ROC-AUC and average precision over all windows; token-level precision, recall, F1 at the stored threshold."""
    from winner.heads.scorer import evaluate_scorer, format_evaluation

    result = evaluate_scorer(run_dir, data)
    if as_json:
        keys = ("auc", "average_precision", "precision", "recall", "f1", "threshold", "label", "windows", "positives")
        typer.echo(json.dumps({k: result[k] for k in keys}))
    else:
        typer.echo(format_evaluation(result))
