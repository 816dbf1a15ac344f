"""The `winner` command: a Typer app with one sub-app per head and the cross-cutting commands.

Each command parses options and calls one library function. Expected failures (WinnerError) print one
line on stderr and exit 1; anything else is a bug and keeps its traceback. Heavy imports (gensim,
datasets, seqeval, numba kernels) happen inside commands so that `winner --help` is instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from winner import __version__
from winner.cli.common import RunDirArgument, choice_enum, cli_errors
from winner.cli.config import render_config
from winner.cli.embeddings import embeddings_app
from winner.cli.explain import register as register_explain
from winner.cli.lm import lm_app
from winner.cli.ner import ner_app
from winner.cli.pipeline import run_pipeline
from winner.cli.score import score_app
from winner.cli.sweep import sweep
from winner.cli.usage import run_command
from winner.core.atomic import write_text_atomic
from winner.errors import WinnerError
from winner.heads.registry import HEADS, gradcheck_cases, head

# -h as well as --help, on every command (click hands context settings down to sub-commands).
app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Window-based neural NLP from first principles: NER tagging, window scoring, "
                       "neural language modelling.")
app.add_typer(ner_app, name="ner")
app.add_typer(score_app, name="score")
app.add_typer(lm_app, name="lm")
register_explain(ner_app, score_app, lm_app)
app.command()(sweep)
app.add_typer(embeddings_app, name="embeddings")
init_app = typer.Typer(no_args_is_help=True, help="Write starting files (a settings file).")
app.add_typer(init_app, name="init")
HeadName = choice_enum("head", tuple(h.name for h in HEADS))


@init_app.command("config")
@cli_errors
def init_config(
    out: Annotated[Path | None, typer.Argument(dir_okay=False, help="The TOML file to write (default: print it).")
                   ] = None,
    head_name: Annotated[HeadName, typer.Option("--head", help="Whose `train` settings.")] = HeadName("ner"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
) -> None:
    """Write every setting of `winner HEAD train` with its default and help, for `winner HEAD train --config`."""
    text = render_config(head(head_name.value).settings, head_name.value)
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.exists() and not force:
        raise WinnerError(f"{out} exists; pass --force to overwrite it")
    write_text_atomic(out, text)
    typer.echo(f"wrote {out}: edit it, then run winner {head_name.value} train --config {out}", err=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"winner {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Window-based neural NLP from first principles: NER tagging, window scoring, neural language modelling."""


@app.command()
@cli_errors
def gradcheck(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every parameter's numbers.")] = False,
) -> None:
    """Float64 finite-difference check of every parameter of every head; exit 1 above 1e-6."""
    from winner.core.gradcheck import TOLERANCE

    reports = gradcheck_cases()
    worst = 0.0
    for r in reports:
        typer.echo(f"{'ok  ' if r.ok else 'FAIL'} {r.name}: worst relative error {r.worst:.2e}")
        for p in r.params:
            zero = "" if p.untouched_rows_zero else "  UNUSED ROWS HAVE A NONZERO GRADIENT"
            line = f"    {p.name:<4} {str(p.shape):<10} worst {p.worst:.2e} mean {p.mean:.2e}{zero}"
            if verbose or p.worst >= TOLERANCE or zero:
                line += f"  at {p.worst_index}: analytic {p.analytic:.10g} numeric {p.numeric:.10g}"
            typer.echo(line)
        worst = max(worst, r.worst)
    ok = all(r.ok for r in reports)
    typer.echo(f"{len(reports)} cases, worst relative error {worst:.2e} (tolerance {TOLERANCE:.0e}): "
               f"{'passed' if ok else 'FAILED'}")
    raise typer.Exit(0 if ok else 1)


@app.command()
@cli_errors
def run(
    pipeline: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A pipelines/*.toml recipe.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="NAME=VALUE: sets the variable ${NAME} and the "
                                                                 "setting NAME of every train step that has it "
                                                                 "(--set epochs=2).")] = None,
) -> None:
    """Run an end-to-end recipe (train, evaluate, write a summary) from a TOML file."""
    overrides = {}
    for item in set_ or []:
        if "=" not in item:
            raise WinnerError(f"--set expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k.strip()] = v
    run_pipeline(pipeline, overrides)


@app.command()
@cli_errors
def serve(
    run_dir: RunDirArgument,
    host: Annotated[str, typer.Option(help="Address to listen on; the default lets only this machine in.")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one, printed).")] = 8000,
) -> None:
    """Serve a page to type text into and see its entities and why, and its JSON API (POST /tag, /explain)."""
    from winner.cli.serve import serve as run_server

    run_server(run_dir, host, port)


@app.command()
@cli_errors
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Fewer windows/tokens per run (noisier, ~4x faster).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
    out: Annotated[Path | None, typer.Option(dir_okay=False, help="Also write the JSON report to this file.")] = None,
    plot: Annotated[Path | None, typer.Option(dir_okay=False, help="Also draw the figures as a PNG.")] = None,
    threads: Annotated[str, typer.Option(help="Comma-separated thread counts.")] = "1,2",
    repeats: Annotated[int, typer.Option(min=3, help="Timed runs per figure; the median is reported.")] = 3,
    only: Annotated[str, typer.Option(help="Comma-separated subset of gemm,ner,tag,lm,lm-classes (the factored LM "
                                           "output).")] = "gemm,ner,tag,lm,lm-classes",
    no_torch: Annotated[bool, typer.Option("--no-torch", help="Skip PyTorch (no ratios).")] = False,
) -> None:
    """Benchmark the core against PyTorch on the CPU (same shapes, batch sizes, threads, same run).

    A table of winner's and PyTorch's rates, their ratio and winner's share of the numpy GEMM ceiling.

    Each figure is the median of --repeats timed runs after a warm-up; JIT time is reported on its own.

    PyTorch comparisons need torch==2.13.0, the "bench" extra. Measure on a quiet machine.
    """
    from winner.core.bench import WORKLOADS, format_table, parse_list, parse_threads, plot_report, run

    try:
        thread_counts = parse_threads(threads)
        workloads = parse_list(only, "only", WORKLOADS)
    except ValueError as e:
        raise WinnerError(str(e)) from None
    if not no_torch:
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise WinnerError("PyTorch is not installed: pip install torch==2.13.0 (or pass --no-torch)") from e
    report = run(quick=quick, threads=thread_counts, repeats=repeats, use_torch=not no_torch, workloads=workloads,
                 progress=lambda s: typer.echo(f"... {s}", err=True))
    text = json.dumps(report.to_json(), indent=2)
    if out is not None:
        write_text_atomic(out, text + "\n")
    if plot is not None:
        plot_report(report, plot)
    typer.echo(text if json_out else format_table(report))


def main() -> None:
    """The `winner` command. When help goes to a pipe or file, it is plain text with no line cut to the width
    of a terminal that is not there (rich panels would wrap at 80 columns)."""
    command = typer.main.get_command(app)
    if not sys.stdout.isatty():
        _plain_help(command)
        command.context_settings.update(terminal_width=100_000, max_content_width=100_000)
    run_command(command, "winner")


def _plain_help(command) -> None:
    """Switch a command and its sub-commands from rich to click's plain help formatting."""
    command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


if __name__ == "__main__":
    main()
