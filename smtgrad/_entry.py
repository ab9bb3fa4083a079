"""Console-script entry point that turns Ctrl-C into exit 130 even during start-up imports."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the CLI; a KeyboardInterrupt at any moment exits 130 without a traceback."""
    try:
        from smtgrad.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("smtgrad: interrupted\n")
        sys.exit(130)
