"""`winner ner ...`: train, evaluate and apply the softmax NER tagger."""

from __future__ import annotations

import json
import sys
from enum import Enum
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

ner_app = typer.Typer(no_args_is_help=True, help="Named-entity tagging with the softmax window tagger.")


class Scheme(str, Enum):
    iob1 = "iob1"
    iob2 = "iob2"
    iobes = "iobes"


class Decode(str, Enum):
    viterbi = "viterbi"
    argmax = "argmax"


class OutputFormat(str, Enum):
    conll = "conll"
    json = "json"


class InputFormat(str, Enum):
    auto = "auto"
    text = "text"
    conll = "conll"


# Defaults come from NERSettings so the library and the CLI cannot disagree.
def _d(name: str):
    from winner.heads.ner_settings import NERSettings

    return getattr(NERSettings, name)


@ner_app.command("train")
@cli_errors
def train_cmd(
    out: RunDirOption,
    train: Annotated[str | None, typer.Option(help="Training data: CoNLL file or Hugging Face dataset name. "
                                                    "Default: the shipped WikiGold train split.")] = None,
    dev: Annotated[str | None, typer.Option(help="Dev data for early stopping (default: shipped WikiGold dev, "
                                                  "or every 10th training sentence with --train).")] = None,
    embeddings: EmbeddingsOption = _d("embeddings"),
    trust_pickle: TrustPickleOption = _d("trust_pickle"),
    window: WindowOption = _d("window"),
    hidden: HiddenOption = _d("hidden"),
    layers: LayersOption = _d("layers"),
    activation: ActivationOption = Activation(_d("activation")),
    casing_dim: CasingDimOption = _d("casing_dim"),
    max_pretrained: MaxPretrainedOption = _d("max_pretrained"),
    unk_replace: UnkReplaceOption = _d("unk_replace"),
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs.")] = _d("epochs"),
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many epochs without a better dev F1.")
                        ] = _d("patience"),
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per update (1 = per-example SGD).")
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
    l1: Annotated[float, typer.Option(min=0.0, help="L1 penalty on weights (not biases).")] = _d("l1"),
    scheme: Annotated[Scheme, typer.Option(help="Tag scheme the model is trained in.")] = Scheme(_d("scheme")),
    decode: Annotated[Decode, typer.Option(help="Viterbi under the scheme's constraints, or per-token argmax.")
                      ] = Decode(_d("decode")),
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same model.")] = _d("seed"),
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint if it exists.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a window NER tagger; the best model on dev is kept in OUT/model."""
    from winner.heads.ner import train_tagger
    from winner.heads.ner_settings import NERSettings

    settings = NERSettings(
        out=str(out), train=train, dev=dev, embeddings=embeddings, trust_pickle=trust_pickle, window=window,
        hidden=hidden, layers=layers, activation=activation.value, casing_dim=casing_dim,
        max_pretrained=max_pretrained, unk_replace=unk_replace, epochs=epochs,
        patience=patience, batch_size=batch_size, optimizer=optimizer.value, lr=lr, embed_lr_scale=embed_lr_scale,
        dropout=dropout, hidden_dropout=hidden_dropout, l2=l2, l1=l1, scheme=scheme.value, decode=decode.value,
        seed=seed, resume=resume, quiet=quiet)
    train_tagger(settings)


@ner_app.command("evaluate")
@cli_errors
def evaluate_cmd(
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Run or model directory.")],
    data: Annotated[str, typer.Option(help="CoNLL file or Hugging Face dataset name (its test split).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
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
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Run or model directory.")],
    input_path: Annotated[str, typer.Argument(metavar="[INPUT|-]", help="Text file (one sentence per line), "
                                                                        "CoNLL file, or - for stdin.")] = "-",
    output_format: Annotated[OutputFormat, typer.Option("--format", help="token/tag lines or JSON spans.")
                             ] = OutputFormat.conll,
    input_format: Annotated[InputFormat, typer.Option(help="How to read INPUT (auto: CoNLL if it parses as "
                                                           "CoNLL, else raw text).")] = InputFormat.auto,
) -> None:
    """Tag raw text or a CoNLL file."""
    from winner.errors import WinnerError
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
    typer.echo(tag_sentences(run_dir, sentences, output_format.value), nl=False)


def _parses_as_conll(path: Path) -> bool:
    from winner.data.conll import read_conll
    from winner.errors import DataFormatError

    try:
        read_conll(path)
        return True
    except DataFormatError:
        return False
