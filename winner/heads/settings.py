"""The training settings of the three heads, each option declared once: its default, help text and range.

`Settings` holds what every head's training takes, `WindowSettings` adds what the two heads reading labelled
windows share (tagger, scorer), and `NERSettings`, `ScoreSettings` and `LMSettings` add their own fields. A head
that needs another default or help for a shared field redeclares it with `like(Base, name, ...)`, which keeps
everything else of the field.

Each field's metadata is read by
- the CLI, which builds `winner ner|score|lm train` from the fields (winner.cli.common.settings_command):
  "help", "min"/"max", "choices", "flags" (option names), "cli" (False: not an option), "required" (on the
  command line), "path" (shown as a path), "shown_default" (the help's default for a None default), and
  "group" (where the option is listed in --help, see GROUPS);
- `coerce_setting`, which every construction runs (`__post_init__`): values from a TOML pipeline, a ${var} or
  `winner run --set` get the field's type and range, as a CLI option would.

Light imports only (the standard library and winner.errors): `winner --help` reads this module. No `from __future__
import annotations`: the field types are read at run time.
"""

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from typing import Any

from winner.errors import WinnerError

CONSISTENCY = ("none", "document")  # the tagger's votes after decoding (winner.heads.consistency)

# The order options are listed in by --help: by group, then as declared (base classes first).
GROUPS = ("io", "model", "objective", "training", "regularisation", "decoding", "run")


def setting(default: Any, help: str, *, group: str, min: float | None = None, max: float | None = None,
            choices: tuple[str, ...] | None = None, flags: tuple[str, ...] = (), cli: bool = True,
            required: bool = False, path: bool = False, shown_default: str | None = None,
            none_ok: bool = False) -> Any:
    """A settings field. `none_ok` (sizes only): a single 0 means no hidden layer."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")
    meta = {"help": help, "group": group, "min": min, "max": max, "choices": choices, "flags": flags, "cli": cli,
            "required": required, "path": path, "shown_default": shown_default, "none_ok": none_ok}
    return field(default=default, metadata=meta)


def like(base: type, name: str, **changes: Any) -> Any:
    """`base`'s field `name` with some of its default / metadata changed (a subclass redeclares it with this)."""
    old = base.__dataclass_fields__[name]
    default = changes.pop("default", old.default)
    unknown = set(changes) - set(old.metadata)
    if unknown:
        raise ValueError(f"unknown metadata {sorted(unknown)}")
    return field(default=default, metadata={**old.metadata, **changes})


class BadSettingError(WinnerError):
    """A value a field cannot take; `name` is the field, `problem` reads after it ("expects ..., got ...")."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name} {problem}")
        self.name = name
        self.problem = problem


# ---------------------------------------------------------------- the settings


@dataclass(kw_only=True)
class Settings:
    """What every head's training takes. The defaults are the tagger's; other heads redeclare theirs."""

    out: str = setting("runs", "Run directory: model/, metrics.jsonl, plots.", group="io", flags=("--out", "-o"),
                       required=True, path=True)
    epochs: int = setting(30, "Maximum epochs.", group="training", min=1)
    patience: int = setting(5, "Stop after this many epochs without a better dev F1.", group="training", min=1)
    batch_size: int = setting(32, "Windows per update (1 = per-example SGD).", group="training", min=1)
    optimizer: str = setting("adam", "Optimiser.", group="training", choices=("sgd", "adam"))
    lr: float = setting(1e-3, "Learning rate.", group="training", min=0.0)
    dropout: float = setting(0.5, "Dropout on the input embeddings.", group="regularisation", min=0.0, max=0.99)
    hidden_dropout: float = setting(0.0, "Dropout on hidden units.", group="regularisation", min=0.0, max=0.99)
    l2: float = setting(0.0, "L2 penalty on weights (not biases).", group="regularisation", min=0.0)
    average: float = setting(0.0, "Evaluate and keep a moving average of the weights with this time constant in "
                                  "epochs (0 = the raw weights).", group="training", min=0.0)
    seed: int = setting(0, "Random seed: the same seed gives the same model.", group="run", min=0, max=2**32 - 1)
    resume: bool = setting(False, "Continue the run in OUT from its checkpoint.", group="run")
    overwrite: bool = setting(False, "Replace the run already in OUT (only the files winner wrote).", group="run")
    keep_checkpoint: bool = setting(False, "Keep OUT/checkpoint when the run finishes (it is as big as the model "
                                           "and the optimiser's state).", group="run")
    quiet: bool = setting(False, "No progress bar.", group="run", flags=("--quiet", "-q"))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, coerce_setting(type(self), f.name, getattr(self, f.name)))


@dataclass(kw_only=True)
class WindowSettings(Settings):
    """What the heads reading labelled windows (tagger, scorer) share."""

    train: str | None = setting(None, "Training data: a CoNLL file, a save_to_disk directory, Parquet/JSON/CSV "
                                      "files or a Hugging Face dataset name (name:config). Default: the shipped "
                                      "WikiGold train split.", group="io")
    dev: str | None = setting(None, "Dev data for early stopping (default: shipped WikiGold dev; with --train, "
                                    "its validation split if it has one, else every 10th training sentence).",
                              group="io")
    # winner.data.embeddings.DEFAULT_EMBEDDINGS (not imported: it loads numpy)
    embeddings: str = setting("default", "Pretrained vectors: a word2vec (text or binary) or GloVe file, a "
                                         "gensim-downloader name already on disk, 'default' (the shipped subset "
                                         "of GloVe 6B 100-d), 'brown-word2vec' (word2vec trained on the shipped "
                                         "Brown text) or 'none'.", group="io")
    trust_pickle: bool = setting(False, "Allow --embeddings to be a gensim native (pickle) file; this RUNS CODE "
                                        "inside the file — only for files you made yourself.", group="io",
                                 flags=("--trust-pickle",))
    window: int = setting(2, "Half-width w: windows of 2w+1 words.", group="model", min=0)
    hidden: tuple[int, ...] = setting((300,), "Units per hidden layer.", group="model", min=1)
    layers: int = setting(1, "Hidden layers.", group="model", min=0)
    activation: str = setting("tanh", "Hidden activation.", group="model", choices=("tanh", "sigmoid", "relu"))
    casing_dim: int = setting(10, "Size of the casing feature embedding (0: none).", group="model", min=0)
    random_embed_dim: int = setting(50, "Embedding size with --embeddings none.", group="model", min=1, cli=False)
    max_pretrained: int = setting(0, "Most frequent pretrained words added to the vocabulary beside the training "
                                     "words (0: all).", group="model", min=0)
    unk_replace: float = setting(0.5, "Chance that a use of a word seen once in training and without a pretrained "
                                      "vector is shown as <unk> (trains <unk>).", group="model", min=0.0, max=1.0)
    embed_lr_scale: float = setting(1.0, "Embedding learning rate as a multiple of --lr (0 freezes them).",
                                    group="training", min=0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.hidden) > 1 and self.layers not in (1, len(self.hidden)):
            raise BadSettingError("layers", f"repeats a single hidden size; with hidden {format_sizes(self.hidden)} "
                                         f"leave it at 1, got {self.layers}")

    def hidden_sizes(self) -> tuple[int, ...]:
        """`hidden` repeated `layers` times (300 x 2 -> (300, 300); 0 layers: none), or the sizes as given."""
        return self.hidden * self.layers if len(self.hidden) == 1 else self.hidden


@dataclass(kw_only=True)
class NERSettings(WindowSettings):
    """Everything `winner ner train` takes; the defaults are the settings tuned on CoNLL-2003 valid."""

    out: str = like(Settings, "out", default="runs/ner")
    average: float = like(Settings, "average", default=2.0)
    l1: float = setting(0.0, "L1 penalty on weights (not biases).", group="regularisation", min=0.0)
    scheme: str = setting("iobes", "Tag scheme the model is trained in.", group="decoding",
                          choices=("iob1", "iob2", "iobes"))
    decode: str = setting("viterbi", "Viterbi under the scheme's constraints (with --loss sentence, and the "
                                     "learned transitions), or per-token argmax.",
                          group="decoding", choices=("viterbi", "argmax"))
    consistency: str = setting("none", "document: after decoding, every entity of a document gets the type its "
                                       "mentions with the same words voted for, each vote weighed by the model's "
                                       "probability (Krishnan & Manning 2006).",
                               group="decoding", choices=CONSISTENCY)
    loss: str = setting("word", "word: a softmax per window; sentence: the sentence-level log-likelihood with "
                                "learned tag-transition scores (Collobert et al. 2011), whole sentences per update.",
                        group="objective", choices=("word", "sentence"))
    char_filters: int = setting(50, "Character CNN filters: the size of each word's character vector (0: no "
                                   "character features).", group="model", min=0)
    char_dim: int = setting(25, "Character embedding size of the character CNN.", group="model", min=1)
    char_width: int = setting(3, "Characters per window of the character CNN (odd).", group="model", min=1)
    context_code: str = setting("document", "sentence: two more inputs, the forgetting encodings (FOFE) of the "
                                        "sentence's words left and right of the window (Xu et al. 2017); "
                                        "document: the mean left and right neighbours of the word's other "
                                        "occurrences in its document (Ratinov & Roth 2009).",
                                group="model", choices=("none", "sentence", "document"))
    forget: float = setting(0.7, "With --context-code: the forgetting factor, each word further from the window "
                                 "(or the occurrence) weighs this much less.", group="model", min=0.0, max=1.0)
    occurrences: int = setting(6, "With --context-code document: how many other occurrences of a word, the "
                                  "nearest in its document, its codes average.", group="model", min=1)
    alone: float = setting(0.0, "With --context-code document: the share of training sentences each epoch reads "
                                "as documents by themselves, so that a sentence tagged alone is tagged well.",
                           group="model", min=0.0, max=1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.char_width % 2 == 0:
            raise BadSettingError("char_width", f"expects an odd number, got {self.char_width}")
        if self.context_code != "none" and self.loss != "word":
            raise BadSettingError("context_code", f"({self.context_code}) trains with --loss word only; with --loss "
                                                  f"{self.loss}, add --context-code none")


@dataclass(kw_only=True)
class ScoreSettings(WindowSettings):
    """Everything `winner score train` takes; the defaults were tuned on CoNLL-2003 valid (see the README)."""

    out: str = like(Settings, "out", default="runs/score")
    dev: str | None = like(WindowSettings, "dev", help="Dev data for early stopping and the threshold (default: "
                                                       "shipped WikiGold dev, or every 10th training sentence with "
                                                       "--train).")
    label: str = setting("LOC", "Entity type of the true windows' centre (LOC, PER, ORG, MISC, ...).",
                         group="objective")
    corrupt_per_true: int = setting(20, "Corrupt windows K drawn for each true window, afresh every epoch.",
                                    group="objective", min=1)
    margin: float = setting(1.0, "Margin of the hinge J = max(0, margin - s + s_c).", group="objective", min=0.0)
    epochs: int = like(Settings, "epochs", default=60, help="Maximum epochs (one epoch = every true window once).")
    patience: int = like(Settings, "patience", default=10)
    batch_size: int = like(Settings, "batch_size", help="True windows per update (each with its corrupt ones).")


@dataclass(kw_only=True)
class LMSettings(Settings):
    """Everything `winner lm train` takes; the defaults were tuned on Brown valid (the README lists what was
    tried)."""

    out: str = like(Settings, "out", default="runs/lm", help="Run directory: model/, metrics.jsonl, summary.json.")
    corpus: str = setting("brown", "'brown' (the shipped streams, Bengio et al. 2003 setup) or a plain-text file "
                                   "(last 10% of tokens = valid) or a directory with train*, valid*/dev* and "
                                   "optional test* files.", group="io")
    min_count: int | None = setting(None, "Plain-text corpora: keep training words seen at least this often, the "
                                          "rest is <unk>.", group="io", min=1, shown_default="2")
    max_vocab: int | None = setting(None, "Plain-text corpora: at most this many words (with <unk>).", group="io",
                                    min=2, shown_default="no limit")
    context: int = setting(16, "Words of history, n-1.", group="model", min=1)
    embed_dim: int = setting(100, "Word embedding size m.", group="model", min=1)
    hidden: tuple[int, ...] = setting((200,), "Hidden layer size h, or sizes like 400,100; 0 = no hidden layer (the "
                                              "output then reads the embeddings directly).", group="model", min=1,
                                      none_ok=True)
    direct: bool = setting(False, "Direct embedding -> output connections (cost |V|*(n-1)*m per token).",
                           group="model")
    output: str = setting("classes", "Output layer: one softmax over the vocabulary, or class-factored P(class) "
                                     "P(word | class) over frequency-binned classes (as exact, an epoch several "
                                     "times cheaper).", group="model", choices=("full", "classes"))
    classes: int = setting(512, "With --output classes: the number of frequency bins asked for (empty bins are "
                                "dropped: Brown gets 312 classes for 512); 0 = round(sqrt|V|).", group="model", min=0)
    epochs: int = like(Settings, "epochs", default=8)
    patience: int = like(Settings, "patience", default=3, help="Stop after this many epochs without a better valid "
                                                                "perplexity.")
    batch_size: int = like(Settings, "batch_size", default=128, help="Windows (predicted tokens) per update.")
    lr: float = like(Settings, "lr", default=2e-3)
    adam_eps: float = setting(1e-5, "Adam's epsilon. Above the usual 1e-8 so that the outputs of words never seen in "
                                    "train keep their small initial probability.", group="training", min=0.0)
    lr_decay: float = setting(0.5, "Multiply the learning rate by this after an epoch that does not improve valid "
                                   "perplexity (1 = constant).", group="training", min=0.0, max=1.0)
    average: float = like(Settings, "average", default=0.25)
    word_noise: float = setting(0.0, "Each epoch, read every training context word as <unk> with this probability.",
                                group="training", min=0.0, max=0.99)
    dropout: float = like(Settings, "dropout", default=0.25)
    hidden_dropout: float = like(Settings, "hidden_dropout", default=0.25)
    l2: float = like(Settings, "l2", default=1e-4, help="Weight decay (L2 penalty on weights, not biases). The "
                                                        "factored output decays the columns a step updates.")

    def hidden_sizes(self) -> tuple[int, ...]:
        """The hidden layer sizes (() = no hidden layer: the output reads the embeddings)."""
        return self.hidden

    def n_classes(self, vocab_size: int) -> int:
        """Classes of the factored output for a vocabulary of vocab_size words; 0 = the full softmax."""
        if self.output == "full":
            return 0
        return self.classes or max(1, round(math.sqrt(vocab_size)))


# ---------------------------------------------------------------- types, ranges, text


def field_kind(f: dataclasses.Field) -> tuple[type, bool]:
    """(bool | int | float | str | tuple, whether None is allowed) of a settings field."""
    tp = f.type
    optional = False
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        (tp,) = args
    if typing.get_origin(tp) is tuple:
        tp = tuple
    if tp not in (bool, int, float, str, tuple):
        raise TypeError(f"settings field {f.name}: unsupported type {f.type!r}")
    return tp, optional


@cache
def settings_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def option_order(cls: type) -> list[dataclasses.Field]:
    """The fields in the order --help lists them: by group (GROUPS), then as declared."""
    return sorted(settings_fields(cls).values(), key=lambda f: GROUPS.index(f.metadata["group"]))


def format_sizes(sizes: tuple[int, ...]) -> str:
    """(400, 100) -> '400,100'; () -> '0'."""
    return ",".join(map(str, sizes)) or "0"


def parse_sizes(value: Any, min_size: int = 1, none_ok: bool = True) -> tuple[int, ...]:
    """200, '200', '400,100', [400, 100] -> a tuple of sizes; with none_ok, 0 / '0' / '' -> () (no hidden layer).
    Raises ValueError with the problem ("expects ..., got ...")."""
    if isinstance(value, int) and not isinstance(value, bool):
        sizes: tuple = (value,)
    elif isinstance(value, str):
        try:
            sizes = tuple(int(x) for x in value.replace(" ", "").split(",") if x)
        except ValueError:
            raise ValueError(f"expects sizes like 200 or 400,100, got {value!r}") from None
    elif isinstance(value, list | tuple) and all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        sizes = tuple(value)
    else:
        raise ValueError(f"expects sizes like 200 or 400,100, got {value!r}")
    if none_ok and sizes in ((), (0,)):
        return ()
    if not sizes or any(h < min_size for h in sizes):
        none = " (or a single 0 for none)" if none_ok else ""
        raise ValueError(f"sizes must be positive{none}, got {value!r}")
    return sizes


def parse_hidden(spec: str | int) -> tuple[int, ...]:
    """'200' -> (200,), '400,100' -> (400, 100), '0' or '' -> () (no hidden layer): the LM's --hidden."""
    try:
        return parse_sizes(spec)
    except ValueError as e:
        raise WinnerError(f"--hidden {e}") from None


def _in_range(x: float, f: dataclasses.Field, what: str) -> None:
    lo, hi = f.metadata["min"], f.metadata["max"]
    if (lo is not None and not x >= lo) or (hi is not None and not x <= hi):
        bounds = f"in [{lo}, {hi}]" if lo is not None and hi is not None else f">= {lo}" if lo is not None \
            else f"<= {hi}"
        raise ValueError(f"expects {what} {bounds}, got {x!r}")


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    kind, optional = field_kind(f)
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        if optional:
            return None
        raise ValueError("expects a value, got none")
    if kind is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"expects true or false, got {value!r}")
        return value
    if kind in (int, float):
        what, accepted = ("an integer", int) if kind is int else ("a number", int | float)
        if isinstance(value, str):
            try:
                value = kind(value.strip())
            except ValueError:
                raise ValueError(f"expects {what}, got {value!r}") from None
        elif isinstance(value, bool) or not isinstance(value, accepted):
            raise ValueError(f"expects {what}, got {value!r}")
        value = kind(value)
        _in_range(value, f, what)
        return value
    if kind is tuple:
        return parse_sizes(value, int(f.metadata["min"] or 0), f.metadata["none_ok"])
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"expects a string, got {value!r}")
    choices = f.metadata["choices"]
    if choices and value not in choices:
        raise ValueError(f"expects one of {', '.join(choices)}, got {value!r}")
    return value


def coerce_setting(cls: type, name: str, value: Any) -> Any:
    """`value` as field `name` of `cls` takes it: of its type (strings are parsed), in its range and choices.
    Raises BadSettingError(name, "expects ..., got ...")."""
    try:
        return _coerce(settings_fields(cls)[name], value)
    except ValueError as e:
        raise BadSettingError(name, str(e)) from None


def settings_from_options(cls: type, options: Mapping[str, Any], where: str) -> Any:
    """`cls(**options)`, or a one-line WinnerError starting with `where` naming the unknown or bad option."""
    names = settings_fields(cls)
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise WinnerError(f"{where}: unknown option(s) {', '.join(unknown)}; expected some of "
                          f"{', '.join(sorted(names))}")
    try:
        return cls(**options)
    except BadSettingError as e:
        raise WinnerError(f"{where}: {e}") from None
