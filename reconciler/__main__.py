"""`python -m reconciler` is the `backfill` command."""

from reconciler.cli import main

main()
