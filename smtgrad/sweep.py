"""`smtgrad sweep GRID.yaml`: a grid of spec variants, solved locally or on a Dask cluster.

A grid file has ``base:`` (a spec, as in a spec file) and ``axes:`` (a mapping). Each axis
is either

* a **path axis**: its name is a dotted path into the spec (``loss``,
  ``network.layers.0.activation``; integer parts index lists; the first part is a spec
  key) and its values are what that path is set to (any YAML value, mappings included);
* a **multi-path axis**: any other name (``output``); each value is a mapping from paths
  to values, all set at once, with an optional ``label`` (the text of the table's
  column; default ``path=value, ...``).

``base`` may also name a spec file (relative to the grid file). Several axes form their
product, the first axis varying slowest. Optional keys:
``name`` (names the cells' specs), ``description``, ``timeout`` (seconds per cell; the
command's ``--timeout`` overrides it). Malformed grids raise :class:`GridError` (exit 2)
naming the file, the key and what was expected. A cell whose expanded spec is invalid is
not a grid error: it is recorded with verdict ``error`` and the spec error.

Each cell is keyed by the sha256 of its canonical expanded spec (sorted-key JSON), the
smtgrad version and the mode (``minimal`` or ``samples=N``); the grid by the sha256 of
its cells' labels and keys. Results go to a JSON Lines store, one row per cell, appended
and fsync'ed as each cell finishes (:class:`Store`); a re-run skips the cells already
stored, refuses a store written for another grid, and reports and skips a corrupt line.

Cells run in worker processes (:func:`run_local`, one per core by default) or on a Dask
cluster (:func:`run_dask`); either way :func:`run_cell` (a top-level function, importable
by Dask workers) solves one cell in a killable child process, so that a per-cell timeout
is enforced on the worker and a cell that crashes or hangs never takes the sweep down.

Verdicts in the store: ``sat``, ``unsat``, ``unknown`` (with ``reason``; a cell killed at
its hard deadline is unknown with ``status: timeout``) and ``error`` (``status``
``invalid``: the spec; ``crashed``: the cell's process died; ``raised``: an internal
error).

May import the API, the engine, the spec, the report and backends/process (the child
process helper), never a solver directly; rich, matplotlib and dask only when asked.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
import json
import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from smtgrad import __version__
from smtgrad.errors import InputError

#: The keys of a grid file.
GRID_KEYS = ("name", "description", "base", "axes", "timeout")
#: The top-level keys of a spec: an axis whose name starts with one of them is a path axis.
SPEC_KEYS = ("name", "description", "network", "loss", "samples", "targets", "query", "fixed",
             "assume", "conventions", "generic", "expect")
#: The verdicts of a stored row.
VERDICTS = ("sat", "unsat", "unknown", "error")
#: The keys every stored row has (the contract), besides the bookkeeping ``key``/``grid``.
ROW_KEYS = ("cell", "verdict", "samples", "proved", "certificate", "seconds")
#: Per-cell timeout (seconds) when neither the grid nor ``--timeout`` gives one.
DEFAULT_TIMEOUT = 60.0


class GridError(InputError):
    """A grid file that cannot be expanded (exit 2): which file, which key, what was
    expected."""

    label = "bad grid"

    def __init__(self, source: str, key: str, expected: str) -> None:
        self.source, self.key, self.expected = source, key, expected
        super().__init__(f"{source}: {key}: {expected}" if key else f"{source}: {expected}")


class StoreError(InputError):
    """A result store that cannot be used for this grid (exit 2)."""

    label = "bad store"


# ----------------------------------------------------------------------------------------
# The grid.


@dataclass(frozen=True)
class Axis:
    """One axis: its name, and per value the table label and the (path, value) settings."""

    name: str
    labels: tuple[Any, ...]
    settings: tuple[tuple[tuple[str, Any], ...], ...]


@dataclass(frozen=True)
class Cell:
    """One expanded cell: its axis labels, its spec (plain JSON data), its key, and the
    spec error when the expanded spec is invalid (empty when it is valid)."""

    index: int
    labels: dict[str, Any]
    spec: dict[str, Any]
    key: str
    error: str = ""

    @property
    def title(self) -> str:
        return " · ".join(str(value) for value in self.labels.values()) or "(base)"


@dataclass(frozen=True)
class Grid:
    """An expanded grid: axes, cells in product order, the grid's hash."""

    source: str
    name: str
    axes: tuple[Axis, ...]
    cells: tuple[Cell, ...]
    hash: str
    mode: str
    timeout: float | None = None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float | Fraction):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _plain(value: Any) -> Any:
    """YAML data as plain JSON data: Fractions (the exact loader's decimals) as exact text."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else str(value)
    return value


def canonical(spec: Mapping[str, Any]) -> str:
    """The canonical text of an expanded spec (what a cell's key hashes)."""
    return json.dumps(_plain(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cell_key(spec: Mapping[str, Any], mode: str) -> str:
    """sha256 of the canonical spec, the smtgrad version and the mode."""
    text = f"smtgrad {__version__}\n{mode}\n{canonical(spec)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def mode_of(samples: int | None, minimal: bool) -> str:
    """``minimal``, ``samples=N`` or ``minimal samples=N`` (a walk up to N)."""
    if samples is None:
        return "minimal" if minimal else "spec"
    return f"minimal samples={samples}" if minimal else f"samples={samples}"


def _split_path(path: str, source: str, where: str) -> list[str]:
    parts = path.split(".")
    if not path or any(not part.strip() for part in parts):
        raise GridError(source, where, f"expected a dotted path such as "
                                       f"network.layers.0.activation, found {path!r}")
    return parts


def set_path(spec: dict[str, Any], path: str, value: Any, source: str = "<grid>",
             where: str = "") -> None:
    """Set ``spec`` at the dotted ``path`` (integer parts index lists; missing mapping
    keys are created, list indices must exist). Raises :class:`GridError`."""
    parts = _split_path(path, source, where or path)
    if parts[0] not in SPEC_KEYS:
        raise GridError(source, where or path, f"the path {path!r} does not start with a spec "
                                               f"key; expected one of {', '.join(SPEC_KEYS)}")
    node: Any = spec
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(parts[:depth]) or "the spec"
        if isinstance(node, list):
            if not re.fullmatch(r"\d+", part):
                raise GridError(source, where or path, f"{here} is a list, so the next part of "
                                                       f"the path must be an index, found "
                                                       f"{part!r}")
            index = int(part)
            if index >= len(node):
                raise GridError(source, where or path, f"{here} has {len(node)} entries, so "
                                                       f"index {index} does not exist")
            if last:
                node[index] = copy.deepcopy(value)
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = copy.deepcopy(value)
            else:
                if part not in node or node[part] is None:
                    node[part] = {}
                node = node[part]
        else:
            raise GridError(source, where or path, f"{here} is {_describe(node)}, so it has no "
                                                   f"part {part!r}")


def _label(value: Any) -> Any:
    value = _plain(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ": "))


def _axis(name: Any, values: Any, source: str) -> Axis:
    where = f"axes.{name}"
    if not isinstance(name, str) or not name:
        raise GridError(source, "axes", f"axis names must be text, found {_describe(name)}")
    if not isinstance(values, list) or not values:
        raise GridError(source, where, f"expected a non-empty list of values, found "
                                       f"{_describe(values)}")
    labels: list[Any] = []
    settings: list[tuple[tuple[str, Any], ...]] = []
    path_axis = name.split(".")[0] in SPEC_KEYS
    if path_axis:
        _split_path(name, source, where)
    for index, value in enumerate(values):
        if path_axis:
            labels.append(_label(value))
            settings.append(((name, _plain(value)),))
            continue
        if not isinstance(value, Mapping) or not value:
            raise GridError(source, f"{where}[{index}]", (
                f"{name!r} is not a path into the spec (a path starts with one of "
                f"{', '.join(SPEC_KEYS)}), so it is a multi-path axis and each value must be a "
                f"non-empty mapping from paths to values (with an optional label), found "
                f"{_describe(value)}"))
        pairs = []
        label = None
        for path, item in value.items():
            if path == "label":
                if not isinstance(item, str | int | float) or isinstance(item, bool):
                    raise GridError(source, f"{where}[{index}].label",
                                    f"expected text or a number, found {_describe(item)}")
                label = _plain(item)
                continue
            if not isinstance(path, str):
                raise GridError(source, f"{where}[{index}]",
                                f"expected dotted paths as keys, found {_describe(path)}")
            _split_path(path, source, f"{where}[{index}].{path}")
            if path.split(".")[0] not in SPEC_KEYS:
                raise GridError(source, f"{where}[{index}].{path}", (
                    f"the path does not start with a spec key; expected one of "
                    f"{', '.join(SPEC_KEYS)} (or label)"))
            pairs.append((path, _plain(item)))
        if not pairs:
            raise GridError(source, f"{where}[{index}]", "expected at least one path besides "
                                                         "label")
        labels.append(label if label is not None
                      else ", ".join(f"{path}={_label(item)}" for path, item in pairs))
        settings.append(tuple(pairs))
    seen: dict[Any, int] = {}
    for index, label in enumerate(labels):
        if label in seen:
            raise GridError(source, f"{where}[{index}]", (
                f"the label {label!r} repeats {where}[{seen[label]}]; every value of an axis "
                f"needs its own label"))
        seen[label] = index
    return Axis(name, tuple(labels), tuple(settings))


def parse_grid(data: Any, source: str = "<grid>", *, mode: str = "minimal") -> Grid:
    """Expand grid data (the YAML structure) into cells. Raises :class:`GridError`."""
    from smtgrad.api import load_spec
    from smtgrad.spec import SpecError

    if not isinstance(data, Mapping):
        raise GridError(source, "", f"expected a mapping with base: and axes:, found "
                                    f"{_describe(data)}")
    for key in data:
        if key not in GRID_KEYS:
            raise GridError(source, str(key), f"unknown key; expected one of "
                                              f"{', '.join(GRID_KEYS)}")
    if "base" not in data:
        raise GridError(source, "base", "missing: the spec every cell starts from")
    base = data["base"]
    if isinstance(base, str):  # a spec file, relative to the grid file
        base = _base_file(base, source)
    if not isinstance(base, Mapping):
        raise GridError(source, "base", f"expected a spec (a mapping), found {_describe(base)}")
    axes_data = data.get("axes")
    if axes_data is None:
        axes_data = {}
    if not isinstance(axes_data, Mapping):
        raise GridError(source, "axes", f"expected a mapping from paths (or axis names) to "
                                        f"lists of values, found {_describe(axes_data)}")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise GridError(source, "name", f"expected text, found {_describe(name)}")
    timeout = data.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float | Fraction) \
                or timeout <= 0:
            raise GridError(source, "timeout", f"expected a positive number of seconds, found "
                                               f"{_describe(timeout)}")
        timeout = float(timeout)
    axes = tuple(_axis(axis_name, values, source) for axis_name, values in axes_data.items())
    owner: dict[str, str] = {}
    for axis in axes:
        for path in {path for setting in axis.settings for path, _ in setting}:
            if path in owner and owner[path] != axis.name:
                raise GridError(source, f"axes.{axis.name}", (
                    f"{path} is set by the axis {owner[path]!r} too; each path belongs to one "
                    f"axis"))
            owner[path] = axis.name
    plain_base = _plain(base)
    base_name = plain_base.get("name") if isinstance(plain_base.get("name"), str) else None
    title = name or base_name or Path(source).stem
    cells: list[Cell] = []
    combos: list[tuple[int, ...]] = [()]
    for axis in axes:
        combos = [(*combo, index) for combo in combos for index in range(len(axis.labels))]
    for number, combo in enumerate(combos):
        spec = copy.deepcopy(plain_base)
        labels: dict[str, Any] = {}
        for axis, index in zip(axes, combo, strict=True):
            labels[axis.name] = axis.labels[index]
            for path, value in axis.settings[index]:
                set_path(spec, path, value, source, f"axes.{axis.name}")
        if "name" not in owner:
            spec["name"] = f"{title}[{', '.join(str(v) for v in labels.values())}]" \
                if labels else title
        error = ""
        try:
            load_spec(spec)
        except SpecError as problem:
            error = f"{problem.key}: {problem.expected}" if problem.key else problem.expected
        cells.append(Cell(number, labels, spec, cell_key(spec, mode), error))
    digest = hashlib.sha256(json.dumps([[cell.labels, cell.key] for cell in cells],
                                       sort_keys=True).encode("utf-8")).hexdigest()
    return Grid(source, title, axes, tuple(cells), digest, mode, timeout)


def _base_file(name: str, source: str) -> Any:
    from smtgrad.spec import SpecError, parse_yaml

    path = Path(name) if Path(name).is_absolute() else Path(source).parent / name
    try:
        return parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as error:
        raise GridError(source, "base", f"expected a spec, or the name of a spec file; cannot "
                                        f"read {path} ({error})") from None
    except SpecError as error:
        raise GridError(source, "base", f"{path}: {error.expected}") from None


def load_grid(path: Path | str, *, mode: str = "minimal") -> Grid:
    """Read and expand a grid file. Raises :class:`GridError` (exit 2)."""
    from smtgrad.spec import SpecError, parse_yaml

    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GridError(source, "", "no such file") from None
    except IsADirectoryError:
        raise GridError(source, "", "is a directory, not a grid file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise GridError(source, "", f"cannot read ({error})") from None
    try:
        data = parse_yaml(text, source)
    except SpecError as error:
        raise GridError(source, "", error.expected) from None
    return parse_grid(data, source, mode=mode)


# ----------------------------------------------------------------------------------------
# The store.


@dataclass
class Store:
    """The JSON Lines result store: one row per cell, appended and fsync'ed at once.

    :meth:`load` reads the finished rows of ``grid`` (keyed by cell key), reports each
    corrupt line in ``warnings`` and skips it, and raises :class:`StoreError` when a row
    belongs to another grid. :meth:`append` writes one row.
    """

    path: Path
    warnings: list[str] = field(default_factory=list)
    _handle: Any = None
    _needs_newline: bool = False

    def load(self, grid: Grid) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return rows
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory, not a result store")
        try:
            raw = self.path.read_bytes()
        except OSError as error:
            raise StoreError(f"{self.path}: cannot read ({error.strerror})") from None
        self._needs_newline = bool(raw) and not raw.endswith(b"\n")
        keys = {cell.key for cell in grid.cells}
        for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            row, why = _parse_row(line)
            if row is None:
                self.warnings.append(f"{self.path}:{number}: corrupt line skipped ({why})")
                continue
            if row["grid"] != grid.hash:
                raise StoreError(
                    f"{self.path} holds results of another grid (line {number}: grid "
                    f"{row['grid'][:12]}, this grid: {grid.hash[:12]}): {grid.source}, the "
                    f"smtgrad version or --samples/--minimal changed since it was written. "
                    f"Give another --store, or delete {self.path} to start afresh")
            if row["key"] not in keys:
                self.warnings.append(f"{self.path}:{number}: a row of no cell of this grid "
                                     f"skipped")
                continue
            rows.setdefault(row["key"], row)
        return rows

    def append(self, row: Mapping[str, Any]) -> None:
        if self._handle is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("a", encoding="utf-8")
            except OSError as error:
                raise StoreError(f"{self.path}: cannot write ({error.strerror})") from None
            if self._needs_newline:  # a line cut short by a kill: never glue onto it
                self._handle.write("\n")
                self._needs_newline = False
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _parse_row(line: str) -> tuple[dict[str, Any] | None, str]:
    try:
        row = json.loads(line)
    except ValueError as error:
        return None, f"not JSON: {error}"
    if not isinstance(row, dict):
        return None, "not a JSON object"
    for key in ("key", "grid", "verdict", "cell"):
        if key not in row:
            return None, f"no {key!r}"
    if not isinstance(row["key"], str) or not isinstance(row["grid"], str):
        return None, "key and grid must be text"
    if not isinstance(row["cell"], dict):
        return None, "cell must be a mapping"
    if row["verdict"] not in VERDICTS:
        return None, f"unknown verdict {row['verdict']!r}"
    return row, ""


def default_store(grid: Grid) -> Path:
    """The store when no ``--store`` is given: ``<grid stem>-<grid hash>.jsonl`` in the
    working directory (a changed grid gets a store of its own)."""
    return Path(f"{Path(grid.source).stem}-{grid.hash[:12]}.jsonl")


# ----------------------------------------------------------------------------------------
# One cell (runs on a worker: a local worker process or a Dask worker).

#: Seconds a cell may run past its solve's own timeout before its process is killed.
def grace(timeout: float) -> float:
    """The hard deadline's margin past the solve's own ``timeout``."""
    return 5.0 + 0.25 * timeout


_PRELOAD = ("sympy", "mpmath", "flint", "pysmt.shortcuts", "smtgrad.engine", "smtgrad.report")
_preloaded = False


def _preload() -> None:
    """Import the solve's modules once per worker process, before the first fork, so each
    cell's child inherits them instead of importing them again."""
    global _preloaded
    if _preloaded:
        return
    _preloaded = True
    import importlib

    for name in _PRELOAD:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    with contextlib.suppress(Exception):
        from smtgrad.backends import get_backend

        get_backend("z3")


def _allow_children() -> None:
    """Dask runs its workers as daemonic processes, which multiprocessing forbids to start
    children; a cell's child is killed and reaped by :func:`run_in_child` itself, so the
    flag is lifted for this process (as ``distributed.worker.daemon: false`` would)."""
    import multiprocessing

    process = multiprocessing.current_process()
    if process.daemon:
        with contextlib.suppress(AssertionError):
            process.daemon = False


def _watch_parent(parent: int) -> None:
    """Leave when the parent process is gone (a killed sweep or worker leaves no orphan
    solving on)."""
    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="smtgrad-parent-watch", daemon=True).start()


def _solve_cell(spec: dict[str, Any], options: dict[str, Any], parent: int) -> dict[str, Any]:
    """In the cell's child process: solve, and summarise the result as plain data."""
    _watch_parent(parent)
    from smtgrad.api import solve
    from smtgrad.errors import InputError, InternalError

    try:
        result = solve(spec, samples=options.get("samples"),
                       minimal=bool(options.get("minimal", True)),
                       timeout=options.get("timeout"), backend=options.get("backend", "z3"))
    except InputError as error:
        return {"verdict": "error", "status": "invalid", "reason": str(error)}
    except InternalError as error:
        return {"verdict": "error", "status": "raised",
                "reason": f"internal error (a bug, please report it): {error}"}
    return summarise(result.to_dict())


def _ranges(numbers: Sequence[int]) -> str:
    if not numbers:
        return ""
    if len(numbers) == 1:
        return f"M={numbers[0]}"
    return f"M={numbers[0]}..{numbers[-1]}"


def summarise(data: Mapping[str, Any]) -> dict[str, Any]:
    """A result JSON (the solve contract) as a store row's verdict fields.

    ``proved``: for unsat the result's (``M=2``, ``M=1..4``, ``all M``); for sat and unknown
    the smaller M that the walk proved impossible (``M=1..2``), or None. ``by``: what proved
    each of them.
    """
    attempts = list(data.get("attempts", []))
    verdict = data["verdict"]
    unsat = [a for a in attempts if a.get("verdict") == "unsat"]
    if verdict == "unsat":
        proved = data.get("proved")
    else:
        proved = _ranges([a["samples"] for a in unsat]) or None
    groups: list[tuple[list[int], str]] = []
    for attempt in unsat:
        method = str(attempt.get("method", ""))
        if groups and groups[-1][1] == method:
            groups[-1][0].append(attempt["samples"])
        else:
            groups.append(([attempt["samples"]], method))
    if verdict == "unsat" and proved == "all M":
        by = str(data.get("method", ""))
    else:
        by = "; ".join(f"{_ranges(numbers)}: {method}" for numbers, method in groups)
    row: dict[str, Any] = {
        "verdict": verdict,
        "samples": data.get("samples"),
        "proved": proved,
        "by": by or None,
        "certificate": data.get("certificate") if verdict == "sat" else None,
        "seconds": data.get("seconds"),
        "status": "solved",
        "reason": data.get("reason") or None,
        "method": data.get("method"),
        "solver": data.get("solver"),
        "attempts": [[a.get("samples"), a.get("verdict"), a.get("method")] for a in attempts],
    }
    if verdict == "sat":
        row["witness"] = data.get("witness")
        row["classification"] = data.get("classification")
    return row


def run_cell(spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Solve one cell with a hard deadline; return a store row's verdict fields (plain
    data). Top-level so that Dask workers import it; never raises for a cell's failure.

    ``options``: ``timeout`` (the solve's, seconds; the cell's process is killed
    :func:`grace` seconds later), ``minimal``, ``samples``, ``backend``.
    """
    from smtgrad.backends.process import ChildStatus, run_in_child

    _allow_children()
    _preload()
    timeout = options.get("timeout")
    deadline = None if timeout is None else float(timeout) + grace(float(timeout))
    start = time.perf_counter()
    answer = run_in_child(_solve_cell, (spec, options, os.getpid()), deadline)
    row: dict[str, Any]
    if answer.status is ChildStatus.OK and isinstance(answer.value, dict):
        row = answer.value
    elif answer.status is ChildStatus.TIMEOUT:
        limit = float(timeout or 0)
        row = {"verdict": "unknown", "status": "timeout",
               "reason": f"timeout: no answer within {limit + grace(limit):g} s (the solve's "
                         f"own limit of {limit:g} s plus {grace(limit):g} s); the cell's "
                         f"process was killed"}
    elif answer.status is ChildStatus.CRASHED:
        row = {"verdict": "error", "status": "crashed", "reason": f"crashed: {answer.error}"}
    else:
        row = {"verdict": "error", "status": "raised",
               "reason": f"internal error (a bug, please report it): {answer.error}"}
    if row.get("seconds") is None:
        row["seconds"] = round(time.perf_counter() - start, 4)
    for key in ROW_KEYS:
        row.setdefault(key, None)
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return row


def _invalid_row(cell: Cell) -> dict[str, Any]:
    return {"verdict": "error", "samples": None, "proved": None, "certificate": None,
            "seconds": 0.0, "status": "invalid", "reason": f"bad spec: {cell.error}"}


def _crashed_row(why: str) -> dict[str, Any]:
    return {"verdict": "error", "samples": None, "proved": None, "certificate": None,
            "seconds": None, "status": "crashed", "reason": f"crashed: {why}"}


# ----------------------------------------------------------------------------------------
# Executors: each calls ``done(cell, fields)`` in the calling process as cells finish.

Done = Callable[[Cell, dict[str, Any]], None]


def _worker_init(parent: int) -> None:
    _watch_parent(parent)
    _preload()


def run_local(cells: Sequence[Cell], options: dict[str, Any], done: Done,
              workers: int | None = None) -> None:
    """Run the cells on local worker processes (``workers``, default one per core).

    A worker process that dies loses only its cell in flight: the pool is started again
    for the cells not yet done (twice at most; then they are recorded as crashed).
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    count = max(1, min(workers or os.cpu_count() or 1, len(cells) or 1))
    context = multiprocessing.get_context("spawn")  # never fork a process with threads
    todo = list(cells)
    for round_number in range(3):
        if not todo:
            return
        broken: list[Cell] = []
        pool = ProcessPoolExecutor(max_workers=count, mp_context=context,
                                   initializer=_worker_init, initargs=(os.getpid(),))
        try:
            # At most ``count`` cells in flight: a killed sweep loses only those.
            queue = list(todo)
            running: dict[Any, Cell] = {}
            while queue or running:
                while queue and len(running) < count:
                    cell = queue.pop(0)
                    running[pool.submit(run_cell, cell.spec, options)] = cell
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    cell = running.pop(future)
                    try:
                        fields = future.result()
                    except BrokenProcessPool:
                        broken.append(cell)
                        continue
                    except Exception as error:
                        fields = _crashed_row(f"{type(error).__name__}: {error}")
                    done(cell, fields)
                if broken:
                    broken.extend(running.values())
                    broken.extend(queue)
                    queue, running = [], {}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        todo = broken
        if round_number == 2:
            break
    for cell in todo:
        done(cell, _crashed_row("its worker process died (three times)"))


def scheduler_address(option: str | None) -> str | None:
    """The Dask scheduler: ``--scheduler``, else ``DASK_SCHEDULER_ADDRESS``; ``local`` (or
    nothing) runs locally."""
    address = option if option is not None else os.environ.get("DASK_SCHEDULER_ADDRESS")
    if not address or address.strip().lower() == "local":
        return None
    return address.strip()


def run_dask(cells: Sequence[Cell], options: dict[str, Any], done: Done,
             address: str) -> None:
    """Run the cells on the Dask cluster at ``address`` (``client.submit`` per cell,
    gathered as they complete). A task that fails (a worker killed three times:
    ``KilledWorker``) is recorded as crashed."""
    import importlib

    try:
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise InputError("--scheduler needs Dask, an optional extra: "
                         "pip install 'smtgrad[dask]'") from None
    try:
        client = distributed.Client(address, timeout=15)
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    token = uuid.uuid4().hex[:8]
    try:
        futures: dict[Any, Cell] = {}
        submitted = []
        for cell in cells:
            future = client.submit(run_cell, cell.spec, options, pure=False,
                                   key=f"smtgrad-cell-{cell.key[:16]}-{token}")
            futures[future.key] = cell
            submitted.append(future)
        for future in distributed.as_completed(submitted):
            cell = futures[future.key]
            try:
                fields = future.result()
            except Exception as error:
                fields = _crashed_row(f"{type(error).__name__}: {error}")
            done(cell, fields)
            future.release()
    finally:
        with contextlib.suppress(Exception):
            client.close()


# ----------------------------------------------------------------------------------------
# The sweep.


@dataclass
class Progress:
    """Progress on stderr: a rich bar on a terminal (cells done, verdict counts, ETA),
    plain lines otherwise."""

    total: int
    already: int
    enabled: bool = True
    counts: Counter[str] = field(default_factory=Counter)
    _bar: Any = None
    _task: Any = None
    _done: int = 0

    def start(self, message: str) -> None:
        import sys

        if not self.enabled:
            return
        if sys.stderr.isatty():
            import rich.progress as bars
            from rich.console import Console

            console = Console(stderr=True, highlight=False)
            console.print(message, markup=False)
            self._bar = bars.Progress(
                bars.TextColumn("sweep"), bars.BarColumn(), bars.MofNCompleteColumn(),
                bars.TextColumn("{task.fields[counts]}"), bars.TimeElapsedColumn(),
                bars.TextColumn("ETA"), bars.TimeRemainingColumn(), console=console,
                transient=False)
            self._bar.start()
            self._task = self._bar.add_task("sweep", total=self.total - self.already,
                                            counts=self._counts())
        else:
            print(message, file=sys.stderr, flush=True)

    def _counts(self) -> str:
        return " · ".join(f"{self.counts[v]} {v}" for v in VERDICTS if self.counts[v])

    def update(self, cell: Cell, row: Mapping[str, Any]) -> None:
        import sys

        self._done += 1
        self.counts[str(row["verdict"])] += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=1, counts=self._counts())
            return
        print(f"  [{self._done}/{self.total - self.already}] {cell.title}: "
              f"{describe_row(row)}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def describe_row(row: Mapping[str, Any]) -> str:
    """One line: ``sat at M=3 (exact, 0.01 s)``, ``unsat (M=1..4)``, ``unknown: why``."""
    verdict = row.get("verdict")
    seconds = row.get("seconds")
    took = f"{seconds:.2f} s" if isinstance(seconds, int | float) else "?"
    if verdict == "sat":
        return f"sat at M={row.get('samples')} ({row.get('certificate')}, {took})"
    if verdict == "unsat":
        return f"unsat, {row.get('proved')} ({took})"
    return f"{verdict}: {row.get('reason')} ({took})"


@dataclass(frozen=True)
class SweepOutcome:
    """Every cell's row in grid order, how many came from the store, the wall time."""

    grid: Grid
    rows: tuple[dict[str, Any], ...]
    reused: int
    seconds: float
    store: Path
    warnings: tuple[str, ...] = ()


def sweep(grid: Grid, *, store: Path | None = None, timeout: float | None = None,
          samples: int | None = None, minimal: bool = True, workers: int | None = None,
          scheduler: str | None = None, backend: str = "z3", progress: bool = True,
          warn: Callable[[str], None] | None = None) -> SweepOutcome:
    """Solve every cell of ``grid`` not yet in the store, appending rows as they finish.

    ``timeout`` per cell (default: the grid's, else 60 s); ``scheduler`` a Dask address
    (None: local worker processes, ``workers`` of them, default one per core).
    """
    start = time.perf_counter()
    path = store or default_store(grid)
    keeper = Store(path)
    stored = keeper.load(grid)
    for message in keeper.warnings:
        (warn or _stderr)(f"warning: {message}")
    per_cell = timeout if timeout is not None else (grid.timeout or DEFAULT_TIMEOUT)
    options = {"timeout": per_cell, "samples": samples, "minimal": minimal,
               "backend": backend}
    rows: dict[str, dict[str, Any]] = dict(stored)
    reused = sum(1 for cell in grid.cells if cell.key in stored)
    todo = [cell for cell in grid.cells if cell.key not in stored]
    address = scheduler_address(scheduler)
    where = f"the Dask cluster at {address}" if address else \
        f"{max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))} local worker process(es)"
    shown = Progress(len(grid.cells), reused, progress)
    shown.start(f"smtgrad sweep {grid.source}: {len(grid.cells)} cells, {reused} already in "
                f"{path}, {len(todo)} to solve on {where} ({per_cell:g} s per cell)")

    def done(cell: Cell, fields: dict[str, Any]) -> None:
        row: dict[str, Any] = {"cell": cell.labels}
        row.update((key, value) for key, value in fields.items() if key != "cell")
        row.update(name=cell.spec.get("name"), key=cell.key, grid=grid.hash,
                   smtgrad=__version__)
        keeper.append(row)
        rows[cell.key] = row
        shown.update(cell, row)

    try:
        runnable = []
        for cell in todo:
            if cell.error:
                done(cell, _invalid_row(cell))
            else:
                runnable.append(cell)
        if runnable:
            if address:
                run_dask(runnable, options, done, address)
            else:
                run_local(runnable, options, done, workers)
    finally:
        shown.stop()
        keeper.close()
    ordered = tuple(rows[cell.key] for cell in grid.cells if cell.key in rows)
    return SweepOutcome(grid, ordered, reused, time.perf_counter() - start, path,
                        tuple(keeper.warnings))


def _stderr(message: str) -> None:
    import sys

    print(f"smtgrad: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------
# Rendering.

_COLUMNS = ("verdict", "M", "smaller M impossible (by)", "certificate", "seconds")


def _short(method: str) -> str:
    return re.sub(r"\s*\([^()]*\)", "", method).strip()


def _table(grid: Grid, rows: Iterable[Mapping[str, Any]], *, full: bool
           ) -> tuple[list[str], list[list[str]]]:
    rows = list(rows)
    header = [axis.name for axis in grid.axes] + list(_COLUMNS)
    notes = any(row.get("verdict") in ("unknown", "error") for row in rows)
    if notes:
        header.append("note")
    body = []
    for row in rows:
        cell = row.get("cell", {})
        values = [str(cell.get(axis.name, "")) for axis in grid.axes]
        by = row.get("by") or ""
        proved = row.get("proved") or ""
        if by and not full:
            by = "; ".join(_short(part) for part in by.split("; "))
        if row.get("verdict") == "unsat" and proved == "all M":
            impossible = f"all M ({by})" if by else "all M"
        elif proved:
            impossible = f"{proved} ({by})" if by else proved
        else:
            impossible = "–" if not full else ""
        seconds = row.get("seconds")
        values += [str(row.get("verdict")),
                   "" if row.get("samples") is None or (row.get("verdict") == "unsat"
                                                        and not full) else str(row["samples"]),
                   impossible, row.get("certificate") or ("–" if not full else ""),
                   f"{seconds:.2f}" if isinstance(seconds, int | float) else ""]
        if notes:
            reason = str(row.get("reason") or "") if row.get("verdict") in ("unknown",
                                                                            "error") else ""
            if not full and len(reason) > 90:
                reason = reason[:87] + "..."
            values.append(reason)
        body.append(values)
    return header, body


def render_markdown(grid: Grid, rows: Iterable[Mapping[str, Any]]) -> str:
    """The table as GitHub Markdown."""
    header, body = _table(grid, rows, full=False)

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    align = ["---"] * len(header)
    align[header.index("seconds")] = "---:"
    return "\n".join([line(header), "|" + "|".join(align) + "|", *map(line, body)]) + "\n"


def render_csv(grid: Grid, rows: Iterable[Mapping[str, Any]]) -> str:
    """The table as CSV (full method names and reasons)."""
    header, body = _table(grid, rows, full=True)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)
    return out.getvalue()


def render_jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as JSON Lines (what the store holds), in grid order."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


_COLOURS = {"sat": "#7cc47f", "unsat": "#e8867c", "unknown": "#c9c9c9", "error": "#555555"}


def plot_grid(grid: Grid, rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """The grid as a coloured matrix: one column per value of the last axis, one row per
    combination of the others; each square names the verdict (sat: the minimal M)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    by_key = {row["key"]: row for row in rows}
    columns = list(grid.axes[-1].labels) if grid.axes else [""]
    width = len(columns)
    lines: list[str] = []
    squares: list[list[Mapping[str, Any] | None]] = []
    for start in range(0, len(grid.cells), width):
        group = grid.cells[start:start + width]
        lines.append(" · ".join(str(v) for v in list(group[0].labels.values())[:-1]) or "")
        squares.append([by_key.get(cell.key) for cell in group])
    figure, axes = plt.subplots(figsize=(1.6 + 1.3 * width, 0.9 + 0.42 * len(lines)))
    for i, line in enumerate(squares):
        for j, row in enumerate(line):
            verdict = row.get("verdict") if row else None
            colour = _COLOURS.get(str(verdict), "#ffffff")
            axes.add_patch(Rectangle((j, i), 1, 1, facecolor=colour, edgecolor="white"))
            if row is None:
                text = "—"
            elif verdict == "sat":
                text = f"M={row.get('samples')}" + ("*" if row.get("certificate") ==
                                                     "enclosure" else "")
            elif verdict == "unsat":
                text = "all M" if row.get("proved") == "all M" else f"unsat {row.get('proved')}"
            else:
                text = str(verdict)
            axes.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=8,
                      color="white" if verdict == "error" else "black")
    axes.set_xlim(0, width)
    axes.set_ylim(len(lines), 0)
    axes.set_xticks([j + 0.5 for j in range(width)], [str(c) for c in columns], rotation=30,
                    ha="right", fontsize=8)
    axes.set_yticks([i + 0.5 for i in range(len(lines))], lines, fontsize=8)
    axes.set_title(f"{grid.name}: sat (minimal M; * enclosure) / unsat / unknown", fontsize=9)
    axes.legend(handles=[Patch(color=c, label=v) for v, c in _COLOURS.items()],
                loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def exit_code(outcome: SweepOutcome) -> int:
    """0 when a cell was answered (sat, unsat or unknown); else 2 when every cell's spec was
    invalid, 4 when cells crashed or raised."""
    if not outcome.rows or any(row["verdict"] != "error" for row in outcome.rows):
        return 0
    if all(row.get("status") == "invalid" for row in outcome.rows):
        return 2
    return 4
