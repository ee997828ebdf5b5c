"""Bad input to the theory (`dmft`): each case raises naming the argument, before work."""

import numpy as np
import pytest


def test_theory_solvers_refuse_bad_input():
    from dmft import committee, kernel

    eye = np.eye(2)
    with pytest.raises(ValueError, match="dt="):
        committee.solve(0.5, eye, eye, eye, t_max=1.0, dt=float("inf"))
    with pytest.raises(ValueError, match="multiple of dt"):
        committee.solve(0.5, eye, eye, eye, t_max=1.05, dt=0.1)
    with pytest.raises(ValueError, match="steps must be"):
        kernel.learning_curves(eye, eye, np.ones(2), np.ones(2), [-1], 0.1)
    with pytest.raises(ValueError, match="log_every"):
        kernel.grokking_lazy_curves(steps=10, log_every=3)
