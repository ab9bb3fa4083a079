"""Console-script entry point that turns Ctrl-C into exit 130 even during start-up imports."""

from __future__ import annotations

import contextlib
import os
import sys
import threading


def _exit_now_if_a_solver_thread_lives(code: int) -> None:
    """Skip interpreter finalisation while an abandoned solver thread still runs native code.

    Z3 runs in a daemon thread; after a timeout or Ctrl-C it may not have stopped
    yet, and tearing the interpreter down under it can abort the process (exit -6
    instead of the promised code). Output is flushed first.
    """
    if any(thread.daemon and thread.is_alive() for thread in threading.enumerate()):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def main() -> None:
    """Run the CLI; a KeyboardInterrupt at any moment exits 130 without a traceback."""
    try:
        from smtgrad.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("smtgrad: interrupted\n")
        _exit_now_if_a_solver_thread_lives(130)
        sys.exit(130)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        _exit_now_if_a_solver_thread_lives(code)
        raise
