"""Pipeline steps of the window scorer: `score train` and `score evaluate` (see winner/pipeline.py)."""

from __future__ import annotations

from pathlib import Path

from winner.console import console
from winner.pipeline import require_option, settings_from_options, step


@step("score train")
def _score_train(options: dict, out: Path) -> dict:
    from winner.scorer import ScoreSettings, train_scorer

    return train_scorer(settings_from_options(ScoreSettings, {"out": str(out), **options}, "score train"))


@step("score evaluate")
def _score_evaluate(options: dict, out: Path) -> dict:
    from winner.scorer import evaluate_scorer, format_evaluation

    opts = {"model": str(out), **options}
    data = require_option(opts, "data", "score evaluate")
    result = evaluate_scorer(opts["model"], data)
    console.print(format_evaluation(result))
    return result
