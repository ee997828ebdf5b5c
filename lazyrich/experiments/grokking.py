"""Experiment `grokking`: a two-layer net on a polynomial target, output scale alpha.

Kumar, Bordelon, Gershman, Pehlevan, "Grokking as the transition from lazy to rich training
dynamics" (ICLR 2024), Sec. 2 and Fig. 1-3; paper page `grokking.md` Sec. 1-3. Full-batch
gradient descent on L = mean (f - f_0 - y)^2 / alpha^2 with eta = lr_scale * N: the function
moves at an alpha-independent rate while the weights move ~ 1/alpha, so large alpha is lazy
(kernel regression with the initial NTK) and alpha ~ 1 with small eps groks (train loss falls
early, test loss late, when the features align with the target direction beta).

`dynamics` selects how the network is stepped:
- "auto" (default): "moments" wherever it is exact for every output (fixed readouts, no
  linearised model), "network" otherwise; the choice is in the result's
  `attrs["dynamics_resolved"]`;
- "network": gradient descent on the N x D weights (readouts optionally trained);
- "moments": the exact reduction to the neuron population's moments from the same finite-N
  initialisation (fixed readouts; equal to "network" up to rounding, independent of N in cost);
- "infinite": the same moments dynamics from the N -> infinity initialisation m_0 = 0,
  S_0 = init_scale^2 I (the mean-field limit).

`online=True` draws P fresh training examples at every step (no data reuse; the batch of step s
from `jax.random.fold_in` of the run's key with s, static shapes) instead of one fixed training
set; the first batch is the offline training set, so both start alike.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp

from lazyrich.core.sampling import normal_blocks
from lazyrich.experiments import grokking_model as model
from lazyrich.experiments.base import Experiment, Output, Parameter, register, step_parameters
from lazyrich.measures.metrics import (
    kernel_regression,
    mean_squared_error,
    relative_parameter_movement,
    safe_divide,
)
from lazyrich.tasks.polynomial import (
    TARGETS,
    polynomial_coefficients,
    quadratic_model_population_loss,
    single_index_target,
)

DYNAMICS = ("auto", "network", "moments", "infinite")
ONLINE_STREAM = 1  # fold_in tag of the online batches' key (the run's own draw uses the key)

PARAMETERS = {
    "alpha": Parameter(1.0, "float", static=False, minimum=0, exclusive_minimum=True,
                       doc="output scale; larger is lazier"),
    "eps": Parameter(0.02, "float", static=False,
                     doc="quadratic coefficient of phi(z) = z + eps z^2 / 2"),
    "lr_scale": Parameter(0.5, "float", static=False, minimum=0, exclusive_minimum=True,
                          doc="learning rate per hidden unit: eta = lr_scale * N"),
    "init_scale": Parameter(1.0, "float", static=False, minimum=0, exclusive_minimum=True,
                            doc="standard deviation of the initial first-layer weights"),
    "D": Parameter(100, "int", static=True, minimum=1, doc="input dimension"),
    "N": Parameter(500, "int", static=True, minimum=1, doc="number of hidden units"),
    "P": Parameter(550, "int", static=True, minimum=1, doc="number of training examples"),
    "n_test": Parameter(1000, "int", static=True, minimum=1, doc="number of test examples"),
    "degree": Parameter(2, "int", static=True, minimum=1,
                        doc="degree k of the target p(beta . x / sqrt(D))"),
    "target": Parameter("monomial", "choice", static=True, choices=TARGETS,
                        doc="target polynomial: z^k or the Hermite polynomial He_k(z)"),
    "train_readout": Parameter(False, "bool", static=True,
                               doc="also train the readout weights a_i (initialised to 1)"),
    "dynamics": Parameter("auto", "choice", static=True, choices=DYNAMICS,
                          doc="auto: moments where exact (fixed readouts, not linearized), "
                              "network otherwise; or step the weights, their exact moments, or "
                              "the infinite-width moments"),
    "online": Parameter(False, "bool", static=True,
                        doc="draw P fresh training examples every step (no data reuse)"),
    "linearized": Parameter(False, "bool", static=True, sweepable=False,
                            doc="also train the linearised network and compute kernel "
                                "regression with the initial NTK"),
    **step_parameters(20_000, 100),
}

OUTPUTS = {
    "train_loss": Output("mean squared error of the centred prediction f - f_0 on the training "
                         "set (alpha^2 L); with online=True on the current batch: the P fresh "
                         "examples the next step trains on, not yet trained on"),
    "test_loss": Output("mean squared error of the centred prediction on the n_test test points"),
    "test_loss_population": Output("exact population test loss E_x (f - f_0 - y)^2, x ~ N(0, I), "
                                   "from the sufficient statistics"),
    "v_norm2": Output("|v|^2 / D: the linear (non-generalising) part of the centred function, "
                      "v = alpha mean_i (a_i w_i - a_i0 w_i0)"),
    "beta_M_beta": Output("beta^T M beta / D^2, M = alpha (eps/2) mean_i (a_i w_i w_i^T - "
                          "a_i0 w_i0 w_i0^T): overlap of the learned quadratic form with the "
                          "target"),
    "trace_M": Output("tr(M) / D"),
    "frob_M": Output("||M||_F / D"),
    "alignment": Output("cosine alignment beta^T M beta / (|beta|^2 ||M||_F), 0 when M = 0"),
    "param_movement": Output("relative parameter movement |theta - theta_0|^2 / |theta_0|^2"),
    "lin_train_loss": Output("train loss of the linearised network trained side by side",
                             when="linearized"),
    "lin_test_loss": Output("test loss of the linearised network", when="linearized"),
    "kernel_test_loss": Output("test loss of ridgeless kernel regression with the initial NTK "
                               "(the lazy limit, t -> infinity)", per_step=False,
                               when="linearized"),
}


def resolved_dynamics(params: dict) -> str:
    """The dynamics a run uses: `dynamics`, with "auto" resolved to "moments" when the moment
    reduction is exact for every output (fixed readouts, no linearised model), else "network"."""
    if params["dynamics"] != "auto":
        return params["dynamics"]
    return "network" if params["train_readout"] or params["linearized"] else "moments"


def _resolved_attrs(static_points: list[dict]) -> dict:
    """attrs["dynamics_resolved"]: the dynamics run, or a JSON list of them in static-point
    order when the static axes make them differ."""
    chosen = [resolved_dynamics(static) for static in static_points]
    return {"dynamics_resolved": chosen[0] if len(set(chosen)) == 1 else json.dumps(chosen)}


def _check(params: dict) -> None:
    if params["online"] and params["linearized"]:
        raise ValueError("online=True with linearized=True is not allowed: kernel regression "
                         "with the initial NTK is an offline (fixed training set) limit")
    if resolved_dynamics(params) != "network" and params["train_readout"]:
        raise ValueError(f"train_readout=True needs dynamics='network' (got "
                         f"dynamics={params['dynamics']!r}): with trained readouts the moment "
                         f"reduction does not close")
    if resolved_dynamics(params) != "network" and params["linearized"]:
        raise ValueError(f"linearized=True needs dynamics='network' (got "
                         f"dynamics={params['dynamics']!r})")


def _coefficients(p: dict) -> tuple[float, ...]:
    return polynomial_coefficients(p["target"], p["degree"])


def init(key: jax.Array, p: dict) -> dict:
    """Draw data, teacher and first-layer weights W_0 ~ N(0, init_scale^2) of shape (N, D)."""
    dim = p["D"]
    normals = normal_blocks(key, {"beta": (dim,), "x_train": (p["P"], dim),
                                  "x_test": (p["n_test"], dim), "W": (p["N"], dim)})
    data = {k: normals[k] for k in ("beta", "x_train", "x_test")}
    for split in ("train", "test"):
        data[f"y_{split}"] = single_index_target(data[f"x_{split}"], data["beta"],
                                                 _coefficients(p))
    dtype = data["x_train"].dtype
    weights = p["init_scale"] * normals["W"]
    state = {"data": data}
    if p["online"]:
        state.update(batch_key=jax.random.fold_in(key, ONLINE_STREAM),
                     batch_index=jnp.zeros((), jnp.int32))
    dynamics = resolved_dynamics(p)
    if dynamics == "network":
        net = {"W": weights}
        if p["train_readout"]:
            net["a"] = jnp.ones(p["N"], dtype)
        state.update(net=net, net0=net)
        if p["linearized"]:
            state["lin"] = net
        for split in ("train", "test"):
            state[f"f0_{split}"] = model.network_output(net, data[f"x_{split}"], p["alpha"],
                                                        p["eps"])
        return state
    if dynamics == "moments":
        m0, s0 = jnp.mean(weights, axis=0), weights.T @ weights / p["N"]
    else:
        m0, s0 = jnp.zeros(dim, dtype), p["init_scale"] ** 2 * jnp.eye(dim, dtype=dtype)
    zeros = jnp.zeros_like(s0)
    state.update(initial={"m0": m0, "S0": s0},
                 deviation={"dm": jnp.zeros_like(m0), "dS": zeros, "dC": zeros})
    return state


def _centred_output(state: dict, split: str, p: dict) -> jax.Array:
    """f - f_0 on the train or test inputs, for either dynamics."""
    x = state["data"][f"x_{split}"]
    if "net" in state:
        return model.network_output(state["net"], x, p["alpha"], p["eps"]) - state[f"f0_{split}"]
    return model.moments_centred_output(state["deviation"], x, p["alpha"], p["eps"])


def _network_loss(net, x, f0, y, p):
    prediction = model.network_output(net, x, p["alpha"], p["eps"]) - f0
    return mean_squared_error(prediction, y) / p["alpha"] ** 2


def _linearized_output(lin, net0, x, p):
    """Centred output of the first-order Taylor expansion at net0 (one jvp)."""
    def output(net):
        return model.network_output(net, x, p["alpha"], p["eps"])
    tangent = jax.tree_util.tree_map(jnp.subtract, lin, net0)
    return jax.jvp(output, (net0,), (tangent,))[1]


def _linearized_loss(lin, net0, x, y, p):
    return mean_squared_error(_linearized_output(lin, net0, x, p), y) / p["alpha"] ** 2


def _gradient_step(tree, gradient, learning_rate):
    return jax.tree_util.tree_map(lambda w, g: w - learning_rate * g, tree, gradient)


def _next_batch(state: dict, p: dict) -> dict:
    """The state with the next online batch as its training set: x (P, D) ~ N(0, I) from
    fold_in(batch_key, batch index), its targets, and for the network f_0 on it."""
    index = state["batch_index"] + 1
    x = jax.random.normal(jax.random.fold_in(state["batch_key"], index), (p["P"], p["D"]),
                          state["data"]["x_train"].dtype)
    data = {**state["data"], "x_train": x,
            "y_train": single_index_target(x, state["data"]["beta"], _coefficients(p))}
    new = {**state, "data": data, "batch_index": index}
    if "net0" in state:
        new["f0_train"] = model.network_output(state["net0"], x, p["alpha"], p["eps"])
    return new


def step(state: dict, p: dict) -> dict:
    """One full-batch gradient-descent step (network, moments, and linearised model if any) on
    the training set, or with online=True on the current batch, then draws the next batch."""
    data = state["data"]
    x, y = data["x_train"], data["y_train"]
    learning_rate = p["lr_scale"] * p["N"]
    new = dict(state)
    if "net" in state:
        gradient = jax.grad(_network_loss)(state["net"], x, state["f0_train"], y, p)
        new["net"] = _gradient_step(state["net"], gradient, learning_rate)
        if "lin" in state:
            lin_gradient = jax.grad(_linearized_loss)(state["lin"], state["net0"], x, y, p)
            new["lin"] = _gradient_step(state["lin"], lin_gradient, learning_rate)
    else:
        residual = _centred_output(state, "train", p) - y
        new["deviation"] = model.moments_step(state["deviation"], state["initial"], residual, x,
                                              p["alpha"], p["eps"], p["lr_scale"])
    if "batch_key" in state:
        new = _next_batch(new, p)
    return new


def _statistics(v: jax.Array, M: jax.Array, beta: jax.Array, coefficients) -> dict:
    dim = float(beta.shape[0])  # a Python int D**2 overflows int32 for D > 46340
    beta_m_beta = beta @ M @ beta
    frob = jnp.sqrt(jnp.sum(M * M))
    return {
        "test_loss_population": quadratic_model_population_loss(v, M, beta, coefficients),
        "v_norm2": v @ v / dim,
        "beta_M_beta": beta_m_beta / dim**2,
        "trace_M": jnp.trace(M) / dim,
        "frob_M": frob / dim,
        "alignment": safe_divide(beta_m_beta, (beta @ beta) * frob),
    }


def metrics(state: dict, p: dict) -> dict:
    """Losses, sufficient statistics and parameter movement of the current state."""
    data = state["data"]
    alpha, eps = p["alpha"], p["eps"]
    if "net" in state:
        v, M = model.network_function_coefficients(state["net"], state["net0"], alpha, eps)
        movement = relative_parameter_movement(state["net"], state["net0"])
    else:
        deviation = state["deviation"]
        v, M = model.moments_function_coefficients(deviation, alpha, eps)
        # sum_i |w_i - w_i0|^2 / sum_i |w_i0|^2 = tr(S - 2 C + S_0) / tr(S_0)
        movement = (jnp.trace(deviation["dS"]) - 2 * jnp.trace(deviation["dC"])) \
            / jnp.trace(state["initial"]["S0"])
    out = {
        "train_loss": mean_squared_error(_centred_output(state, "train", p), data["y_train"]),
        "test_loss": mean_squared_error(_centred_output(state, "test", p), data["y_test"]),
        "param_movement": movement,
        **_statistics(v, M, data["beta"], _coefficients(p)),
    }
    if "lin" in state:
        for split in ("train", "test"):
            x, y = data[f"x_{split}"], data[f"y_{split}"]
            lin_output = _linearized_output(state["lin"], state["net0"], x, p)
            out[f"lin_{split}_loss"] = mean_squared_error(lin_output, y)
    return out


def run_metrics(state: dict, p: dict) -> dict:
    """Once per run, from the initial state: kernel regression with the initial NTK."""
    if "lin" not in state:
        return {}
    data, net0 = state["data"], state["net0"]
    kernel_train = model.network_ntk(net0, data["x_train"], data["x_train"], p["alpha"], p["eps"])
    kernel_test = model.network_ntk(net0, data["x_test"], data["x_train"], p["alpha"], p["eps"])
    prediction = kernel_regression(kernel_train, kernel_test, data["y_train"])
    return {"kernel_test_loss": mean_squared_error(prediction, data["y_test"])}


GROKKING = register(Experiment(
    name="grokking",
    doc="two-layer net phi(z) = z + eps z^2/2 on y = p(beta.x/sqrt(D)), output scale alpha "
        "(Kumar et al. 2023)",
    parameters=PARAMETERS,
    outputs=OUTPUTS,
    init=init,
    step=step,
    metrics=metrics,
    run_metrics=run_metrics,
    check=_check,
    time_scale="lr_scale",
    resolved_attrs=_resolved_attrs,
))
