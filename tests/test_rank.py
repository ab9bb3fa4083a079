"""The rank criterion's exact linear algebra: integer and rational null spaces agree."""

from __future__ import annotations

import random
import time
from fractions import Fraction
from itertools import chain

from smtgrad.methods.rank import _integer_nullspace, _nullspace, search, solve_linear
from smtgrad.numbers import rational_fractions
from smtgrad.spec import parse_spec


def _rank(vectors: list[list[int]], columns: int) -> int:
    if not vectors:
        return 0
    transposed = [[Fraction(vector[i]) for vector in vectors] for i in range(columns)]
    solved = solve_linear(transposed, [Fraction(0)] * columns, len(vectors))
    assert solved is not None
    return len(vectors) - len(solved[1])


def test_integer_null_space_matches_the_rational_one() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        rows_count, columns = rng.randint(0, 4), rng.randint(1, 5)
        rows = [[rng.randint(-3, 3) if rng.random() < 0.7 else 0 for _ in range(columns)]
                for _ in range(rows_count)]
        basis = _integer_nullspace(rows, columns)
        solved = solve_linear([[Fraction(v) for v in row] for row in rows],
                              [Fraction(0)] * rows_count, columns)
        assert solved is not None
        assert len(basis) == len(solved[1])
        for vector in basis:
            assert all(type(value) is int for value in vector)
            assert all(sum(a * x for a, x in zip(row, vector, strict=True)) == 0
                       for row in rows)
        assert _rank(basis, columns) == len(basis)


def test_null_space_falls_back_to_fractions() -> None:
    rows = [[Fraction(1, 2), 1, 0], [0, Fraction(1, 3), 1]]
    basis = _nullspace(rows, 3)
    assert len(basis) == 1
    assert all(sum(a * x for a, x in zip(row, basis[0], strict=True)) == 0 for row in rows)
    # A rank-deficient integer system: the planted dependency shows up as a 2-d null space.
    assert len(_nullspace([[1, 2, 3], [2, 4, 6]], 3)) == 2


def test_sampler_draws_are_randoms_draws(seed_spec_text: str) -> None:
    """_Sampler writes randint/choice out over getrandbits; the draws must not change."""
    from smtgrad.methods.rank import _Sampler
    from smtgrad.spec import parse_spec

    spec = parse_spec(seed_spec_text, "<seed>")
    for seed in range(100):
        sampler, reference = _Sampler(spec, 3, seed), random.Random(seed)
        for low, high in [(-3, 3), (0, 0), (-12, 12), (-100, 5), (7, 64)]:
            assert sampler.randint(low, high) == reference.randint(low, high)
        assert sampler.choice((3, 5, 7)) == reference.choice((3, 5, 7))
        assert sampler.choice((1, 1, 1, 2)) == reference.choice((1, 1, 1, 2))


def test_rational_fractions_gives_fractions_of_equal_value() -> None:
    row = [0, 1, -64, 64, 65, -10**30, Fraction(1, 2), Fraction(-7, 3)]
    converted = rational_fractions(row)
    assert converted == tuple(Fraction(value) for value in row)
    assert all(type(value) is Fraction for value in converted)


def test_rank_witness_values_are_fractions(seed_spec_text: str) -> None:
    """The witness a rank search hands over holds Fractions only (ints are for its own
    arithmetic)."""
    spec = parse_spec(seed_spec_text, "seed.yaml")
    for seed in range(5):
        witness = search(spec, 3, time.perf_counter() + 10, seed=seed)
        assert witness is not None
        parameters = witness.parameters
        values = [*chain.from_iterable(chain.from_iterable(parameters.weights)),
                  *chain.from_iterable(parameters.biases),
                  *chain.from_iterable(witness.inputs), *chain.from_iterable(witness.targets)]
        assert values and all(type(value) is Fraction for value in values), values


def test_flint_and_python_null_spaces_agree() -> None:
    """Large integer systems go to python-flint: the same space as the Python elimination
    (each basis annihilates the rows, and both have the same dimension)."""
    import random

    from smtgrad.methods.rank import _flint_nullspace, _integer_nullspace

    rng = random.Random(1)
    for rows_count, columns in ((3, 7), (20, 30), (12, 40)):
        rows = [[rng.randint(-4, 4) for _ in range(columns)] for _ in range(rows_count)]
        rows.append([a + b for a, b in zip(rows[0], rows[1], strict=True)])  # rank deficient
        python, flint_basis = _integer_nullspace(rows, columns), _flint_nullspace(rows, columns)
        assert len(python) == len(flint_basis) == columns - (rows_count)
        for vector in flint_basis:
            assert all(sum(a * b for a, b in zip(row, vector, strict=True)) == 0 for row in rows)
            assert any(vector)
