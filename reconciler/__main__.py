"""`python -m reconciler` is the `backfill` command; `main` is its entry point."""

from __future__ import annotations

import gc
from typing import NoReturn


def main() -> NoReturn:
    # Start-up builds the modules, their classes and the commands' options, none of it garbage
    # and all of it kept to the end: cyclic collections meanwhile free nothing (they took a
    # twentieth of a `validate` of a few plans), and what they would walk later is frozen out
    # of their way. The command runs with the collector as usual.
    gc.disable()
    from reconciler.cli import main as command  # noqa: PLC0415 (loaded with the collector off)

    gc.freeze()
    gc.enable()
    command()


if __name__ == "__main__":
    main()
