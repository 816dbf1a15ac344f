"""Pipeline steps of the language model: `lm train`, `lm perplexity`, `lm generate` (see winner/pipeline.py).

Each step calls the same library function as its CLI command; the model is OUT/model unless `model` says
otherwise.
"""

from __future__ import annotations

from pathlib import Path

from winner.console import console
from winner.errors import WinnerError
from winner.pipeline import coerce_option, settings_from_options, step


@step("lm train")
def _lm_train(options: dict, out: Path) -> dict:
    from winner.lm import LMSettings, train_lm

    opts = {"out": str(out), **options}
    for key in ("min_count", "max_vocab"):  # default None: settings_from_options cannot infer their type
        if isinstance(opts.get(key), str):
            opts[key] = coerce_option(opts[key], 0, f"step 'lm train' option {key}")
    return train_lm(settings_from_options(LMSettings, opts, "lm train"))


@step("lm perplexity")
def _lm_perplexity(options: dict, out: Path) -> dict:
    from winner.lm import evaluate_lm

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
    from winner.lm import generate_text

    defaults = {"model": str(out), "prompt": "", "n": 50, "temperature": 1.0, "top_k": 0, "seed": 0}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise WinnerError(f"step 'lm generate': unknown option(s) {unknown}; expected some of {sorted(defaults)}")
    opts = {k: coerce_option(options.get(k, v), v, f"step 'lm generate' option {k}") for k, v in defaults.items()}
    result = generate_text(opts["model"], opts["prompt"], opts["n"], opts["temperature"], opts["top_k"],
                           opts["seed"])
    console.print(result["text"])
    return {**result, "seed": opts["seed"]}
