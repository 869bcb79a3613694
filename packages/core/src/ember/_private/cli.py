"""The ``ember`` command line. Cluster commands (start/stop/status) arrive with issue #4."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="ember", description="Ember command line")
    parser.add_argument("--version", action="version", version=f"ember {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
