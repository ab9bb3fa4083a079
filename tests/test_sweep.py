"""`smtgrad sweep`: grid expansion, the JSON Lines store (append, resume, a changed grid
refused, a corrupt line skipped), local runs through the CLI, a sweep killed and resumed,
crashed and hung cells, and one sweep on a real Dask cluster on localhost."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smtgrad import sweep
from smtgrad.cli import app
from smtgrad.sweep import GridError, parse_grid

SEED_BASE = """\
base:
  network:
    inputs: 1
    layers:
      - {units: 1, activation: relu}
      - {units: 1, activation: linear}
  loss: mse
  samples: {min: 1, max: 4}
  query: {zero: [W2, b2], nonzero: [W1, b1]}
"""

#: Four piecewise cells, each decided in milliseconds: relu sat at M=3, linear unsat for all M.
SMALL_GRID = SEED_BASE + """\
axes:
  network.layers.0.activation: [relu, linear]
  network.layers.0.units: [1, 2]
"""


def _base() -> dict[str, Any]:
    return {"network": {"inputs": 1, "layers": [{"units": 1, "activation": "relu"},
                                                {"units": 1, "activation": "linear"}]},
            "loss": "mse", "samples": {"min": 1, "max": 4},
            "query": {"zero": ["W2", "b2"], "nonzero": ["W1", "b1"]}}


def _write(tmp_path: Path, text: str, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


# ----------------------------------------------------------------------------------------
# Grid expansion.


def test_axes_form_their_product_first_axis_slowest() -> None:
    grid = parse_grid({"base": _base(), "axes": {
        "network.layers.0.activation": ["relu", "abs", "tanh"],
        "network.layers.0.units": [1, 2]}})
    assert [tuple(cell.labels.values()) for cell in grid.cells] == [
        ("relu", 1), ("relu", 2), ("abs", 1), ("abs", 2), ("tanh", 1), ("tanh", 2)]
    cell = grid.cells[3]
    assert cell.spec["network"]["layers"][0] == {"units": 2, "activation": "abs"}
    assert cell.spec["network"]["layers"][1] == {"units": 1, "activation": "linear"}
    assert len({c.key for c in grid.cells}) == 6 and not any(c.error for c in grid.cells)


def test_a_multi_path_axis_sets_several_paths_at_once_with_a_label() -> None:
    grid = parse_grid({"base": _base(), "axes": {"output": [
        {"label": "linear+MSE", "network.layers.1.activation": "linear", "loss": "mse"},
        {"loss": "bce", "network.layers.1.activation": "sigmoid", "targets": "binary"}]}})
    first, second = grid.cells
    assert first.labels == {"output": "linear+MSE"}
    assert second.labels == {"output": "loss=bce, network.layers.1.activation=sigmoid, "
                                       "targets=binary"}
    assert second.spec["loss"] == "bce" and second.spec["targets"] == "binary"
    assert second.spec["network"]["layers"][1]["activation"] == "sigmoid"


def test_a_cell_key_is_the_hash_of_its_spec_version_and_mode() -> None:
    one = parse_grid({"base": _base(), "axes": {"loss": ["mse"]}})
    again = parse_grid({"base": _base(), "axes": {"loss": ["mse"]}})
    other_mode = parse_grid({"base": _base(), "axes": {"loss": ["mse"]}}, mode="samples=3")
    assert one.cells[0].key == again.cells[0].key and one.hash == again.hash
    assert one.cells[0].key != other_mode.cells[0].key and one.hash != other_mode.hash


@pytest.mark.parametrize(("grid", "words"), [
    ({"axes": {}}, ["base", "missing"]),
    ({"base": _base(), "axis": {}}, ["axis", "unknown key", "axes"]),
    ({"base": [1], "axes": {}}, ["base", "expected a spec"]),
    ({"base": _base(), "axes": ["loss"]}, ["axes", "expected a mapping"]),
    ({"base": _base(), "axes": {"loss": "mse"}}, ["axes.loss", "non-empty list"]),
    ({"base": _base(), "axes": {"loss": []}}, ["axes.loss", "non-empty list"]),
    ({"base": _base(), "axes": {"network.layers.5.activation": ["relu"]}},
     ["axes.network.layers.5.activation", "network.layers has 2 entries", "index 5"]),
    ({"base": _base(), "axes": {"network.layers.first.units": [1]}},
     ["network.layers is a list", "index", "'first'"]),
    ({"base": _base(), "axes": {"loss.kind.x": ["mse"]}}, ["loss is the text 'mse'"]),
    ({"base": _base(), "axes": {"network..units": [1]}}, ["dotted path"]),
    ({"base": _base(), "axes": {"output": ["relu"]}},
     ["axes.output[0]", "multi-path axis", "mapping from paths"]),
    ({"base": _base(), "axes": {"output": [{"lossy": "mse"}]}},
     ["axes.output[0].lossy", "does not start with a spec key"]),
    ({"base": _base(), "axes": {"output": [{"label": "a"}]}}, ["at least one path"]),
    ({"base": _base(), "axes": {"loss": ["mse", "mse"]}}, ["axes.loss[1]", "label 'mse'"]),
    ({"base": _base(), "axes": {"loss": ["mse"], "o": [{"loss": "bce"}]}},
     ["axes.o", "loss is set by the axis 'loss' too"]),
    ({"base": _base(), "axes": {}, "timeout": -1}, ["timeout", "positive number"]),
])
def test_bad_grids_are_clear_errors(grid: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(GridError) as caught:
        parse_grid(grid, "g.yaml")
    message = str(caught.value)
    assert message.startswith("g.yaml: ")
    for word in words:
        assert word in message, message


def test_the_base_may_name_a_spec_file_next_to_the_grid(tmp_path: Path) -> None:
    _write(tmp_path, SEED_BASE.replace("base:\n", "").replace("\n  ", "\n")
           .lstrip(" "), "seed.yaml")
    grid = sweep.load_grid(_write(tmp_path, "base: seed.yaml\naxes: {loss: [mse]}\n"))
    assert grid.cells[0].spec["network"]["layers"][0]["activation"] == "relu"
    assert not grid.cells[0].error
    with pytest.raises(GridError, match="base: expected a spec, or the name of a spec file"):
        sweep.load_grid(_write(tmp_path, "base: missing.yaml\naxes: {}\n", "g2.yaml"))


def test_a_bad_grid_file_exits_2_without_a_traceback(runner: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, SEED_BASE + "axes:\n  network.layers.7.units: [1]\n")
    result = runner.invoke(app, ["sweep", str(path), "--store", str(tmp_path / "s.jsonl")])
    assert result.exit_code == 2
    assert "bad grid" in result.output and "index 7" in result.output
    assert "Traceback" not in result.output
    missing = runner.invoke(app, ["sweep", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    broken = _write(tmp_path, "base: [unclosed\n", "broken.yaml")
    assert runner.invoke(app, ["sweep", str(broken)]).exit_code == 2


def test_an_invalid_cell_is_recorded_as_an_error(runner: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, SEED_BASE + "axes:\n  network.layers.0.activation: [linear, "
                                        "relu6]\n")
    store = tmp_path / "s.jsonl"
    result = runner.invoke(app, ["sweep", str(path), "--store", str(store), "--workers", "1",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["cell"]["network.layers.0.activation"]: row for row in _rows(store)}
    assert rows["linear"]["verdict"] == "unsat"
    assert rows["relu6"]["verdict"] == "error" and rows["relu6"]["status"] == "invalid"
    assert "relu6" in rows["relu6"]["reason"] and "expected one of" in rows["relu6"]["reason"]
    only_bad = _write(tmp_path, SEED_BASE + "axes:\n  loss: [hinge]\n", "bad.yaml")
    every = runner.invoke(app, ["sweep", str(only_bad), "--store", str(tmp_path / "b.jsonl")])
    assert every.exit_code == 2  # nothing could be solved: every cell's spec is invalid


# ----------------------------------------------------------------------------------------
# Local sweeps through the command line, and the store.


def _table(output: str) -> list[dict[str, str]]:
    """The CSV table on stdout, without the seconds column (timings differ run to run)."""
    rows = list(csv.DictReader(io.StringIO(output)))
    for row in rows:
        row.pop("seconds")
    return rows


def test_a_small_sweep_locally(runner: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, SMALL_GRID)
    store = tmp_path / "s.jsonl"
    result = runner.invoke(app, ["sweep", str(path), "--store", str(store), "--timeout", "20"])
    assert result.exit_code == 0, result.output
    assert "| relu | 1 | sat | 3 | M=1..2 (M=1: one-sample lemma; M=2: two-sample lemma) " \
           "| exact |" in result.output
    assert "| linear | 2 | unsat |  | all M (linear-identity lemma) | – |" in result.output
    rows = _rows(store)
    assert len(rows) == 4
    for row in rows:
        assert set(sweep.ROW_KEYS) <= set(row)
        assert row["grid"] == rows[0]["grid"] and len(row["key"]) == 64
    verdicts = {(r["cell"]["network.layers.0.activation"], r["cell"]["network.layers.0.units"]):
                (r["verdict"], r["samples"], r["proved"], r["certificate"]) for r in rows}
    assert verdicts == {("relu", 1): ("sat", 3, "M=1..2", "exact"),
                        ("relu", 2): ("sat", 3, "M=1..2", "exact"),
                        ("linear", 1): ("unsat", 1, "all M", None),
                        ("linear", 2): ("unsat", 1, "all M", None)}
    # Resume: every cell is in the store, nothing is solved again, the same table.
    again = runner.invoke(app, ["sweep", str(path), "--store", str(store), "--format", "csv"])
    assert again.exit_code == 0
    assert "4 already in" in again.output
    assert len(_rows(store)) == 4
    lines = [line for line in again.output.splitlines() if "," in line and "smtgrad" not in line]
    assert lines[0].startswith("network.layers.0.activation,network.layers.0.units,verdict,M")
    jsonl = runner.invoke(app, ["sweep", str(path), "--store", str(store), "--format", "json",
                                "--quiet"])
    assert [json.loads(line)["verdict"] for line in jsonl.output.splitlines()] == \
        ["sat", "sat", "unsat", "unsat"]


def test_a_changed_grid_is_refused_for_resume(runner: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, SMALL_GRID)
    store = tmp_path / "s.jsonl"
    assert runner.invoke(app, ["sweep", str(path), "--store", str(store)]).exit_code == 0
    path.write_text(SMALL_GRID.replace("[1, 2]", "[1, 3]"), encoding="utf-8")
    result = runner.invoke(app, ["sweep", str(path), "--store", str(store)])
    assert result.exit_code == 2
    assert "holds results of another grid" in result.output and "--store" in result.output
    assert len(_rows(store)) == 4  # untouched


def test_a_corrupt_store_line_is_reported_and_skipped(runner: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, SMALL_GRID)
    store = tmp_path / "s.jsonl"
    assert runner.invoke(app, ["sweep", str(path), "--store", str(store),
                               "--quiet"]).exit_code == 0
    lines = store.read_text(encoding="utf-8").splitlines()
    # Line 2 garbled, and the last line cut short (as a kill during a write would leave it).
    store.write_text("\n".join([lines[0], "{not json", lines[1], lines[2], lines[3][:40]]),
                     encoding="utf-8")
    result = runner.invoke(app, ["sweep", str(path), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert f"{store}:2: corrupt line skipped" in result.output
    assert f"{store}:5: corrupt line skipped" in result.output
    assert "3 already in" in result.output
    valid = [row for row in (sweep._parse_row(line)[0] for line in
                             store.read_text(encoding="utf-8").splitlines()) if row]
    assert sorted(Counter(row["key"] for row in valid).values()) == [1, 1, 1, 1]


def test_the_plot_is_a_coloured_matrix(runner: Any, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = _write(tmp_path, SMALL_GRID)
    picture = tmp_path / "grid.png"
    result = runner.invoke(app, ["sweep", str(path), "--store", str(tmp_path / "s.jsonl"),
                                 "--plot", str(picture), "--quiet"])
    assert result.exit_code == 0, result.output
    assert picture.read_bytes().startswith(b"\x89PNG")


# ----------------------------------------------------------------------------------------
# Cells that crash or hang, and a sweep that is killed.


def _crash(spec: dict[str, Any], options: dict[str, Any], parent: int) -> dict[str, Any]:
    os._exit(7)


def _hang(spec: dict[str, Any], options: dict[str, Any], parent: int) -> dict[str, Any]:
    time.sleep(60)
    return {}


def test_a_crashed_or_hung_cell_is_recorded_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep, "_solve_cell", _crash)
    crashed = sweep.run_cell(_base(), {"timeout": 5})
    assert crashed["verdict"] == "error" and crashed["status"] == "crashed"
    assert "exited with code 7" in crashed["reason"]
    monkeypatch.setattr(sweep, "_solve_cell", _hang)
    monkeypatch.setattr(sweep, "grace", lambda timeout: 0.2)
    start = time.perf_counter()
    hung = sweep.run_cell(_base(), {"timeout": 0.3})
    assert time.perf_counter() - start < 5
    assert hung["verdict"] == "unknown" and hung["status"] == "timeout"
    assert "killed" in hung["reason"]


def _smtgrad(*args: str) -> list[str]:
    return [sys.executable, "-c", "from smtgrad._entry import main; main()", *args]


def test_a_killed_sweep_resumes_and_solves_every_cell_once(tmp_path: Path) -> None:
    """One worker; the second cell takes seconds. Kill the whole sweep (its process group,
    as Ctrl-C in a terminal does) once the first row is stored, then run it again."""
    grid = "base:\n" + "\n".join("  " + line for line in SEED_BASE.splitlines()[1:]) + \
        "\naxes:\n  case:\n    - {label: seed, samples: {min: 1, max: 4}}\n" \
        "    - {label: hard, network: {inputs: 2, layers: [{units: 6, activation: relu}, " \
        "{units: 6, activation: abs}, {units: 1, activation: linear}]}, samples: 20, " \
        "fixed: {Y: [1, -2, 3, 5, -1, 2, 7, 4, -3, 0, 6, 1, -5, 2, 3, 8, -1, 4, 2, -2]}, " \
        "query: {zero: [W3, b3, W2, b2], nonzero: [W1]}, assume: [\"loss > 0\"]}\n" \
        "    - {label: linear, network.layers.0.activation: linear}\n"
    path = _write(tmp_path, grid)
    store = tmp_path / "s.jsonl"
    command = _smtgrad("sweep", str(path), "--store", str(store), "--workers", "1",
                       "--timeout", "3", "--quiet")
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and first.poll() is None:
            if store.exists() and store.read_text(encoding="utf-8").count("\n") >= 1:
                break
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert len(_rows(store)) == 1
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = _rows(store)
    assert sorted(Counter(row["key"] for row in rows).values()) == [1, 1, 1]
    verdicts = {row["cell"]["case"]: row["verdict"] for row in rows}
    assert verdicts == {"seed": "sat", "hard": "unknown", "linear": "unsat"}


# ----------------------------------------------------------------------------------------
# A real Dask cluster on localhost: a scheduler and two workers.


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and everything in its process group (a worker's nanny and child)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker`` processes; always stopped afterwards."""
    pytest.importorskip("distributed")
    dask = shutil.which("dask") or str(Path(sys.executable).with_name("dask"))
    if not Path(dask).exists():
        pytest.skip("the dask command is not installed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
              "start_new_session": True, "cwd": tmp_path}
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port",
                                   str(port), "--no-dashboard"], **common)]  # type: ignore
    try:
        for _ in range(2):
            processes.append(subprocess.Popen(
                [dask, "worker", address, "--nworkers", "1", "--nthreads", "1",
                 "--no-dashboard", "--local-directory", str(tmp_path)], **common))  # type: ignore
        from distributed import Client

        client = Client(address, timeout=30)
        try:
            client.wait_for_workers(2, timeout=60)
        finally:
            client.close()
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)


def test_a_sweep_on_a_dask_cluster_matches_the_local_run(runner: Any, tmp_path: Path,
                                                         dask_cluster: str) -> None:
    path = _write(tmp_path, SMALL_GRID)
    local = runner.invoke(app, ["sweep", str(path), "--store", str(tmp_path / "local.jsonl"),
                                "--format", "csv", "--quiet"])
    distributed = runner.invoke(app, ["sweep", str(path), "--store",
                                      str(tmp_path / "dask.jsonl"), "--scheduler",
                                      dask_cluster, "--format", "csv"])
    assert local.exit_code == 0 and distributed.exit_code == 0, distributed.output
    assert "on the Dask cluster at" in distributed.output
    csv_out = distributed.output[distributed.output.index("network.layers.0.activation,"):]
    csv_out = csv_out[:csv_out.index("smtgrad sweep:")]
    assert _table(csv_out) == _table(local.output)
    workers = {row["worker"] for row in _rows(tmp_path / "dask.jsonl")}
    assert os.getpid() not in {int(w.rsplit(":", 1)[1]) for w in workers}
