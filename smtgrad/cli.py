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

#: smtgrad.spec.MAX_SAMPLES, written out so that ``--help`` does not import the spec
#: package (tests/test_limits.py keeps the two equal).
MAX_SAMPLES = 10_000

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, ...)
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
    MARKDOWN = "markdown"  # an answer ready to post (smtgrad.answers)
    LATEX = "latex"  # the same answer as a LaTeX fragment (amsmath)


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


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None] | None]:
    """Progress on stderr: one updating line on a terminal (rich's Live, cleared at the
    end), plain lines when stderr is not a terminal (a log, a pipe, CI)."""
    if not enabled or not sys.stderr.isatty():
        yield _progress_printer(enabled)
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(stderr=True, highlight=False, markup=False)
    live = Live(Text(""), console=console, auto_refresh=False, transient=True,
                redirect_stdout=False, redirect_stderr=False)
    live.start()
    console.show_cursor(True)  # Ctrl-C leaves at once (os._exit): never leave it hidden

    def show(message: str) -> None:
        live.update(Text(f"  … {message}", no_wrap=True, overflow="ellipsis"), refresh=True)

    try:
        yield show
    finally:
        live.stop()
        console.show_cursor(True)


def _print_version(value: bool) -> None:
    if value:
        from smtgrad import __version__

        typer.echo(f"smtgrad {__version__}")
        raise typer.Exit(EXIT_SAT)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_print_version,
                                          is_eager=True, help="Print the version and exit "
                                                              "(`smtgrad version` also lists "
                                                              "the backends).")] = False,
) -> None:
    """Exact existence questions about the gradients of small neural networks."""


class ReplayEngine(str, Enum):
    """The framework that ``--replay`` rebuilds the witness in."""

    TORCH = "torch"


def _prepare_exports(save_path: Path | None, replay: ReplayEngine | None) -> None:
    """Exit 2 before the search on a ``--save-witness`` suffix that names no format, or an
    optional package that the export or the replay needs and that is not installed."""
    from smtgrad.interop import MissingDependency, available, save_format

    if save_path is not None:
        save_format(save_path)
    if replay is not None and not available("torch"):
        raise MissingDependency("torch", "--replay torch")


def _save_and_replay(answer: Any, save_path: Path | None, replay: ReplayEngine | None,
                     output: OutputFormat) -> None:
    """``--save-witness`` and ``--replay`` of a solve's Result or a check's CheckResult.

    Without a witness (unsat, unknown): nothing is written, a message goes to stderr,
    and the exit code stays the verdict's. The replay table follows the text report on
    stdout; with another ``--format`` it goes to stderr, so stdout stays one document.
    """
    if not answer.has_witness:
        why = f"the verdict is {answer.verdict.value}"
        if save_path is not None:
            typer.echo(f"smtgrad: no witness to save ({why}); {save_path} was not written",
                       err=True)
        if replay is not None:
            typer.echo(f"smtgrad: no witness to replay ({why})", err=True)
        return
    if save_path is not None:
        answer.save(save_path)
        typer.echo(f"smtgrad: witness saved to {save_path}", err=True)
    if replay is not None:
        text = answer.replay().render()
        if output is OutputFormat.TEXT:
            typer.echo("")
            typer.echo(text, nl=False)
        else:
            typer.echo(text, nl=False, err=True)


SpecArgument = Annotated[Path, typer.Argument(help="The YAML spec file.", metavar="SPEC",
                                              show_default=False)]


@app.command()
def solve(
    spec_path: SpecArgument,
    samples: Annotated[int | None, typer.Option("--samples", "-m", min=1, max=MAX_SAMPLES,
                                                help="Number of samples M (overrides the "
                                                     "spec).")] = None,
    minimal: Annotated[bool, typer.Option("--minimal", help="Walk M up from the smallest "
                                                            "value; smaller M are proved "
                                                            "unsat.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", "-t", min=0.1, help="Seconds for "
                                                                            "the whole "
                                                                            "search.")] = 60.0,
    backend: Annotated[str, typer.Option("--backend", "-b", help=(
        "SMT backend: z3 (its last step races cvc5 for unsat proofs), cvc5, or both "
        "(z3 and cvc5 racing on every solver call)."))] = "z3",
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
    plot_path: Annotated[Path | None, typer.Option(
        "--plot", help="Also draw the answer to FILE.png or FILE.svg (needs matplotlib: "
                       "pip install 'smtgrad[plot]').")] = None,
    save_path: Annotated[Path | None, typer.Option(
        "--save-witness", help="Also write the witness to FILE.json (the result JSON), "
                               "FILE.npz (NumPy), FILE.pt (a torch state_dict with X, Y) or "
                               "FILE.onnx (the network).")] = None,
    replay: Annotated[ReplayEngine | None, typer.Option(
        "--replay", help="Rebuild the witness in PyTorch, run autograd in float32 and "
                         "float64, and print its gradients beside the exact ones.")] = None,
) -> None:
    """Find a verified witness for the spec's query, or prove that none exists."""
    with _errors_to_exit_codes():
        _prepare_exports(save_path, replay)  # exit 2 before the search: bad suffix, no torch
        if plot_path is not None:
            from smtgrad.plots import require_plotting

            require_plotting(plot_path)  # exit 2 before the search: no matplotlib, bad suffix
        from smtgrad.engine import SolveOptions
        from smtgrad.engine import solve as run_solve
        from smtgrad.report import render_result, result_json
        from smtgrad.spec import Verdict, load_spec

        spec = load_spec(spec_path)
        options = SolveOptions(samples=samples, minimal=minimal, timeout=timeout,
                               backend=backend, cross_check=cross_check)
        show = sys.stderr.isatty() if progress is None else progress
        with _progress(show) as printer:
            result = run_solve(spec, options, printer)
        data = result_json(result)
        if json_path is not None:
            _write_json(json_path, data)
        if plot_path is not None:
            from smtgrad.plots import plot_result

            plot_result(result, plot_path)
        if output is OutputFormat.JSON:
            typer.echo(json.dumps(data, indent=2))
        elif output is OutputFormat.TEXT:
            typer.echo(render_result(result), nl=False)
        else:
            from smtgrad.answers import result_latex, result_markdown

            answer = result_markdown if output is OutputFormat.MARKDOWN else result_latex
            typer.echo(answer(result), nl=False)
        _save_and_replay(result, save_path, replay, output)
        codes = {Verdict.SAT: EXIT_SAT, Verdict.UNSAT: EXIT_UNSAT,
                 Verdict.UNKNOWN: EXIT_UNKNOWN}
        raise typer.Exit(codes[result.verdict])


@app.command()
def check(
    spec_path: SpecArgument,
    witness_path: Annotated[Path | None, typer.Option("--witness", "-w", help="A result JSON "
                                                                              "or a bare "
                                                                              "witness (JSON "
                                                                              "or YAML).")
                            ] = None,
    smt_model: Annotated[Path | None, typer.Option(
        "--smt-model", help="Instead of --witness: a solver's (get-model) output for the "
                            "script of `smtgrad export SPEC` (exact encoding).")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f",
                                                 help="Output on stdout.")] = OutputFormat.TEXT,
    replay: Annotated[ReplayEngine | None, typer.Option(
        "--replay", help="Rebuild the witness in PyTorch, run autograd in float32 and "
                         "float64, and print its gradients beside the exact ones.")] = None,
) -> None:
    """Re-verify a witness exactly and print every gradient.

    Exit 0: the witness holds. 1: it does not (a requirement is refuted). 3: cannot
    decide (which requirement, and why, is printed).
    """
    with _errors_to_exit_codes():
        _prepare_exports(None, replay)
        from smtgrad.reference.verify import Status, enclosed_coordinates, verify
        from smtgrad.reference.witness import WitnessError, witness_from_json
        from smtgrad.report import check_json, render_check
        from smtgrad.spec import SpecError, load_spec, parse_yaml

        if (witness_path is None) == (smt_model is None):
            _fail(EXIT_BAD_INPUT, "check: give either --witness FILE or --smt-model FILE")
        spec = load_spec(spec_path)
        source = witness_path or smt_model
        assert source is not None
        if not source.is_file():
            raise WitnessError(f"{source}: not a readable file")
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise WitnessError(f"{source}: cannot read ({error})") from None
        if smt_model is not None:
            from smtgrad.encoding.smtmodel import parse_model, witness_from_model

            try:
                witness = witness_from_model(spec, parse_model(text))
            except WitnessError as error:
                raise WitnessError(f"{smt_model}: {error}") from None
        else:
            try:
                raw = parse_yaml(text, str(source))
            except SpecError as error:
                raise WitnessError(str(error)) from None
            try:
                witness = witness_from_json(raw, spec.network, spec.targets)
            except WitnessError as error:
                raise WitnessError(f"{source}: {error}") from None
        verification = verify(spec, witness)
        enclosed = bool(enclosed_coordinates(witness))
        if output is OutputFormat.JSON:
            typer.echo(json.dumps(check_json(spec, verification, enclosed), indent=2))
        elif output is OutputFormat.TEXT:
            typer.echo(render_check(spec, witness, verification, enclosed), nl=False)
        else:
            from smtgrad.answers import check_latex, check_markdown

            answer = check_markdown if output is OutputFormat.MARKDOWN else check_latex
            typer.echo(answer(spec, witness, verification, enclosed), nl=False)
        if replay is not None:
            from smtgrad.api import CheckResult

            _save_and_replay(CheckResult(spec, witness, verification), None, replay, output)
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
    samples: Annotated[int | None, typer.Option("--samples", "-m", min=1, max=MAX_SAMPLES,
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
    solver: Annotated[str, typer.Option("--solver", help="Write the options and declaration "
                                                         "order of this backend: z3 or "
                                                         "cvc5.")] = "z3",
) -> None:
    """Print the SMT-LIB 2 script of the query that `solve` sends to the solver (with the
    logic, options and declaration order that backend uses; time limits are not written)."""
    with _errors_to_exit_codes():
        from smtgrad.encoding.builder import check_supported, encode
        from smtgrad.encoding.environment import private_environment
        from smtgrad.encoding.modes import EXACT, Mode, ModeKind, UnsupportedSpec, is_smooth
        from smtgrad.encoding.smtlib import SOLVERS, expected_status, to_smtlib
        from smtgrad.numbers import NumberError, parse_exact
        from smtgrad.spec import LossKind, load_spec, sample_plan

        if solver not in SOLVERS:
            _fail(EXIT_BAD_INPUT, f"--solver: expected one of {', '.join(SOLVERS)}, not "
                                  f"{solver!r}")
        written = load_spec(spec_path)
        count = sample_plan(written, samples, minimal=False)[0].min
        spec = written.with_samples(count)
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
                encoded = encode(spec, count, mode)
                script = to_smtlib(encoded,
                                   f"smtgrad {spec.name} at M={count}, {mode.describe()}",
                                   status=expected_status(written, encoded), solver=solver)
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
def landscape(
    spec_path: SpecArgument,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1,
                                              help="Stop after this many stationary "
                                                   "patterns.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", "-t", min=0.1,
                                           help="Seconds for the enumeration.")] = 60.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the landscape "
                                                                  "JSON to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--as-json", help="JSON on stdout instead of the "
                                                            "table.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="1-D inputs: the data and one "
                                                             "fitted function per pattern "
                                                             "(PNG or SVG; needs "
                                                             "matplotlib).")] = None,
) -> None:
    """Every activation pattern of a fixed dataset with a stationary point: its loss and
    whether it is a local minimum (one hidden layer of relu, leaky_relu, abs or linear
    units, one linear output, MSE; the spec's query and assume are not used).

    Exit 0 when a stationary pattern was found, 1 when the complete enumeration found
    none, 3 when it was cut short without finding one.
    """
    with _errors_to_exit_codes():
        from smtgrad.landscape import landscape as run_landscape
        from smtgrad.landscape import landscape_json, plot_landscape, render_landscape
        from smtgrad.spec import load_spec

        spec = load_spec(spec_path)
        result = run_landscape(spec, timeout=timeout, limit=limit)
        data = landscape_json(result)
        if json_path is not None:
            _write_json(json_path, data)
        if plot is not None:
            plot_landscape(result, plot)
        if as_json:
            typer.echo(json.dumps(data, indent=2))
        else:
            typer.echo(render_landscape(result), nl=False)
        if result.patterns:
            raise typer.Exit(EXIT_SAT)
        raise typer.Exit(EXIT_UNSAT if result.complete else EXIT_UNKNOWN)


class SweepFormat(str, Enum):
    """The sweep's table on stdout."""

    MARKDOWN = "markdown"
    CSV = "csv"
    JSON = "json"  # JSON Lines: one row per cell, as in the store


@app.command()
def sweep(
    grid_path: Annotated[Path, typer.Argument(help="The grid file (YAML: base: a spec, axes: "
                                                   "paths to lists of values).",
                                              metavar="GRID", show_default=False)],
    store: Annotated[Path | None, typer.Option(
        "--store", help="The JSON Lines result store (default: GRIDNAME-HASH.jsonl in the "
                        "working directory); finished cells in it are skipped.")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="A Dask scheduler, tcp://HOST:8786 (default: "
                            "$DASK_SCHEDULER_ADDRESS, else local worker processes).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-j", min=1, help="Local worker "
                                                "processes (default: one per core).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", "-t", min=0.1, help="Seconds "
                                                  "per cell (default: the grid's timeout, "
                                                  "else 60).")] = None,
    samples: Annotated[int | None, typer.Option("--samples", "-m", min=1, max=MAX_SAMPLES,
                                                help="Solve every cell at this M (with "
                                                     "--minimal: walk up to it).")] = None,
    minimal: Annotated[bool | None, typer.Option("--minimal", help="Walk M up from 1 in "
                                                 "every cell (the default without "
                                                 "--samples).")] = None,
    output: Annotated[SweepFormat, typer.Option("--format", "-f", help="The table on "
                                                "stdout.")] = SweepFormat.MARKDOWN,
    plot_path: Annotated[Path | None, typer.Option(
        "--plot", help="Also draw the grid as a coloured matrix to FILE.png or FILE.svg "
                       "(needs matplotlib).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--quiet", help="Progress on stderr: "
                                           "a bar on a terminal, lines otherwise.")] = True,
) -> None:
    """Solve every cell of a grid of spec variants (the product of its axes) and print
    one table: verdict, minimal M, what proved the smaller M impossible, certificate,
    seconds.

    Exit 0 when the sweep finished with a cell answered (sat, unsat or unknown), 2 for a
    bad grid or store (or when every cell's spec is invalid), 4 when every cell crashed.
    """
    with _errors_to_exit_codes():
        from smtgrad import sweep as sweeps

        if plot_path is not None:
            from smtgrad.plots import require_plotting

            require_plotting(plot_path)
        walk = samples is None if minimal is None else minimal
        grid = sweeps.load_grid(grid_path, mode=sweeps.mode_of(samples, walk))
        outcome = sweeps.sweep(grid, store=store, timeout=timeout, samples=samples,
                            minimal=walk, workers=workers, scheduler=scheduler,
                            progress=progress)
        rows = list(outcome.rows)
        if output is SweepFormat.JSON:
            typer.echo(sweeps.render_jsonl(rows), nl=False)
        elif output is SweepFormat.CSV:
            typer.echo(sweeps.render_csv(grid, rows), nl=False)
        else:
            typer.echo(sweeps.render_markdown(grid, rows), nl=False)
        if plot_path is not None:
            sweeps.plot_grid(grid, rows, plot_path)
        counts = ", ".join(f"{sum(r['verdict'] == v for r in rows)} {v}"
                           for v in ("sat", "unsat", "unknown", "error"))
        if progress:
            typer.echo(f"smtgrad sweep: {len(rows)} cells ({counts}); {outcome.reused} from "
                       f"{outcome.store}; {outcome.seconds:.1f} s", err=True)
        raise typer.Exit(sweeps.exit_code(outcome))


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
