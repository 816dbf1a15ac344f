"""`winner run PIPELINE.toml`: named end-to-end recipes (train, evaluate, ... then a summary).

A pipeline is a TOML file:

    name = "wikigold_ner"
    out = "runs/${name}"              # run directory; ${var} is replaced from [vars], --set or the top level
    [vars]
    data = "data/wikigold"
    [[step]]
    run = "ner train"                 # one of STEPS
    into = "second"                   # optional: this step writes in OUT/second instead of OUT
    train = "${data}/train.conll"     # the step's options, named as the Python settings
    [[step]]
    run = "ner evaluate"
    data = "${data}/test.conll"

Relative paths are taken from the directory `winner run` is started in. Each step calls the same library
function as its CLI command; the results of all steps go to OUT/pipeline_summary.json and are printed.

`--set KEY=VALUE` sets the variable KEY and the setting KEY of every train step that has it (`--set epochs=2`).
A train step's options are checked against its settings (winner.heads.settings) before any step runs: names,
types and ranges, as for the CLI options.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from pathlib import Path

from winner.cli.steps import STEPS
from winner.core.atomic import write_text_atomic
from winner.core.console import console
from winner.errors import WinnerError
from winner.heads.settings import BadSettingError, coerce_setting, settings_fields, settings_from_options

_VAR = re.compile(r"\$\{(\w+)\}")


def substitute(value, variables: dict[str, str], where: str):
    """Replace ${name} in every string of a TOML value."""
    if isinstance(value, str):
        def repl(m: re.Match) -> str:
            if m.group(1) not in variables:
                raise WinnerError(f"{where}: unknown variable ${{{m.group(1)}}}; define it in [vars] or with --set")
            return str(variables[m.group(1)])

        return _VAR.sub(repl, value)
    if isinstance(value, list):
        return [substitute(v, variables, where) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables, where) for k, v in value.items()}
    return value


def resolve_variables(variables: dict[str, str], where: str) -> dict[str, str]:
    """Every variable with the ${...} in it replaced, through any depth; a cycle is an error."""
    done: dict[str, str] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> str:
        if name in chain:
            raise WinnerError(f"{where}: variable ${{{name}}} refers to itself through "
                              f"{' -> '.join(f'${{{n}}}' for n in (*chain, name))}")
        if name not in done:
            inner = {n: resolve(n, (*chain, name)) for n in _VAR.findall(variables[name]) if n in variables}
            done[name] = substitute(variables[name], inner, where)
        return done[name]

    return {name: resolve(name, ()) for name in variables}


def referenced_variables(value) -> set[str]:
    """The names of every ${name} in a TOML value."""
    if isinstance(value, str):
        return set(_VAR.findall(value))
    if isinstance(value, list):
        return set().union(*map(referenced_variables, value))
    if isinstance(value, dict):
        return set().union(*map(referenced_variables, value.values()))
    return set()


TOP_LEVEL = {"name": str, "out": str, "vars": dict, "step": list}
_KIND_NAMES = {str: "string", dict: "table ([vars])", list: "list of [[step]] tables"}


def read_pipeline(path: Path) -> dict:
    """The TOML document, its top level and step tables checked: known keys of the right kinds only."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise WinnerError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); a pipeline is a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise WinnerError(f"{path}: invalid TOML ({e})") from None
    for key, value in doc.items():
        if key not in TOP_LEVEL:
            raise WinnerError(f"{path}: unknown top-level key or table {key!r}; expected some of "
                              f"{', '.join(TOP_LEVEL)}")
        if not isinstance(value, TOP_LEVEL[key]):
            raise WinnerError(f"{path}: {key} must be a {_KIND_NAMES[TOP_LEVEL[key]]}, found {value!r}")
    steps = doc.get("step", [])
    if not steps:
        raise WinnerError(f"{path}: no [[step]] tables; a pipeline needs at least one step")
    for i, raw in enumerate(steps, 1):
        if not isinstance(raw, dict):
            raise WinnerError(f"{path}: step {i} must be a [[step]] table, found {raw!r}")
        if "out" in raw:
            raise WinnerError(f"{path}: step {i} sets out; every step writes in the pipeline's out (set it at the "
                              "top level or with --set out=DIR, and `into = NAME` for a subdirectory of it)")
        into = raw.get("into", "")
        if not isinstance(into, str) or "/" in into or "\\" in into or into.startswith("."):
            raise WinnerError(f"{path}: step {i} has into = {into!r}; expected a plain subdirectory name")
    name = doc.get("name", Path(path).stem)
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise WinnerError(f"{path}: name {name!r} must be a plain name (no '/', not starting with '.'): it names "
                          "the directory under runs/")
    return doc


def load_pipeline(path: Path, overrides: dict[str, str]) -> tuple[str, Path, list[tuple[str, dict]]]:
    """(name, out dir, [(step name, options)]) with variables substituted, `overrides` (--set) applied to the
    variables and to the train steps' settings, and the train steps' options checked and typed; a step's
    options hold "into" when it writes in OUT/into."""
    doc = read_pipeline(path)
    steps = doc["step"]
    kinds = [raw.get("run") for raw in steps]
    for i, kind in enumerate(kinds, 1):
        if kind not in STEPS:
            raise WinnerError(f"{path}: step {i} has run = {kind!r}; expected one of {sorted(STEPS)}")
    classes = {STEPS[kind].settings for kind in kinds} - {None}
    fields = set().union(*(settings_fields(cls) for cls in classes)) - {"out"}  # out: the pipeline's own
    _check_overrides(path, doc, overrides, classes, fields)

    name = str(doc.get("name", Path(path).stem))
    variables = resolve_variables({"name": name, **{k: str(v) for k, v in doc.get("vars", {}).items()},
                                   **overrides}, str(path))
    out = Path(substitute(str(overrides.get("out", doc.get("out", f"runs/{name}"))), variables, str(path)))
    parsed = []
    for i, (kind, raw) in enumerate(zip(kinds, steps, strict=True), 1):
        where = f"{path} step {i} ({kind})"
        options = substitute({k: v for k, v in raw.items() if k not in ("run", "into")}, variables, where)
        cls = STEPS[kind].settings
        if cls is not None:
            options.update({k: v for k, v in overrides.items() if k != "out" and k in settings_fields(cls)})
            settings = settings_from_options(cls, {"out": str(out), **options}, where)
            options = {k: getattr(settings, k) for k in options}
        if raw.get("into"):
            options["into"] = raw["into"]
        parsed.append((kind, options))
    return name, out, parsed


def _check_overrides(path: Path, doc: dict, overrides: dict[str, str], classes: set[type], fields: set[str]) -> None:
    """Every --set names a variable or a setting of a train step, and a setting's value fits it."""
    variables = {"name", "out", *doc.get("vars", {}), *referenced_variables(doc)}
    for key, value in overrides.items():
        if key not in variables and key not in fields:
            raise WinnerError(f"--set {key}: {path} has no variable or step setting {key!r}; expected one of "
                              f"{', '.join(sorted(variables | fields))}")
        for cls in classes:
            if key != "out" and key in settings_fields(cls):
                try:
                    coerce_setting(cls, key, value)
                except BadSettingError as e:
                    raise WinnerError(f"--set {key}={value}: {e}") from None


def run_pipeline(path: Path, overrides: dict[str, str] | None = None) -> dict:
    """Run every step in order; write OUT/pipeline_summary.json; return it."""
    name, out, steps = load_pipeline(path, overrides or {})
    out.mkdir(parents=True, exist_ok=True)
    summary = {"pipeline": name, "file": str(path), "out": str(out), "steps": []}
    t0 = time.perf_counter()
    for i, (kind, options) in enumerate(steps, 1):
        console.rule(f"[{i}/{len(steps)}] {kind}")
        ts = time.perf_counter()
        into = options.get("into")
        result = STEPS[kind].run({k: v for k, v in options.items() if k != "into"}, out / into if into else out)
        summary["steps"].append({"run": kind, "options": options, "seconds": time.perf_counter() - ts,
                                 "result": result})
    summary["seconds"] = time.perf_counter() - t0
    write_text_atomic(out / "pipeline_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    console.rule("summary")
    for s in summary["steps"]:
        console.print(f"{s['run']:<16} {s['seconds']:7.1f}s  {_headline(s['result'])}")
    console.print(f"pipeline {name} done in {summary['seconds']:.0f}s; summary in {out / 'pipeline_summary.json'}")
    return summary


def _headline(result: dict) -> str:
    """The one or two numbers a person looks for in a step's result."""
    keys = ("best_dev_f1", "f1", "auc", "perplexity", "best_valid_perplexity", "text")
    return ", ".join(f"{k} {result[k]:.4f}" if isinstance(result[k], float) else f"{k} {result[k]}"
                     for k in keys if k in result)
