"""``python -m optzoo.bench``: the command line (see :mod:`optzoo.cli`)."""

import sys

from optzoo.cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
