"""The ``smtgrad`` command line (typer). A thin layer: parse options, call, map exit codes.

Exit codes (as grep: found / not found / trouble): 0 sat (or a witness that
holds), 1 unsat (or a witness that does not hold), 2 bad input or usage,
3 unknown (or a witness that cannot be decided), 4 internal error (including a
witness the verifier rejects), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from smtgrad._entry import INTERRUPTED, exit_now_if_a_solver_thread_lives, install_interrupt_handler

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Exact existence questions about the gradients of small neural networks.",
    pretty_exceptions_enable=False,
    # Plain click-style help: typer's rich help costs 0.15-0.2 s of start-up per --help.
    rich_markup_mode=None,
)

EXIT_SAT, EXIT_UNSAT, EXIT_BAD_INPUT, EXIT_UNKNOWN, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = INTERRUPTED  # one value with the console script's SIGINT handler

T = TypeVar("T")


class OutputFormat(str, Enum):
    """Output format on stdout."""

    TEXT = "text"
    JSON = "json"


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"smtgrad: {message}", err=True)
    raise typer.Exit(code)


_INTERNAL = "internal error (a bug, please report it)"


@contextmanager
def _errors_to_exit_codes() -> Iterator[None]:
    """Map every failure to its exit code in one place; never show a traceback.

    :class:`~smtgrad.errors.InputError` exits 2 with its class's label as the prefix
    ("bad spec: ...", "bad witness: ..."), :class:`~smtgrad.errors.InternalError` 4
    (the engine's WitnessRejected and LemmaContradicted among them), KeyboardInterrupt
    130, RecursionError 2 (input nested too deeply), and any other exception 4 (with
    its type name).
    """
    from smtgrad.errors import InputError, InternalError

    try:
        yield
    except typer.Exit:
        raise
    except InputError as error:
        _fail(EXIT_BAD_INPUT, f"{error.label}: {error}" if error.label else str(error))
    except InternalError as error:
        _fail(EXIT_INTERNAL, f"{_INTERNAL}: {error}")
    except KeyboardInterrupt:
        _fail(EXIT_INTERRUPTED, "interrupted")
    except RecursionError:
        _fail(EXIT_BAD_INPUT, "input is nested too deeply")
    except Exception as error:  # the last line of defence: exit 4, one line, no traceback
        _fail(EXIT_INTERNAL, f"{_INTERNAL}: {type(error).__name__}: {error}")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        _fail(EXIT_BAD_INPUT, f"cannot write {path}: {error.strerror}")


def _progress_printer(enabled: bool) -> Callable[[str], None] | None:
    if not enabled:
        return None

    def show(message: str) -> None:
        typer.echo(f"  … {message}", err=True)

    return show


SpecArgument = Annotated[Path, typer.Argument(help="The YAML spec file.", metavar="SPEC",
                                              show_default=False)]


@app.command()
def solve(
    spec_path: SpecArgument,
    samples: Annotated[int | None, typer.Option("--samples", "-m", min=1, max=1000,
                                                help="Number of samples M (overrides the "
                                                     "spec).")] = None,
    minimal: Annotated[bool, typer.Option("--minimal", help="Walk M up from the smallest "
                                                            "value; smaller M are proved "
                                                            "unsat.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", "-t", min=0.1, help="Seconds for "
                                                                            "the whole "
                                                                            "search.")] = 60.0,
    backend: Annotated[str, typer.Option("--backend", "-b", help="SMT backend: z3 or "
                                                                 "cvc5.")] = "z3",
    cross_check: Annotated[bool, typer.Option("--cross-check", help="Confirm every unsat "
                                                                    "with the other "
                                                                    "backend.")] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the result "
                                                                  "JSON to this file.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f",
                                                 help="Output on stdout.")] = OutputFormat.TEXT,
    progress: Annotated[bool | None, typer.Option("--progress/--quiet",
                                                  help="Progress on stderr (default: when "
                                                       "stderr is a terminal).")] = None,
) -> None:
    """Find a verified witness for the spec's query, or prove that none exists."""
    with _errors_to_exit_codes():
        from smtgrad.engine import SolveOptions
        from smtgrad.engine import solve as run_solve
        from smtgrad.report import render_result, result_json
        from smtgrad.spec import Verdict, load_spec

        spec = load_spec(spec_path)
        options = SolveOptions(samples=samples, minimal=minimal, timeout=timeout,
                               backend=backend, cross_check=cross_check)
        show = sys.stderr.isatty() if progress is None else progress
        result = run_solve(spec, options, _progress_printer(show))
        data = result_json(result)
        if json_path is not None:
            _write_json(json_path, data)
        if output is OutputFormat.JSON:
            typer.echo(json.dumps(data, indent=2))
        else:
            typer.echo(render_result(result), nl=False)
        codes = {Verdict.SAT: EXIT_SAT, Verdict.UNSAT: EXIT_UNSAT,
                 Verdict.UNKNOWN: EXIT_UNKNOWN}
        raise typer.Exit(codes[result.verdict])


@app.command()
def check(
    spec_path: SpecArgument,
    witness_path: Annotated[Path, typer.Option("--witness", "-w", help="A result JSON or a "
                                                                       "bare witness (JSON "
                                                                       "or YAML).")],
    output: Annotated[OutputFormat, typer.Option("--format", "-f",
                                                 help="Output on stdout.")] = OutputFormat.TEXT,
) -> None:
    """Re-verify a witness exactly and print every gradient.

    Exit 0: the witness holds. 1: it does not (a requirement is refuted). 3: cannot
    decide (which requirement, and why, is printed).
    """
    with _errors_to_exit_codes():
        from smtgrad.reference.verify import Status, enclosed_coordinates, verify
        from smtgrad.reference.witness import WitnessError, witness_from_json
        from smtgrad.report import check_json, render_check
        from smtgrad.spec import SpecError, load_spec, parse_yaml

        spec = load_spec(spec_path)
        if not witness_path.is_file():
            raise WitnessError(f"{witness_path}: not a readable file")
        try:
            text = witness_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise WitnessError(f"{witness_path}: cannot read ({error})") from None
        try:
            raw = parse_yaml(text, str(witness_path))
        except SpecError as error:
            raise WitnessError(str(error)) from None
        try:
            witness = witness_from_json(raw, spec.network, spec.targets)
        except WitnessError as error:
            raise WitnessError(f"{witness_path}: {error}") from None
        verification = verify(spec, witness)
        enclosed = bool(enclosed_coordinates(witness))
        if output is OutputFormat.JSON:
            typer.echo(json.dumps(check_json(spec, verification, enclosed), indent=2))
        else:
            typer.echo(render_check(spec, witness, verification, enclosed), nl=False)
        codes = {Status.HOLDS: EXIT_SAT, Status.FAILS: EXIT_UNSAT,
                 Status.UNDECIDED: EXIT_UNKNOWN}
        raise typer.Exit(codes[verification.status])


class EncodingChoice(str, Enum):
    """Which encoding `export` prints."""

    AUTO = "auto"
    EXACT = "exact"
    LATTICE = "lattice"
    ABSTRACTION = "abstraction"


@app.command()
def export(
    spec_path: SpecArgument,
    samples: Annotated[int | None, typer.Option("--samples", "-m", min=1, max=1000,
                                                help="Number of samples M (default: the "
                                                     "spec's smallest).")] = None,
    encoding: Annotated[EncodingChoice, typer.Option(
        "--encoding", "-e", help="exact (piecewise-linear nets), lattice (smooth units at "
                                 "k*ln(base)) or abstraction (smooth units abstracted); auto "
                                 "picks exact, or abstraction for smooth nets.")
    ] = EncodingChoice.AUTO,
    base: Annotated[str, typer.Option("--base", help="Lattice base beta > 1 (with "
                                                     "--encoding lattice).")] = "2",
    output_path: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this "
                                                                            "file instead of "
                                                                            "stdout.")] = None,
) -> None:
    """Print the SMT-LIB 2 script of the query that `solve` sends to the solver."""
    with _errors_to_exit_codes():
        from smtgrad.encoding.builder import check_supported, encode
        from smtgrad.encoding.environment import private_environment
        from smtgrad.encoding.modes import EXACT, Mode, ModeKind, UnsupportedSpec, is_smooth
        from smtgrad.encoding.smtlib import to_smtlib
        from smtgrad.numbers import NumberError, parse_exact
        from smtgrad.spec import LossKind, load_spec, sample_plan

        spec = load_spec(spec_path)
        count = sample_plan(spec, samples, minimal=False)[0].min
        spec = spec.with_samples(count)
        try:
            beta = parse_exact(base)
        except NumberError as error:
            _fail(EXIT_BAD_INPUT, f"--base: {error}")
        if beta <= 1:
            _fail(EXIT_BAD_INPUT, "--base: expected a rational number larger than 1")
        choice = encoding
        if choice is EncodingChoice.AUTO:
            smooth = is_smooth(spec) or spec.loss.kind is not LossKind.MSE
            choice = EncodingChoice.ABSTRACTION if smooth else EncodingChoice.EXACT
        mode = {EncodingChoice.EXACT: EXACT,
                EncodingChoice.LATTICE: Mode(ModeKind.LATTICE, beta),
                EncodingChoice.ABSTRACTION: Mode(ModeKind.ABSTRACT)}[choice]
        try:
            check_supported(spec, mode)
            with private_environment():
                script = to_smtlib(encode(spec, count, mode),
                                   f"smtgrad {spec.name} at M={count}, {mode.describe()}")
        except UnsupportedSpec as error:
            _fail(EXIT_BAD_INPUT, f"cannot export: {error}")
        if output_path is None:
            typer.echo(script, nl=False)
        else:
            try:
                output_path.write_text(script, encoding="utf-8")
            except OSError as error:
                _fail(EXIT_BAD_INPUT, f"cannot write {output_path}: {error.strerror}")


@app.command()
def version() -> None:
    """Print the smtgrad version and the installed backends."""
    with _errors_to_exit_codes():
        from smtgrad import __version__
        from smtgrad.backends import get_backend, installed_backends

        names = installed_backends()
        typer.echo(f"smtgrad {__version__}")
        for name in names:
            typer.echo(f"  backend {get_backend(name).version()}")


def main() -> None:
    """Run the command line with smtgrad's exit policy (the console script calls this).

    SIGINT exits 130 at once; a process whose abandoned solver thread still runs
    leaves without interpreter teardown (see :mod:`smtgrad._entry`).
    """
    install_interrupt_handler()
    try:
        app()
    except KeyboardInterrupt:  # raised by code, not by SIGINT (the handler exits first)
        typer.echo("smtgrad: interrupted", err=True)
        exit_now_if_a_solver_thread_lives(EXIT_INTERRUPTED)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        exit_now_if_a_solver_thread_lives(code)
        raise


if __name__ == "__main__":
    main()
