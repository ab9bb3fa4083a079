"""Console-script entry point: Ctrl-C exits 130 at once, at any moment, without a traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType

INTERRUPTED = 130


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT: kill solver child processes and leave at once (exit 130).

    Exiting from the handler, rather than unwinding a KeyboardInterrupt through
    solver code, is deliberate: a KeyboardInterrupt raised while Python runs
    inside a native callback can be swallowed, and tearing the interpreter down
    while a Z3 thread still runs native code can abort the process.
    """
    with contextlib.suppress(OSError):
        os.write(2, b"smtgrad: interrupted\n")
    processes = sys.modules.get("multiprocessing")
    if processes is not None:  # cvc5 runs in forked children: never leave one behind
        for child in processes.active_children():
            with contextlib.suppress(Exception):
                child.kill()
    os._exit(INTERRUPTED)


def _exit_now_if_a_solver_thread_lives(code: int) -> None:
    """Skip interpreter finalisation while an abandoned solver thread still runs native code.

    Z3 runs in a daemon thread; after a timeout it may not have stopped yet, and
    tearing the interpreter down under it can abort the process (exit -6 instead
    of the promised code). Output is flushed first.
    """
    if any(thread.daemon and thread.is_alive() for thread in threading.enumerate()):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def main() -> None:
    """Run the CLI."""
    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        from smtgrad.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:  # raised by code, not by SIGINT (the handler exits first)
        sys.stderr.write("smtgrad: interrupted\n")
        _exit_now_if_a_solver_thread_lives(INTERRUPTED)
        sys.exit(INTERRUPTED)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        _exit_now_if_a_solver_thread_lives(code)
        raise
