"""`winner ner explain`, `winner score explain`, `winner lm explain`: why a head chose what it chose.

Each prints a table (one line per window: the score, and each word's gradient x input contribution), or
`--json`, or `--html` (a self-contained page with heat strips). `register` adds them to the heads' apps.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from winner.cli.common import RunDirArgument, TextArgument, cli_errors, read_sentences, read_text
from winner.errors import WinnerError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")]
HtmlFlag = Annotated[bool, typer.Option("--html", help="Print a self-contained HTML page with heat strips.")]


def emit(as_json: bool, as_html: bool, records: list, table: str, page) -> None:
    """Print JSON records, the HTML page (built only when asked for) or the table."""
    if as_json and as_html:
        raise WinnerError("--json and --html: choose one")
    if as_json:
        typer.echo(json.dumps(records, ensure_ascii=False))
    elif as_html:
        typer.echo(page(), nl=False)
    else:
        typer.echo(table)


@cli_errors
def ner_explain(run_dir: RunDirArgument, text: TextArgument = "-", as_json: JsonFlag = False,
                as_html: HtmlFlag = False) -> None:
    """For every token, how much each word of its window (and its casing) raised the logit of its tag.

    Gradient x input from the tagger's own backward pass; rest = the score not attributed to the inputs.
    """
    from winner.heads.explain import format_table
    from winner.heads.model_io import resolve_model_dir
    from winner.heads.render import render_page, tag
    from winner.heads.tagger import Tagger

    tagged = tag(Tagger.load(resolve_model_dir(run_dir)), read_sentences(text), explain=True)
    emit(as_json, as_html, [s.to_json() for s in tagged],
         format_table([x for s in tagged for x in s.explanations], "logit"), lambda: render_page(tagged))


@cli_errors
def score_explain(run_dir: RunDirArgument, text: TextArgument = "-", as_json: JsonFlag = False,
                  as_html: HtmlFlag = False) -> None:
    """For every window, how much each word (and its casing) raised its score; in the page, the windows at or
    above the stored threshold are highlighted."""
    from winner.heads.explain import explain_scorer, format_table
    from winner.heads.render import scorer_page
    from winner.heads.scorer import load_scorer

    scorer = load_scorer(run_dir)
    sentences = read_sentences(text)
    explanations = explain_scorer(scorer, sentences)
    emit(as_json, as_html, [x.to_json() for x in explanations], format_table(explanations, "score"),
         lambda: scorer_page(scorer, sentences, explanations))


@cli_errors
def lm_explain(run_dir: RunDirArgument, text: TextArgument = "-", as_json: JsonFlag = False,
               as_html: HtmlFlag = False) -> None:
    """For every word of the text, how much each word before it raised its log-probability."""
    from winner.heads.explain import explain_lm, format_table
    from winner.heads.lm import LanguageModel
    from winner.heads.model_io import resolve_model_dir
    from winner.heads.render import lm_page

    explanations = explain_lm(LanguageModel.load(resolve_model_dir(run_dir)), read_text(text))
    if not explanations:
        raise WinnerError("no words to read: give some text or pipe it into -")
    emit(as_json, as_html, [x.to_json() for x in explanations], format_table(explanations, "log p"),
         lambda: lm_page(explanations))


def register(ner_app: typer.Typer, score_app: typer.Typer, lm_app: typer.Typer) -> None:
    """Add the explain commands to the heads' sub-apps."""
    ner_app.command("explain")(ner_explain)
    score_app.command("explain")(score_explain)
    lm_app.command("explain")(lm_explain)
