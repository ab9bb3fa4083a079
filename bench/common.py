"""What the bench scripts share: a measurement in a fresh worker process, and an SMT-LIB
script fed to cvc5 through its own parser. Bench code only."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any


def run_worker(command: list[str], timeout: float, cwd: Path, env: dict[str, str] | None = None,
               stderr_tail: int = 400) -> dict[str, Any]:
    """Run a worker that prints its result as JSON on its last line: that dict, or
    ``killed`` past ``timeout`` + 20 s, or ``error`` with the end of its stderr."""
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 20,
                              cwd=cwd, env=env)
    except subprocess.TimeoutExpired:
        return {"verdict": "killed", "seconds": time.perf_counter() - start}
    try:
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (IndexError, json.JSONDecodeError):
        return {"verdict": "error", "seconds": time.perf_counter() - start,
                "stderr": done.stderr[-stderr_tail:]}


def feed_smtlib(solver: Any, script: str, name: str) -> tuple[Any, list[str]]:
    """Parse ``script`` with cvc5's own SMT-LIB parser and run every command on ``solver``:
    the parser's symbol manager (the declared terms) and each command's output, in order."""
    import cvc5

    parser = cvc5.InputParser(solver)
    parser.setStringInput(cvc5.InputLanguage.SMT_LIB_2_6, script, name)
    symbols = parser.getSymbolManager()
    outputs = []
    while True:
        command = parser.nextCommand()
        if command.isNull():
            break
        outputs.append(command.invoke(solver, symbols))
    return symbols, outputs
