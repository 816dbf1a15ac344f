"""Usage errors (a bad option value, an unknown option, a missing argument) as one line, exit 2.

Click's standalone mode prints the command's usage, a hint and the error on three or more lines (in a rich box
on a terminal). `run_command` runs the app with `standalone_mode=False`, so that click raises its usage errors
instead of printing them, and prints each as one `error: …` line naming the option and what it expects.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import typer

# recent typer carries its own copy of click; older typer runs on click itself
click_exceptions = importlib.import_module("typer._click.exceptions" if importlib.util.find_spec("typer._click")
                                           else "click.exceptions")

BadParameter, ClickException = click_exceptions.BadParameter, click_exceptions.ClickException
MissingParameter, NoSuchOption = click_exceptions.MissingParameter, click_exceptions.NoSuchOption
UsageError = click_exceptions.UsageError
NoArgsIsHelpError = getattr(click_exceptions, "NoArgsIsHelpError", ())  # click >= 8.2; () matches nothing

# pydantic's error types (typer validates option values with it) -> what the option expects
_EXPECTS = {"int_parsing": "an integer", "int_from_float": "an integer", "float_parsing": "a number",
            "bool_parsing": "true or false", "int_type": "an integer", "float_type": "a number",
            "finite_number": "a finite number"}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}


def run_command(command: Any, prog_name: str) -> None:
    """Run the click command of the app; usage errors become one line on stderr and exit 2."""
    try:
        code = command.main(prog_name=prog_name, standalone_mode=False)
    except NoArgsIsHelpError as e:  # `winner ner`: the help is what the user needs
        e.show()
        sys.exit(e.exit_code)
    except ClickException as e:
        typer.echo(f"error: {' '.join(usage_line(e).split())}", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def usage_line(e: ClickException) -> str:
    """One line for a click exception: what was wrong, what was expected, where to find help."""
    ctx = getattr(e, "ctx", None)
    help_hint = f" (see {ctx.command_path} -h)" if ctx is not None else ""
    if isinstance(e, MissingParameter) and e.param is not None:
        return f"missing {e.param.param_type_name} {_name(e.param)}{help_hint}"
    if isinstance(e, BadParameter) and e.param is not None:
        return f"{_name(e.param)}: {_expected(e)}{help_hint}"
    if isinstance(e, NoSuchOption):
        close = f"; did you mean {', '.join(sorted(e.possibilities))}?" if e.possibilities else ""
        return f"no such option {e.option_name}{close}{help_hint}"
    if isinstance(e, UsageError):
        return f"{_lower_first(e.format_message()).rstrip('.')}{help_hint}"
    return e.format_message()


def _name(param: Any) -> str:
    """An option by its long flag (--batch-size), an argument by its metavar (RUN_DIR)."""
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")] or list(getattr(param, "opts", []))
    if param.param_type_name == "option" and opts:
        return opts[0]
    return (param.name or "argument").upper()


def _expected(e: BadParameter) -> str:
    """What a bad value violated, from pydantic's error when typer validated it with pydantic."""
    cause = e.__cause__
    errors = cause.errors() if hasattr(cause, "errors") else []
    if not errors:
        return _lower_first(e.message).rstrip(".")
    first = errors[0]
    kind, got = first.get("type", ""), f", got {first.get('input')!r}" if "input" in first else ""
    context = first.get("ctx") or {}
    if kind in _BOUNDS:
        sign, key = _BOUNDS[kind]
        return f"expected a value {sign} {context.get(key)}{got}"
    if kind in _EXPECTS:
        return f"expected {_EXPECTS[kind]}{got}"
    if kind == "value_error" and "not one of" in first.get("msg", ""):
        return f"expected {first['msg'].split('is not ', 1)[1].rstrip('.')}{got}"
    return f"{_lower_first(str(first.get('msg', e.message)))}{got}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
