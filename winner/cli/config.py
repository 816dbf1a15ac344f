"""Settings files: `winner init config` writes every option of a head's `train` command with its default and help
as TOML, and `winner NAME train --config FILE` reads one, options given on the command line overriding it; so a
run is one file.

The keys are the settings' names (`batch_size`, or `batch-size` as on the command line), at the top level.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from winner.errors import WinnerError
from winner.heads.settings import format_sizes, option_order, settings_fields


def render_config(cls: type, head_name: str) -> str:
    """The TOML text of every command-line setting of `cls` at its default, each after its help as a comment."""
    lines = [f"# winner {head_name} train --config THIS_FILE  (options given on the command line override it)", ""]
    for f in option_order(cls):
        if not f.metadata["cli"]:
            continue
        lines.append(f"# {f.metadata['help']}")
        value = f.default
        if value is None:
            shown = f.metadata["shown_default"]
            lines.append(f"# {f.name} = \"\"" + (f"  # default: {shown}" if shown else ""))
            continue
        if isinstance(value, tuple):
            value = format_sizes(value)
        lines.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def read_config(path: Path, cls: type) -> dict[str, Any]:
    """The settings in a TOML file, by field name; unknown keys are a one-line error naming the file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise WinnerError(f"{path}: cannot read it ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise WinnerError(f"{path}: not valid TOML ({e})") from None
    fields = settings_fields(cls)
    values = {key.replace("-", "_"): v for key, v in data.items()}
    unknown = sorted(k for k in values if k not in fields or not fields[k].metadata["cli"])
    if unknown:
        raise WinnerError(f"{path}: unknown setting(s) {', '.join(unknown)}; `winner init config` lists them all")
    return values


def merge_config(ctx: typer.Context, values: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """Command-line `values` with every option the user did not type taken from `config` instead."""
    merged = dict(values)
    for name, value in config.items():
        source = ctx.get_parameter_source(name)  # typer's own copy of click's ParameterSource: compare by name
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            merged[name] = value
    return merged
