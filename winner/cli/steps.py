"""The steps a pipeline can run, one per library call, and the registry `winner run` looks them up in.

Each step is fn(options, out_dir) -> result dict and calls the same library function as its CLI command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from winner.core.console import console
from winner.errors import WinnerError

StepRunner = Callable[[dict, Path], dict]
STEPS: dict[str, StepRunner] = {}


def step(name: str) -> Callable[[StepRunner], StepRunner]:
    """Register a step runner: fn(options, out_dir) -> result dict."""

    def register(fn: StepRunner) -> StepRunner:
        STEPS[name] = fn
        return fn

    return register


def settings_from_options(cls, options: dict, where: str):
    """A settings dataclass from a step's options, refusing unknown ones and coercing ${var} strings."""
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


# ---------------------------------------------------------------- tagger


@step("ner train")
def _ner_train(options: dict, out: Path) -> dict:
    from winner.heads.ner import train_tagger
    from winner.heads.ner_settings import NERSettings

    return train_tagger(settings_from_options(NERSettings, {"out": str(out), **options}, "ner train"))


@step("ner evaluate")
def _ner_evaluate(options: dict, out: Path) -> dict:
    from winner.heads.ner import evaluate_tagger, format_report

    opts = {"model": str(out), **options}
    data = require_option(opts, "data", "ner evaluate")
    plot = opts.get("plot") or str(out / f"confusion_{Path(data).stem}.png")
    scores = evaluate_tagger(opts["model"], data, plot)
    console.print(format_report(scores))
    return {**scores, "plot": plot}


# ---------------------------------------------------------------- scorer


@step("score train")
def _score_train(options: dict, out: Path) -> dict:
    from winner.heads.scorer import ScoreSettings, train_scorer

    return train_scorer(settings_from_options(ScoreSettings, {"out": str(out), **options}, "score train"))


@step("score evaluate")
def _score_evaluate(options: dict, out: Path) -> dict:
    from winner.heads.scorer import evaluate_scorer, format_evaluation

    opts = {"model": str(out), **options}
    data = require_option(opts, "data", "score evaluate")
    result = evaluate_scorer(opts["model"], data)
    console.print(format_evaluation(result))
    return result


# ---------------------------------------------------------------- language model


@step("lm train")
def _lm_train(options: dict, out: Path) -> dict:
    from winner.heads.lm import LMSettings, train_lm

    opts = {"out": str(out), **options}
    for key in ("min_count", "max_vocab"):  # default None: settings_from_options cannot infer their type
        if isinstance(opts.get(key), str):
            opts[key] = coerce_option(opts[key], 0, f"step 'lm train' option {key}")
    return train_lm(settings_from_options(LMSettings, opts, "lm train"))


@step("lm perplexity")
def _lm_perplexity(options: dict, out: Path) -> dict:
    from winner.heads.lm import evaluate_lm

    opts = {"model": str(out), "split": "test", "text": None, **options}
    unknown = sorted(set(opts) - {"model", "split", "text"})
    if unknown:
        raise WinnerError(f"step 'lm perplexity': unknown option(s) {unknown}; expected model, split, text")
    result = evaluate_lm(opts["model"], opts["split"], opts["text"])
    where = opts["text"] or f"{opts['split']} split"
    console.print(f"perplexity {result['perplexity']:.2f} on {result['tokens']:,} tokens ({where})")
    return {**result, "split": None if opts["text"] else opts["split"], "text_file": opts["text"]}


@step("lm generate")
def _lm_generate(options: dict, out: Path) -> dict:
    from winner.heads.lm import generate_text

    defaults = {"model": str(out), "prompt": "", "n": 50, "temperature": 1.0, "top_k": 0, "seed": 0}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise WinnerError(f"step 'lm generate': unknown option(s) {unknown}; expected some of {sorted(defaults)}")
    opts = {k: coerce_option(options.get(k, v), v, f"step 'lm generate' option {k}") for k, v in defaults.items()}
    result = generate_text(opts["model"], opts["prompt"], opts["n"], opts["temperature"], opts["top_k"],
                           opts["seed"])
    console.print(result["text"])
    return {**result, "seed": opts["seed"]}
