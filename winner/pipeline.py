"""`winner run PIPELINE.toml`: named end-to-end recipes (train, evaluate, ... then a summary).

A pipeline is a TOML file:

    name = "wikigold_ner"
    out = "runs/${name}"              # run directory; ${var} is replaced from [vars], --set or the top level
    [vars]
    data = "data/wikigold"
    [[step]]
    run = "ner train"                 # one of STEPS
    train = "${data}/train.conll"     # the step's options, named as the Python settings
    [[step]]
    run = "ner evaluate"
    data = "${data}/test.conll"

Relative paths are taken from the directory `winner run` is started in. Each step calls the same library
function as its CLI command; the results of all steps go to OUT/pipeline_summary.json and are printed.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

from winner.console import console
from winner.errors import WinnerError

StepRunner = Callable[[dict, Path], dict]
STEPS: dict[str, StepRunner] = {}


def step(name: str) -> Callable[[StepRunner], StepRunner]:
    """Register a step runner: fn(options, out_dir) -> result dict."""

    def register(fn: StepRunner) -> StepRunner:
        STEPS[name] = fn
        return fn

    return register


@step("ner train")
def _ner_train(options: dict, out: Path) -> dict:
    from winner.ner import train_tagger
    from winner.ner_settings import NERSettings

    return train_tagger(settings_from_options(NERSettings, {"out": str(out), **options}, "ner train"))


@step("ner evaluate")
def _ner_evaluate(options: dict, out: Path) -> dict:
    from winner.ner import evaluate_tagger, format_report

    opts = {"model": str(out), **options}
    data = require_option(opts, "data", "ner evaluate")
    plot = opts.get("plot") or str(out / f"confusion_{Path(data).stem}.png")
    scores = evaluate_tagger(opts["model"], data, plot)
    console.print(format_report(scores))
    return {**scores, "plot": plot}


def _load_head_steps() -> None:
    """Heads beyond the tagger register their steps in their own modules."""
    import importlib

    for module in ("winner.scorer_pipeline", "winner.lm_pipeline"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise


def settings_from_options(cls, options: dict, where: str):
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise WinnerError(f"step '{where}': unknown option(s) {unknown}; expected some of {sorted(names)}")
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    return cls(**{k: coerce_option(v, defaults[k], f"step '{where}' option {k}") for k, v in options.items()})


def coerce_option(value, default, where: str):
    """Strings from ${var} substitution take the type of the setting's default (int, float, bool)."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        return type(default)(value)
    except ValueError:
        raise WinnerError(f"{where}: expected a {type(default).__name__}, found {value!r}") from None


def require_option(options: dict, key: str, where: str) -> str:
    if key not in options:
        raise WinnerError(f"step '{where}' needs the option '{key}'")
    return str(options[key])


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


def load_pipeline(path: Path, overrides: dict[str, str]) -> tuple[str, Path, list[tuple[str, dict]]]:
    """(name, out dir, [(step name, options)]) with variables substituted."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise WinnerError(f"{path}: invalid TOML ({e})") from e
    name = str(doc.get("name", Path(path).stem))
    variables = {"name": name, **{k: str(v) for k, v in doc.get("vars", {}).items()}, **overrides}
    variables = {k: substitute(v, variables, str(path)) for k, v in variables.items()}
    out = Path(substitute(str(overrides.get("out", doc.get("out", f"runs/{name}"))), variables, str(path)))
    steps = doc.get("step", [])
    if not steps:
        raise WinnerError(f"{path}: no [[step]] tables; a pipeline needs at least one step")
    _load_head_steps()
    parsed = []
    for i, raw in enumerate(steps, 1):
        options = dict(raw)
        kind = options.pop("run", None)
        if kind not in STEPS:
            raise WinnerError(f"{path}: step {i} has run = {kind!r}; expected one of {sorted(STEPS)}")
        parsed.append((kind, substitute(options, variables, f"{path} step {i}")))
    return name, out, parsed


def run_pipeline(path: Path, overrides: dict[str, str] | None = None) -> dict:
    """Run every step in order; write OUT/pipeline_summary.json; return it."""
    name, out, steps = load_pipeline(path, overrides or {})
    out.mkdir(parents=True, exist_ok=True)
    summary = {"pipeline": name, "file": str(path), "out": str(out), "steps": []}
    t0 = time.perf_counter()
    for i, (kind, options) in enumerate(steps, 1):
        console.rule(f"[{i}/{len(steps)}] {kind}")
        ts = time.perf_counter()
        result = STEPS[kind](options, out)
        summary["steps"].append({"run": kind, "options": options, "seconds": time.perf_counter() - ts,
                                 "result": result})
    summary["seconds"] = time.perf_counter() - t0
    (out / "pipeline_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
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
