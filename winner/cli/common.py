"""What every CLI module shares: turning expected failures into one line on stderr and exit code 1, and the
`train` commands built from the heads' settings dataclasses (winner.heads.settings), so that an option, its
help, default and range are declared once, on the settings field."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from winner.cli.config import merge_config, read_config
from winner.data.text import tokenize
from winner.errors import UsageError, WinnerError
from winner.heads.registry import head
from winner.heads.settings import BadSettingError, field_kind, format_sizes, option_order

F = TypeVar("F", bound=Callable)


def cli_errors(fn: F) -> F:
    """Decorate a command so that an expected failure prints one line on stderr, no traceback: a WinnerError
    (exit 1, or its exit_code), a failing disk or file system (full, read-only, permissions: exit 1), memory
    running out (exit 1) and Ctrl-C outside training (exit 130). Output into a pipe its reader closed (`| head`)
    ends the command quietly, exit 0."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WinnerError as e:
            fail(str(e), e.exit_code)
        except BrokenPipeError:  # the reader of our output closed it (`| head`): it has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush is silent
            raise typer.Exit(0) from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            fail(f"{where}{e.strerror or e}")
        except UnicodeDecodeError as e:
            fail(f"the input is not UTF-8 text (byte {e.object[e.start:e.start + 1]!r} at offset {e.start}); "
                 "convert it first, e.g. iconv -f latin1 -t utf-8")
        except MemoryError as e:
            fail(f"out of memory ({e or 'a smaller --batch-size or model needs less'})")
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = 1) -> None:
    """Print `error: message` on stderr (one line) and exit with `code`."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code) from None


@functools.cache
def choice_enum(name: str, choices: tuple[str, ...]) -> type[Enum]:
    """A str Enum of a field's choices, which Typer shows as <a|b|c> and checks."""
    return Enum("".join(w.capitalize() for w in name.split("_")), [(c, c) for c in choices], type=str)


def option_parameter(f: dataclasses.Field) -> inspect.Parameter:
    """The command-line option of one settings field, as a keyword-only parameter Typer reads."""
    meta = f.metadata
    kind, optional = field_kind(f)
    info: dict[str, Any] = {"help": meta["help"]}
    for bound in ("min", "max"):
        if meta[bound] is not None and kind in (int, float):
            info[bound] = meta[bound]
    if meta["shown_default"] is not None:
        info["show_default"] = meta["shown_default"]
    annotation: Any = kind
    default = f.default
    if meta["choices"]:
        annotation = choice_enum(f.name, meta["choices"])
        default = annotation(default)
    elif kind is tuple:  # sizes are read as text ("400,100"), then parsed and checked by the settings
        annotation, default = str, format_sizes(default)
    elif meta["path"]:
        annotation = Path
    if meta["required"]:  # required on the command line or in --config: checked once both are read
        optional, default = True, None
        info["help"] += " Required (here or in --config)."
    if optional:
        annotation = annotation | None
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, typer.Option(*meta["flags"], **info)])


CONFIG_PARAMETER = inspect.Parameter(
    "config", inspect.Parameter.KEYWORD_ONLY, default=None,
    annotation=Annotated[Path | None, typer.Option("--config", "-c", exists=True, dir_okay=False,
                                                   help="A TOML file of these settings (`winner init config` "
                                                        "writes one); options given here override it.")])


def settings_command(app: typer.Typer, name: str, cls: type) -> Callable[[Callable[[Any], Any]], Callable]:
    """Register `fn(settings)` as command `name` of `app` with one option per field of the settings dataclass
    `cls` (in winner.heads.settings.option_order); the command's help is fn's docstring. A value the settings
    refuse (a malformed --hidden, say) is a one-line error naming the option."""

    def register(fn: Callable[[Any], Any]) -> Callable:
        def command(ctx: typer.Context, config: Path | None = None, **values: Any) -> None:
            from_file = read_config(config, cls) if config is not None else {}
            values = merge_config(ctx, values, from_file)
            missing = [f.name for f in option_order(cls) if f.metadata["required"] and values.get(f.name) is None]
            if missing:
                raise UsageError(f"missing option --{missing[0].replace('_', '-')} (give it here or in --config)")
            try:
                settings = cls(**values)
            except BadSettingError as e:
                if e.name in from_file:
                    raise WinnerError(f"{config}: {e.name} {e.problem}") from None
                raise UsageError(f"--{e.name.replace('_', '-')} {e.problem}") from None
            fn(settings)

        command.__doc__ = fn.__doc__
        command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context), CONFIG_PARAMETER,
             *(option_parameter(f) for f in option_order(cls) if f.metadata["cli"])])
        return app.command(name)(cli_errors(command))

    return register


def train_command(app: typer.Typer, name: str) -> None:
    """`winner NAME train`: the registered head's settings as options, its training as the action."""
    entry = head(name)

    def train(settings: Any) -> None:
        entry.train(settings)

    train.__doc__ = entry.train_help
    settings_command(app, "train", entry.settings)(train)


# Arguments and options several commands take with the same meaning, declared once.
RunDirArgument = Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Run or model directory.")]
EvalDataOption = Annotated[str, typer.Option(help="CoNLL file, local dataset (save_to_disk directory, Parquet/JSON/"
                                                  "CSV files) or Hugging Face dataset name: its test split.")]
TextArgument = Annotated[str, typer.Argument(metavar="[TEXT|FILE|-]", help="Raw text, one sentence per line, a "
                                                                       "file of it, or - to read standard input.")]


def read_text(text: str) -> str:
    """A TextArgument's text: standard input for -, a file's text when it names one, else itself."""
    if text == "-":
        return sys.stdin.read()
    if "\n" not in text and len(text) < 4096 and Path(text).is_file():
        return Path(text).read_text(encoding="utf-8")
    return text


def read_sentences(text: str, what: str = "read") -> list[list[str]]:
    """Token lists of a TextArgument, one per non-empty line; none at all is an error."""
    sentences = [s for s in (tokenize(line) for line in read_text(text).splitlines()) if s]
    if not sentences:
        raise WinnerError(f"no words to {what}: give some text (one sentence per line) or pipe it into -")
    return sentences


JsonTableFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")]
