"""Run a function in a child process with a deadline, and get plain values back.

The one place that starts, waits for, kills and reaps smtgrad's child processes. A
solver that cannot be stopped from inside the process (cvc5 does not always honour its
own time limit on nonlinear problems, and holds the interpreter lock while it works)
runs in a child, which can always be killed.

API::

    result = run_in_child(function, args, timeout)   # -> ChildResult
    result.status   # ChildStatus.OK | RAISED | CRASHED | TIMEOUT
    result.value    # function(*args), when OK
    result.error    # one line, when RAISED ("TypeName: message") or CRASHED (how it died)
    result.details  # the last lines of the child's traceback, when RAISED
    result.seconds  # wall-clock time from start to answer

* The child is forked where the platform can (Linux, macOS): ``function`` and ``args``
  are then inherited, not pickled (pysmt formulas, closures and bound methods are
  fine). Elsewhere the platform's default start method is used, and they must pickle.
* The return value travels back through a pipe, so it must pickle: return plain data
  (numbers, strings, tuples, dicts), never solver objects. A result that does not
  pickle is reported as RAISED.
* ``timeout`` (seconds, ``None``: no limit) bounds the wait for the answer; when it
  passes, the child is killed and the result is TIMEOUT. Give a solver's own time
  limit a margin (ask cvc5 for ``t`` and wait ``t + 0.5``) so that it answers
  "unknown" itself when it can.
* Every way out -- answer, timeout, crash, an exception in the parent (a
  ``KeyboardInterrupt`` included) -- kills the child if it still runs and reaps it
  (``join``): no child outlives the call and none is left as a zombie.
* The child ignores SIGINT: the parent owns its lifetime (a terminal's Ctrl-C reaches
  the whole process group; the parent's handler or its ``finally`` kills the child),
  so a child never prints its own "interrupted" or traceback.
* The child is not a daemon, so it may start children of its own (multiprocessing
  forbids that to daemons); nested calls work.

:func:`kill_children` is for a SIGINT handler about to leave the process: it kills
every live child at once, without waiting.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Lines of the child's traceback kept in :attr:`ChildResult.details`.
TRACEBACK_LINES = 10


class ChildStatus(Enum):
    """How a call in a child process ended."""

    OK = "ok"  # the function returned; ``value`` is what it returned
    RAISED = "raised"  # the function raised (or its result did not pickle); see ``error``
    CRASHED = "crashed"  # the child died without answering (signal, os._exit, start failed)
    TIMEOUT = "timeout"  # no answer before the deadline; the child was killed


@dataclass(frozen=True)
class ChildResult(Generic[T]):
    """What :func:`run_in_child` reports; ``value`` is set only when ``status`` is OK."""

    status: ChildStatus
    value: T | None = None
    error: str = ""
    details: str = ""
    seconds: float = 0.0


def _context() -> Any:
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _child_main(function: Callable[..., Any], args: tuple[Any, ...], sender: Any) -> None:
    """In the child: call, and send ``(status, value, error, details)`` back once."""
    with contextlib.suppress(ValueError, OSError):  # ValueError: not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    message: tuple[str, Any, str, str]
    try:
        message = (ChildStatus.OK.value, function(*args), "", "")
    except BaseException as error:  # every exception becomes a result
        message = (ChildStatus.RAISED.value, None, _one_line(error), _traceback_tail())
    try:
        sender.send(message)
    except Exception as error:  # the value does not pickle (nothing was written)
        with contextlib.suppress(Exception):  # e.g. the parent is gone (broken pipe)
            sender.send((ChildStatus.RAISED.value, None,
                         f"the result cannot be sent back: {_one_line(error)}", ""))
    finally:
        sender.close()


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def _traceback_tail() -> str:
    return "\n".join(traceback.format_exc().splitlines()[-TRACEBACK_LINES:])


def _how_it_died(exitcode: int | None) -> str:
    if exitcode is None:
        return "the child process did not answer"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the child process was killed by {name}"
    return f"the child process exited with code {exitcode} without answering"


def run_in_child(function: Callable[..., T], args: tuple[Any, ...] = (),
                 timeout: float | None = None) -> ChildResult[T]:
    """Call ``function(*args)`` in a child process and wait at most ``timeout`` seconds.

    See the module documentation for the contract (fork, pickling, kill and reap).
    """
    start = time.perf_counter()
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(function, args, sender), daemon=False)
    message: tuple[str, Any, str, str] | None = None
    failure = ""
    exitcode: int | None = None
    try:
        try:
            child.start()
        except OSError as error:  # no process can be started (EAGAIN, ENOMEM)
            return ChildResult(ChildStatus.CRASHED,
                               error=f"cannot start a child process: {error}",
                               seconds=time.perf_counter() - start)
        finally:
            sender.close()  # the child holds its own end: EOF here once it is gone
        if not receiver.poll(timeout):
            return ChildResult(ChildStatus.TIMEOUT, error=f"no answer after {timeout:g} s",
                               seconds=time.perf_counter() - start)
        try:
            message = receiver.recv()
        except EOFError:
            pass  # died without answering: described below, once it is reaped
        except Exception as error:  # a truncated or unreadable answer
            failure = f"unreadable answer from the child process: {_one_line(error)}"
    finally:
        # Every way out, KeyboardInterrupt included: never leave the child running,
        # and reap it (no zombie).
        if child.pid is not None:  # started
            if child.is_alive():
                child.kill()
            child.join()
            exitcode = child.exitcode
            child.close()  # its sentinel descriptor, now rather than at garbage collection
        receiver.close()
    seconds = time.perf_counter() - start
    if message is None:
        return ChildResult(ChildStatus.CRASHED, error=failure or _how_it_died(exitcode),
                           seconds=seconds)
    status, value, why, details = message
    if status == ChildStatus.OK.value:
        return ChildResult(ChildStatus.OK, value=value, seconds=seconds)
    return ChildResult(ChildStatus(status), error=why, details=details, seconds=seconds)


def kill_children() -> None:
    """Kill every live child process that multiprocessing started in this process (those
    of :func:`run_in_child` included), without waiting: for a SIGINT handler that leaves
    the process right after (the exiting process's children are reaped by init).

    Safe in a signal handler: no lock, no import.
    """
    for child in multiprocessing.active_children():
        with contextlib.suppress(Exception):
            child.kill()


def race_in_children(calls: list[tuple[Callable[..., Any], tuple[Any, ...], float | None]],
                     decisive: Callable[[Any], bool]) -> list[ChildResult[Any]]:
    """Call each ``function(*args)`` in its own child process, all at once, each waited for
    at most its own ``timeout``; stop every child as soon as one returns a value that
    ``decisive`` accepts. The same contract as :func:`run_in_child` (fork, plain results,
    every child killed and reaped on every way out), one result per call: a child that
    was stopped because another answered first is TIMEOUT with the error ``"stopped:
    another child answered first"``."""
    from multiprocessing.connection import wait as wait_for

    start = time.perf_counter()
    context = _context()
    children: list[Any] = []
    receivers: list[Any] = []
    results: list[ChildResult[Any] | None] = [None] * len(calls)
    deadlines = [None if timeout is None else start + timeout for _, _, timeout in calls]
    decided = False
    try:
        for function, args, _ in calls:
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(target=_child_main, args=(function, args, sender),
                                    daemon=False)
            try:
                child.start()
            finally:
                sender.close()
            children.append(child)
            receivers.append(receiver)
        pending = set(range(len(calls)))
        while pending and not decided:
            now = time.perf_counter()
            for index in [i for i in pending if deadlines[i] is not None
                          and now >= deadlines[i]]:  # type: ignore[operator]
                pending.discard(index)
                results[index] = ChildResult(ChildStatus.TIMEOUT, error=(
                    f"no answer after {calls[index][2]:g} s"), seconds=now - start)
            if not pending:
                break
            limits = [deadlines[i] - now for i in pending if deadlines[i] is not None]  # type: ignore[operator]
            ready = wait_for([receivers[i] for i in pending],
                             max(0.0, min(limits)) if limits else None)
            for index in [i for i in pending if receivers[i] in ready]:
                pending.discard(index)
                try:
                    message = receivers[index].recv()
                except EOFError:
                    children[index].join()
                    results[index] = ChildResult(
                        ChildStatus.CRASHED, error=_how_it_died(children[index].exitcode),
                        seconds=time.perf_counter() - start)
                    continue
                except Exception as error:
                    results[index] = ChildResult(ChildStatus.CRASHED, error=(
                        f"unreadable answer from the child process: {_one_line(error)}"),
                        seconds=time.perf_counter() - start)
                    continue
                status, value, why, details = message
                seconds = time.perf_counter() - start
                if status == ChildStatus.OK.value:
                    results[index] = ChildResult(ChildStatus.OK, value=value, seconds=seconds)
                    decided = decided or decisive(value)
                else:
                    results[index] = ChildResult(ChildStatus(status), error=why,
                                                 details=details, seconds=seconds)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
        for child in children:
            child.join()
            child.close()
        for receiver in receivers:
            receiver.close()
    seconds = time.perf_counter() - start
    return [result if result is not None else ChildResult(
        ChildStatus.TIMEOUT, error="stopped: another child answered first", seconds=seconds)
        for result in results]
