"""Console-script entry point and exit policy: Ctrl-C exits 130 at once, at any moment,
without a traceback, and the process never tears down under a running solver thread."""

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
    solver code, is deliberate: a KeyboardInterrupt raised inside z3's Python
    API can be turned into a ctypes ``ArgumentError`` (a false "internal error")
    or interrupt an object's construction so that its destructor releases a
    reference it never took (heap corruption, exit -6), and tearing the
    interpreter down while a Z3 thread still runs native code can abort it too.
    """
    with contextlib.suppress(OSError):
        os.write(2, b"smtgrad: interrupted\n")
    _kill_child_processes()
    os._exit(INTERRUPTED)


def _kill_child_processes() -> None:
    """Never leave a solver child (cvc5 runs in forked children) behind us.

    Only modules already imported are used (importing in a signal handler could
    deadlock on the import lock): if :mod:`smtgrad.backends.process` was never
    imported, no child of :func:`~smtgrad.backends.process.run_in_child` exists.
    """
    process = sys.modules.get("smtgrad.backends.process")
    if process is not None:
        process.kill_children()
        return
    # Transitional: children that multiprocessing started elsewhere (the fuzzer's own,
    # until it runs them through run_in_child); kill_children covers them too.
    processes = sys.modules.get("multiprocessing")
    if processes is not None:
        for child in processes.active_children():
            with contextlib.suppress(Exception):
                child.kill()


def install_interrupt_handler() -> None:
    """Make SIGINT exit 130 at once (see :func:`_on_interrupt`); main thread only."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_interrupt)


def exit_now_if_a_solver_thread_lives(code: int) -> None:
    """Skip interpreter finalisation while an abandoned solver thread still runs native code.

    Z3 runs in a daemon thread; after a timeout or an interrupt it may not have
    stopped yet, and tearing the interpreter down under it can abort the process
    (exit -6 instead of the promised code). Output is flushed first.
    """
    threads = sys.modules.get("smtgrad.backends.threads")  # never imported: none ran
    if threads is not None and threads.running_solver_threads():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def main() -> None:
    """Run the CLI, with the interrupt handler installed before the CLI's imports."""
    install_interrupt_handler()
    try:
        from smtgrad.cli import main as cli_main
    except KeyboardInterrupt:  # raised by code, not by SIGINT (the handler exits first)
        sys.stderr.write("smtgrad: interrupted\n")
        sys.exit(INTERRUPTED)
    cli_main()
