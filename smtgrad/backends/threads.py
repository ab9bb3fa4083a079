"""Solver threads: which threads of this process are running solver (native) code now.

A backend that runs its solver in a thread of this process (z3) marks the thread with
:func:`solver_thread`. After a timeout or an interrupt such a thread may have been
abandoned while its native code still runs, and tearing the interpreter down under it
can abort the process (exit -6 instead of the promised exit code). The process's exit
policy (:func:`smtgrad._entry.exit_now_if_a_solver_thread_lives`) asks
:func:`running_solver_threads` and, if any runs, leaves with ``os._exit`` instead.

This module is the one owner of that count; it imports nothing but the standard
library, so the exit policy can read it cheaply (through ``sys.modules``: if this
module was never imported, no solver thread ever ran).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_running = 0


@contextlib.contextmanager
def solver_thread() -> Iterator[None]:
    """Count the calling thread as running solver code while the block runs.

    Use it around *all* of a worker thread's solver work (conversion, check, model
    reading in the thread), so the count is only zero when no native solver code of
    ours can still be running.
    """
    global _running
    with _lock:
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1


def running_solver_threads() -> int:
    """How many threads are running solver code now (abandoned ones included).

    ``Thread.is_alive()`` cannot answer this: in CPython 3.11 a ``join()`` that a
    KeyboardInterrupt interrupts marks a thread that still runs as stopped.
    """
    with _lock:
        return _running
