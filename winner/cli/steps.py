"""The steps a pipeline can run, one per library call, and the registry `winner run` looks them up in.

Each step is fn(options, out_dir) -> result dict and calls the same library function as its CLI command. A
train step names its settings dataclass: `winner run` checks the step's options against it (and applies a
`--set` of one of its fields) before any step runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from winner.core.console import console
from winner.errors import WinnerError
from winner.heads.registry import HEADS, Head
from winner.heads.settings import settings_from_options

StepRunner = Callable[[dict, Path], dict]


@dataclass(frozen=True)
class Step:
    run: StepRunner
    settings: type | None = None  # the settings dataclass of a train step


STEPS: dict[str, Step] = {}


def step(name: str, settings: type | None = None) -> Callable[[StepRunner], StepRunner]:
    """Register a step runner: fn(options, out_dir) -> result dict."""

    def register(fn: StepRunner) -> StepRunner:
        STEPS[name] = Step(fn, settings)
        return fn

    return register


def coerce_option(value, default, where: str):
    """Strings from ${var} substitution take the type of the option's default (int, float, bool)."""
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


# ---------------------------------------------------------------- training, for every head


def _train_step(head: Head) -> StepRunner:
    def run(options: dict, out: Path) -> dict:
        where = f"step '{head.name} train'"
        return head.train(settings_from_options(head.settings, {"out": str(out), **options}, where))

    return run


for _head in HEADS:
    step(f"{_head.name} train", _head.settings)(_train_step(_head))


# ---------------------------------------------------------------- tagger


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


@step("score evaluate")
def _score_evaluate(options: dict, out: Path) -> dict:
    from winner.heads.scorer import evaluate_scorer, format_evaluation

    opts = {"model": str(out), **options}
    data = require_option(opts, "data", "score evaluate")
    result = evaluate_scorer(opts["model"], data)
    console.print(format_evaluation(result))
    return result


# ---------------------------------------------------------------- language model


@step("lm perplexity")
def _lm_perplexity(options: dict, out: Path) -> dict:
    """One model (`model`, default the pipeline's run), or the linear mixture of `models` (run directories,
    neural or n-gram, relative to the pipeline's out: "." is its own run) with `mix_weights` ("auto": fitted by
    EM on valid)."""
    from winner.heads.lm import evaluate_lm
    from winner.heads.mixture import evaluate_mixture

    opts = {"model": str(out), "split": "test", "text": None, **options}
    unknown = sorted(set(opts) - {"model", "models", "mix_weights", "split", "text"})
    if unknown:
        raise WinnerError(f"step 'lm perplexity': unknown option(s) {unknown}; expected model or models (with "
                          f"mix_weights), split, text")
    if "models" in opts:
        if not isinstance(opts["models"], list) or not opts["models"]:
            raise WinnerError("step 'lm perplexity': models must be a list of run directories")
        runs = [str(out / str(m)) for m in opts["models"]]
        result = evaluate_mixture(runs, opts["split"], str(opts.get("mix_weights", "auto")), opts["text"])
    else:
        result = evaluate_lm(opts["model"], opts["split"], opts["text"])
    where = opts["text"] or f"{opts['split']} split"
    mixed = f" (mixture weights {', '.join(f'{w:.3f}' for w in result['weights'])})" if "weights" in result else ""
    console.print(f"perplexity {result['perplexity']:.2f} on {result['tokens']:,} tokens ({where}){mixed}")
    return {**result, "split": None if opts["text"] else opts["split"], "text_file": opts["text"]}


@step("lm ngram")
def _lm_ngram(options: dict, out: Path) -> dict:
    """An interpolated modified Kneser-Ney model in `out` (default OUT/ngram), order 5, on `corpus` (brown)."""
    from winner.heads.ngram import train_ngram

    defaults = {"out": str(out / "ngram"), "order": 5, "corpus": "brown"}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise WinnerError(f"step 'lm ngram': unknown option(s) {unknown}; expected some of {sorted(defaults)}")
    opts = {k: coerce_option(options.get(k, v), v, f"step 'lm ngram' option {k}") for k, v in defaults.items()}
    return train_ngram(opts["corpus"], opts["order"], opts["out"])


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
