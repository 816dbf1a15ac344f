"""The model card: every run directory gets a README.md saying what was trained, on what, how, how well, by which
winner version, when, and with which command, so a run directory explains itself."""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from winner import __version__
from winner.core.atomic import write_text_atomic
from winner.errors import WinnerError
from winner.heads.ner import evaluate_tagger
from winner.heads.settings import Settings

TITLES = {"ner": "NER tagger (softmax window tagger)", "score": "max-margin window scorer",
          "lm": "fixed-window neural language model"}


def command_line() -> str:
    """The command that is running, as a user would type it (the Python call when winner runs as a library)."""
    if Path(sys.argv[0]).name in ("winner", "__main__.py"):
        return shlex.join(["winner", *sys.argv[1:]])
    return "winner.train(...) from Python: " + shlex.join(sys.argv)


def write_model_card(head: str, settings: Settings, summary: dict) -> Path:
    """Write OUT/README.md for a finished run of `head` and return its path."""
    out = Path(settings.out)
    config = json.loads((out / "model" / "config.json").read_text(encoding="utf-8"))
    training = config.get("training") or config.get("meta") or {}
    lines = [f"# winner {TITLES.get(head, head)}", "",
             f"Trained {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} with winner {__version__} "
             f"(model format {config.get('format')}).", "", "```", command_line(), "```", "", "## Data", ""]
    for key in ("train_source", "dev_source", "corpus", "label"):
        if training.get(key):
            lines.append(f"- {key.replace('_', ' ')}: `{training[key]}`")
    if training.get("embedding_stats"):
        lines.append(f"- embeddings: `{json.dumps(training['embedding_stats'], sort_keys=True)}`")
    lines += ["", "## Scores", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {_number(v)} |" for k, v in summary.items()
              if isinstance(v, int | float) and not isinstance(v, bool) and k != "seed"]
    lines += _per_type_lines(head, out, training)
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in asdict(settings).items()]
    lines += ["", "Load it from Python with `winner.load(\"" + str(out) + "\")`; `model/` holds config.json, "
              "params.npz and vocab.json (plain arrays and json)."]
    path = out / "README.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _per_type_lines(head: str, out: Path, training: dict) -> list[str]:
    """Entity scores per type on the dev data, for a tagger whose dev data can be read again."""
    dev = training.get("dev_source", "")
    if head != "ner" or not dev or dev.startswith("every 10th"):
        return []
    try:
        scores = evaluate_tagger(out / "model", re.sub(r" \((validation|valid|dev) split\)$", "", dev))
    except WinnerError:
        return []
    lines = ["", f"Per entity type on the dev data (`{dev}`):", "",
             "| type | precision | recall | F1 | gold | predicted | correct |", "|---|---|---|---|---|---|---|"]
    for kind, v in sorted(scores["per_type"].items()):
        lines.append(f"| {kind} | {100 * v['precision']:.2f} | {100 * v['recall']:.2f} | {100 * v['f1']:.2f} | "
                     f"{v['gold']} | {v['predicted']} | {v['correct']} |")
    lines.append(f"| overall | {100 * scores['precision']:.2f} | {100 * scores['recall']:.2f} | "
                 f"{100 * scores['f1']:.2f} | | | |")
    return lines


def _number(v: float) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:.4f}"
