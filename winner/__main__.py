"""`python -m winner`: the same as the `winner` command."""

from winner.cli.app import main

main()
