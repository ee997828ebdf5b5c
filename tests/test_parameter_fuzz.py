"""Property-based fuzzing of the parameter parser: any keyword value either validates to a
value of the declared kind or raises ValueError/TypeError, never anything else."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import lazyrich
from lazyrich.core.grid import make_grid

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
    st.lists(st.one_of(st.integers(-5, 50), st.floats(-2, 50), st.text(max_size=2)),
             max_size=4),
)
GROKKING = lazyrich.get_experiment("grokking")


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(GROKKING.parameters)), value=ANY_VALUE)
def test_validate_returns_the_declared_kind_or_raises_a_clear_error(name, value):
    spec = GROKKING.parameters[name]
    try:
        result = spec.validate(name, value)
    except (ValueError, TypeError) as error:
        assert name in str(error)
        return
    expected = {"float": float, "int": int, "bool": bool, "choice": str}[spec.kind]
    assert isinstance(result, expected)
    if spec.kind == "float":
        assert math.isfinite(result)


@settings(max_examples=200, deadline=None)
@given(params=st.dictionaries(st.sampled_from(sorted(GROKKING.parameters) + ["bogus"]),
                              ANY_VALUE, max_size=4))
def test_make_grid_accepts_or_refuses_cleanly(params):
    try:
        grid = make_grid(GROKKING, params)
    except (ValueError, TypeError):
        return
    assert grid.n_runs >= 1
    assert set(grid.scalars) | {a.name for a in grid.axes} == set(GROKKING.parameters)
