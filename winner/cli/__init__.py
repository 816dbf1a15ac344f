"""The `winner` command: a Typer app (app.py) with one sub-app per head, pipelines and tools."""
