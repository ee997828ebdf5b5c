"""Experiment `teacher`: a two-layer committee student learning a committee teacher.

Student-teacher soft committee machines (Saad & Solla 1995; Kumar et al. 2023, Sec. 5 for the
output scale as the laziness knob). Teacher: K units, weights B (K, D) ~ N(0, 1); student: M units,
weights J (M, D) ~ N(0, init_scale^2); inputs x ~ N(0, I_D); fields x_i = J_i . x / sqrt(D),
y_n = B_n . x / sqrt(D); activation g = erf(z / sqrt 2) or ReLU. The student's output is

    f(x) = alpha sum_i g(x_i)                (centred=False; Saad-Solla for alpha = 1)
    f(x) = alpha sum_i [g(x_i) - g(x_i^0)]   (centred=True: starts at 0, lazier as alpha grows)

and it is trained by SGD with learning rate lr on (1/(2 alpha^2)) mean_batch (f - sum_n g(y_n))^2,
on fresh samples each step (online, the setting of `dmft.committee`) or on a fixed training set
(full_batch). Time in the ODE's units is step x batch_size / D.

Logged: the overlaps Q = J J^T / D (student, other_student), R = J B^T / D (student, teacher), the
exact population error (closed form in the overlaps) and the error on a fixed test set.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lazyrich.core.sampling import normal_blocks
from lazyrich.experiments.base import Experiment, Output, Parameter, register, step_parameters
from lazyrich.tasks.committee import ACTIVATIONS, committee_output, generalisation_error

PARAMETERS = {
    "output_scale": Parameter(1.0, "float", static=False, minimum=0, exclusive_minimum=True,
                              doc="alpha, the student's output scale (laziness when centred)"),
    "lr": Parameter(0.5, "float", static=False, minimum=0, exclusive_minimum=True,
                    doc="SGD learning rate on the loss divided by alpha^2"),
    "init_scale": Parameter(0.3, "float", static=False, minimum=0, exclusive_minimum=True,
                            doc="standard deviation of the student's initial weights"),
    "D": Parameter(500, "int", static=True, minimum=1, doc="input dimension"),
    "K": Parameter(2, "int", static=True, minimum=1, doc="number of teacher units"),
    "M": Parameter(2, "int", static=True, minimum=1, doc="number of student units"),
    "activation": Parameter("erf", "choice", static=True, choices=ACTIVATIONS,
                            doc="unit activation: erf(z/sqrt 2) or ReLU"),
    "centred": Parameter(False, "bool", static=True,
                         doc="train f - f_0 so the student starts at zero output"),
    "full_batch": Parameter(False, "bool", static=True,
                            doc="gradient descent on P fixed examples instead of online SGD"),
    "P": Parameter(1000, "int", static=True, minimum=1,
                   doc="number of training examples (full_batch only)"),
    "batch_size": Parameter(1, "int", static=True, minimum=1,
                            doc="fresh examples per online SGD step"),
    "n_test": Parameter(1000, "int", static=True, minimum=1, doc="number of test examples"),
    **step_parameters(10_000, 100),
}

OUTPUTS = {
    "Q": Output("student-student overlaps J J^T / D", dims=("student", "other_student")),
    "R": Output("student-teacher overlaps J B^T / D", dims=("student", "teacher")),
    "T": Output("teacher-teacher overlaps B B^T / D", per_step=False,
                dims=("teacher", "other_teacher")),
    "generalisation_error": Output("exact population error (1/2) E (f - f_teacher)^2 from the "
                                   "overlaps"),
    "test_loss": Output("(1/2) mean (f - f_teacher)^2 on the n_test fixed test examples"),
    "train_loss": Output("(1/2) mean (f - f_teacher)^2 on the P training examples",
                         when="full_batch"),
}


def _time_per_step(params: dict) -> float:
    """step x batch_size / D (online SGD: examples seen per input dimension)"""
    return params["batch_size"] / params["D"]


def _student_output(state: dict, x: jax.Array, p: dict) -> jax.Array:
    output = committee_output(state["J"], x, p["activation"])
    if p["centred"]:
        output = output - committee_output(state["J0"], x, p["activation"])
    return p["output_scale"] * output


def _loss(weights, state, x, y, p):
    prediction = _student_output({**state, "J": weights}, x, p)
    return 0.5 * jnp.mean((prediction - y) ** 2) / p["output_scale"] ** 2


def init(key: jax.Array, p: dict) -> dict:
    """Teacher B, student J_0, test set (and training set for full batch); one normal draw."""
    dim = p["D"]
    shapes = {"B": (p["K"], dim), "J": (p["M"], dim), "x_test": (p["n_test"], dim)}
    if p["full_batch"]:
        shapes["x_train"] = (p["P"], dim)
    key_stream, key_draw = jax.random.split(key)
    normals = normal_blocks(key_draw, shapes)
    weights = p["init_scale"] * normals["J"]
    state = {"key": key_stream, "J": weights, "J0": weights, "B": normals["B"]}
    for split in ("test", "train") if p["full_batch"] else ("test",):
        x = normals[f"x_{split}"]
        state[f"x_{split}"] = x
        state[f"y_{split}"] = committee_output(normals["B"], x, p["activation"])
    return state


def step(state: dict, p: dict) -> dict:
    """One SGD step on a fresh batch (online) or on the fixed training set (full batch)."""
    new = dict(state)
    if p["full_batch"]:
        x, y = state["x_train"], state["y_train"]
    else:
        key, draw = jax.random.split(state["key"])
        x = jax.random.normal(draw, (p["batch_size"], p["D"]), state["J"].dtype)
        y = committee_output(state["B"], x, p["activation"])
        new["key"] = key
    gradient = jax.grad(_loss)(state["J"], state, x, y, p)
    new["J"] = state["J"] - p["lr"] * gradient
    return new


def _field_covariance(state: dict, p: dict) -> tuple[jax.Array, jax.Array]:
    """Covariance of the fields (x, [x^0,] y) and the signed readouts of f - f_teacher."""
    blocks = [state["J"], state["J0"], state["B"]] if p["centred"] else [state["J"], state["B"]]
    stacked = jnp.concatenate(blocks)
    covariance = stacked @ stacked.T / p["D"]
    alpha = p["output_scale"] * jnp.ones(p["M"], stacked.dtype)
    readouts = [alpha, -alpha] if p["centred"] else [alpha]
    return covariance, jnp.concatenate(readouts + [-jnp.ones(p["K"], stacked.dtype)])


def metrics(state: dict, p: dict) -> dict:
    covariance, readouts = _field_covariance(state, p)
    dim = p["D"]
    out = {
        "Q": state["J"] @ state["J"].T / dim,
        "R": state["J"] @ state["B"].T / dim,
        "generalisation_error": generalisation_error(covariance, readouts, p["activation"]),
        "test_loss": 0.5 * jnp.mean((_student_output(state, state["x_test"], p)
                                     - state["y_test"]) ** 2),
    }
    if p["full_batch"]:
        out["train_loss"] = 0.5 * jnp.mean((_student_output(state, state["x_train"], p)
                                            - state["y_train"]) ** 2)
    return out


def run_metrics(state: dict, p: dict) -> dict:
    return {"T": state["B"] @ state["B"].T / p["D"]}


TEACHER = register(Experiment(
    name="teacher",
    doc="soft committee student learning a committee teacher by SGD, output scale alpha "
        "(Saad & Solla 1995; Kumar et al. 2023 Sec. 5)",
    parameters=PARAMETERS,
    outputs=OUTPUTS,
    init=init,
    step=step,
    metrics=metrics,
    run_metrics=run_metrics,
    time_scale=_time_per_step,
    loss="test_loss",
))
