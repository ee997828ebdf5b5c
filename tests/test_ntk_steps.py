"""Costly metrics at chosen steps (`sweep(ntk_steps=)`): values, coordinate, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazyrich
from lazyrich.core import chunks
from lazyrich.experiments.base import COMMON_PARAMETERS, Experiment, Output, Parameter

CALLS = []


def _ntk_metrics(state, reference, params):
    jax.debug.callback(lambda: CALLS.append(1))
    return {"ratio": state["x"] / reference["x0"], "twice": 2 * state["x"]}


def _toy(with_reference=True):
    """x_{s+1} = decay x_s from x_0 = 1 + seed: ratio(s) = decay^s, twice(s) = 2 x_s."""
    return Experiment(
        name="toy_decay", doc="geometric decay",
        parameters={"decay": Parameter(0.9, "float", static=False, doc="factor per step"),
                    **COMMON_PARAMETERS},
        outputs={"train_loss": Output("x"),
                 "ratio": Output("x / x0", at_ntk_steps=True),
                 "twice": Output("2 x", at_ntk_steps=True)},
        init=lambda key, p: {"x": 1.0 + p["seed"] * jnp.ones((), jnp.result_type(float))},
        step=lambda state, p: {"x": p["decay"] * state["x"]},
        metrics=lambda state, p: {"train_loss": state["x"]},
        ntk_metrics=(_ntk_metrics if with_reference
                     else lambda state, state0, p: _ntk_metrics(state, {"x0": state0["x"]}, p)),
        ntk_reference=(lambda state0, p: {"x0": state0["x"]}) if with_reference else None,
    )


@pytest.mark.parametrize("with_reference", [True, False])
def test_values_at_chosen_steps_equal_the_closed_form_and_the_logged_curve(with_reference):
    ds = lazyrich.sweep(_toy(with_reference), decay=[0.5, 0.9], seed=[0, 1, 2], steps=12,
                        log_every=2, ntk_steps=[10, 0, 4], progress=False)
    assert ds.ratio.dims == ("decay", "seed", "ntk_step")
    assert list(ds.ntk_step.values) == [0, 4, 10]
    for decay in (0.5, 0.9):
        np.testing.assert_allclose(ds.ratio.sel(decay=decay).values,
                                   np.broadcast_to(decay ** np.array([0, 4, 10]), (3, 3)),
                                   rtol=1e-6)
    np.testing.assert_allclose(ds.twice.values,
                               2 * ds.train_loss.sel(step=[0, 4, 10]).values, rtol=1e-6)


def test_default_is_first_and_last_step_and_chunking_does_not_matter():
    whole = lazyrich.sweep(_toy(), decay=[0.5, 0.8, 0.9], seed=[0, 1], steps=6, log_every=3,
                           progress=False)
    assert list(whole.ntk_step.values) == [0, 6]
    split = lazyrich.sweep(_toy(), decay=[0.5, 0.8, 0.9], seed=[0, 1], steps=6, log_every=3,
                           chunk_size=4, vmap_size=3, progress=False)
    np.testing.assert_allclose(split.ratio.values, whole.ratio.values, rtol=1e-6)
    np.testing.assert_allclose(whole.ratio.sel(ntk_step=6).values,
                               np.broadcast_to([[0.5**6], [0.8**6], [0.9**6]], (3, 2)),
                               rtol=1e-6)


def test_costly_metrics_run_only_at_chosen_steps_under_vmap():
    """The lax.cond flag is the same for every run, so vmap keeps it a branch: the costly
    function runs at 2 of the 10 log points (a select would run it at all of them)."""
    CALLS.clear()
    lazyrich.sweep(_toy(), decay=[0.5, 0.9], steps=20, log_every=2, ntk_steps=[8, 14],
                   progress=False)
    assert 2 <= len(CALLS) <= 2 * 2


def test_diverged_runs_get_nan_at_later_chosen_steps():
    ds = lazyrich.sweep(_toy(), decay=[0.5, 1e30], steps=12, log_every=2, ntk_steps=[2, 12],
                        progress=False, seed=1)
    assert bool(ds.diverged.sel(decay=1e30))
    assert np.isnan(ds.ratio.sel(decay=1e30, ntk_step=12))
    assert np.isfinite(ds.ratio.sel(decay=0.5).values).all()


@pytest.fixture
def no_compilation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("compiled before validating")
    monkeypatch.setattr(chunks, "compiled_runner", refuse)


@pytest.mark.parametrize("ntk_steps,error,fragments", [
    ([0, 5], ValueError, ["contains 5", "not a logged step", "log_every=2"]),
    ([14], ValueError, ["contains 14", "[0, steps=12]"]),
    ([-2], ValueError, ["contains -2"]),
    ([4, 4], ValueError, ["repeats"]),
    ([], ValueError, ["empty"]),
    ("0 12", TypeError, ["ntk_steps='0 12'", "str"]),
    ([2.0], TypeError, ["contains 2.0", "float"]),
    ([True], TypeError, ["contains True"]),
])
def test_bad_ntk_steps_are_refused_before_compiling(no_compilation, ntk_steps, error,
                                                    fragments):
    with pytest.raises(error) as info:
        lazyrich.sweep(_toy(), steps=12, log_every=2, ntk_steps=ntk_steps, progress=False)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_ntk_steps_need_an_experiment_with_costly_metrics(no_compilation):
    with pytest.raises(ValueError, match="'grokking' has no costly"):
        lazyrich.sweep("grokking", steps=10, log_every=5, ntk_steps=[0, 10], progress=False)
