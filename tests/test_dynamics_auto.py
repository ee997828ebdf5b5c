"""dynamics="auto" (the grokking default): the moments path exactly where it is exact for every
output, the network path otherwise, the choice recorded in the Dataset's attrs, and the same
curves as dynamics="network"."""

import itertools
import json

import jax
import numpy as np
import pytest

import lazyrich
from lazyrich.experiments import grokking

TINY = {"D": 10, "N": 32, "P": 40, "n_test": 50, "steps": 200, "log_every": 20}


@pytest.mark.parametrize("train_readout, linearized",
                         list(itertools.product([False, True], [False, True])))
def test_auto_picks_moments_exactly_when_the_reduction_is_exact(train_readout, linearized):
    """Fixed readouts and no linearised model -> moments (the state holds the moments, not the
    weights); trained readouts or linearized=True -> network (weights in the state)."""
    p = grokking.GROKKING.defaults(train_readout=train_readout, linearized=linearized, **TINY)
    assert p["dynamics"] == "auto"
    exact = not train_readout and not linearized
    assert grokking.resolved_dynamics(p) == ("moments" if exact else "network")
    state = jax.eval_shape(lambda: grokking.init(jax.random.key(0), p))
    assert ("deviation" in state) == exact and ("net" in state) == (not exact)


def test_auto_equals_network_to_float32_rounding_and_records_its_choice():
    """On a small grid (float32) the default's curves equal dynamics="network" to float32
    rounding (1e-4 relative, 1e-6 absolute over 200 steps); attrs name the path it ran."""
    grid = {"alpha": [0.5, 2.0], "eps": [0.02, 0.3], "seed": [0, 1], **TINY}
    auto = lazyrich.sweep("grokking", progress=False, **grid)
    network = lazyrich.sweep("grokking", dynamics="network", progress=False, **grid)
    assert auto.attrs["dynamics"] == "auto" and auto.attrs["dynamics_resolved"] == "moments"
    assert network.attrs["dynamics_resolved"] == "network"
    for name in ("train_loss", "test_loss", "test_loss_population", "beta_M_beta",
                 "param_movement"):
        np.testing.assert_allclose(auto[name], network[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)


def test_a_static_axis_that_changes_the_choice_is_recorded_per_static_point():
    """When static axes make the choice differ, attrs list it per static point, in grid order
    (a JSON list); when all agree, the one name."""
    defaults = grokking.GROKKING.defaults(**TINY)
    points = [{**defaults, "train_readout": readout} for readout in (False, True)]
    assert json.loads(grokking._resolved_attrs(points)["dynamics_resolved"]) == \
        ["moments", "network"]
    same = [{**defaults, "dynamics": "auto", "alpha": a} for a in (1.0, 2.0)]
    assert grokking._resolved_attrs(same) == {"dynamics_resolved": "moments"}
