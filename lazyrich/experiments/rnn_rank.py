"""Experiment `rnn_rank`: a ReLU RNN on 2AF / DMS / CXT from a rank-r recurrent initialisation.

Liu et al. (ICLR 2024), Sec. 4, Fig. 1 (the authors' script `main.py`); paper page
`connectivity.md` Sec. 1, 3 and 5. No biases, h_0 = 0,

    h_{t+1} = relu((1 - a) h_t + a (W_in x_t + W_h h_t)),    y_t = W_out h_{t+1},

a = `leak` (dt / tau; the authors run a = 1). W_h(0) is the rank-r truncation at fixed Frobenius
norm of gain * N(0, 1/N) (every rank of a seed shares the base draw; `rank` is batched),
W_in and W_out are uniform(+-1/sqrt(fan_in)). All three are trained by SGD with momentum
(v <- momentum v + g, theta <- theta - lr v, as PyTorch) on the cross-entropy averaged over all
steps and trials of a fresh batch each step.

Logged every `log_every` steps on a fixed evaluation set (`eval_batches` x `batch_size` trials
drawn at initialisation): `loss`, `accuracy` (decision step), `weight_change` of W_h. At the
steps chosen with `ntk_steps=` (default first and last): the kernel alignment of the empirical
NTK w.r.t. W_h over (time, trial, output) of the first `batch_size` evaluation trials (768
outputs for 2AF, as the authors), the representation alignment and sign similarity of the
decision-step activity of all evaluation trials, and the kernel-target alignment.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from lazyrich.core import init as initialisation
from lazyrich.core.sampling import normal_blocks
from lazyrich.experiments.base import Experiment, Output, Parameter, register, step_parameters
from lazyrich.measures import alignment
from lazyrich.measures.ntk import empirical_ntk
from lazyrich.tasks import cognitive

PARAMETERS = {
    "task": Parameter("2AF", "choice", static=True, choices=cognitive.TASKS,
                      doc="cognitive task (neurogym layout and timing)"),
    "N": Parameter(300, "int", static=True, minimum=1, doc="number of recurrent units"),
    "rank": Parameter(300, "int", static=False, minimum=1,
                      doc="rank of W_h(0) at fixed Frobenius norm (<= N)"),
    "gain": Parameter(1.25, "float", static=False, minimum=0, exclusive_minimum=True,
                      doc="gain g of the base draw W0 = g N(0, 1/N)"),
    "leak": Parameter(1.0, "float", static=False, minimum=0, exclusive_minimum=True,
                      doc="a = dt / tau in (0, 1]"),
    "lr": Parameter(0.003, "float", static=False, minimum=0, exclusive_minimum=True,
                    doc="SGD learning rate"),
    "momentum": Parameter(0.9, "float", static=False, minimum=0, doc="SGD momentum in [0, 1)"),
    "batch_size": Parameter(32, "int", static=True, minimum=1, doc="trials per step"),
    "eval_batches": Parameter(10, "int", static=True, minimum=1,
                              doc="evaluation trials / batch_size (fixed at initialisation)"),
    **step_parameters(10_000, 100),
}

OUTPUTS = {
    "loss": Output("cross-entropy over all steps and evaluation trials"),
    "accuracy": Output("fraction of evaluation trials whose decision-step argmax is the label"),
    "weight_change": Output("||W_h - W_h(0)||_F"),
    "kernel_alignment": Output("<K0, K>_F / (||K0|| ||K||), empirical NTK w.r.t. W_h over "
                               "(time, trial, output)", at_ntk_steps=True),
    "representation_alignment": Output("kernel alignment of the Gram matrices of decision-step "
                                       "activity", at_ntk_steps=True),
    "sign_similarity": Output("fraction of decision-step unit activities whose on/off state is "
                              "unchanged since initialisation", at_ntk_steps=True),
    "kernel_target_alignment": Output("y^T K y / (||y||^2 ||K||_F), y the one-hot targets",
                                      at_ntk_steps=True),
}


def _check_batched(static: dict, values: dict) -> None:
    too_large = [r for r in values["rank"] if r > static["N"]]
    if too_large:
        raise ValueError(f"rank={too_large[0]} is out of range; W_h is {static['N']} x "
                         f"{static['N']}, so rank must be in [1, N] = [1, {static['N']}]")
    bad_leak = [a for a in values["leak"] if a > 1]
    if bad_leak:
        raise ValueError(f"leak={bad_leak[0]} is out of range; leak = dt / tau must be in (0, 1]")
    bad_momentum = [m for m in values["momentum"] if m >= 1]
    if bad_momentum:
        raise ValueError(f"momentum={bad_momentum[0]} is out of range; momentum must be in "
                         f"[0, 1)")


def run(weights: dict, inputs: jax.Array, leak) -> tuple[jax.Array, jax.Array]:
    """Hidden activity (T, B, N) and outputs (T, B, 3) for inputs (T, B, n_inputs)."""
    W_in, W_h, W_out = weights["W_in"], weights["W_h"], weights["W_out"]

    def cell(h, x):
        h = jax.nn.relu((1 - leak) * h + leak * (x @ W_in.T + h @ W_h.T))
        return h, h

    h0 = jnp.zeros((inputs.shape[1], W_h.shape[0]), inputs.dtype)
    _, hidden = lax.scan(cell, h0, inputs)
    return hidden, hidden @ W_out.T


def cross_entropy(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean over all (T, B) of -log softmax(outputs)[label]."""
    log_p = jax.nn.log_softmax(outputs, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_p, labels[..., None], axis=-1))


def _loss(weights, inputs, labels, leak):
    return cross_entropy(run(weights, inputs, leak)[1], labels)


def initial_weights(normals: dict, p: dict) -> dict:
    """W_h rank-r at the Frobenius norm of the full gain draw; W_in, W_out uniform fan-in."""
    base = initialisation.gaussian(normals["W_h"], p["gain"])
    W_h = initialisation.truncate(initialisation.singular_basis(base), p["rank"],
                                  jnp.sqrt(jnp.sum(base**2)))
    return {"W_in": initialisation.uniform_fan_in(normals["W_in"]), "W_h": W_h,
            "W_out": initialisation.uniform_fan_in(normals["W_out"])}


def init(key: jax.Array, p: dict) -> dict:
    """Weights, zero velocity, the training key and the evaluation trials."""
    weights_key, eval_key, train_key = jax.random.split(key, 3)
    n, n_in = p["N"], cognitive.N_INPUTS[p["task"]]
    normals = normal_blocks(weights_key, {"W_h": (n, n), "W_in": (n, n_in),
                                          "W_out": (cognitive.N_OUTPUTS, n)})
    weights = initial_weights(normals, p)
    inputs, labels = cognitive.trials(eval_key, p["task"], p["eval_batches"] * p["batch_size"])
    return {"weights": weights, "weights0": weights,
            "velocity": jax.tree_util.tree_map(jnp.zeros_like, weights),
            "key": train_key, "eval": {"inputs": inputs, "labels": labels}}


def step(state: dict, p: dict) -> dict:
    """One SGD-with-momentum step on a fresh batch."""
    key, batch_key = jax.random.split(state["key"])
    inputs, labels = cognitive.trials(batch_key, p["task"], p["batch_size"])
    gradient = jax.grad(_loss)(state["weights"], inputs, labels, p["leak"])
    velocity = jax.tree_util.tree_map(lambda v, g: p["momentum"] * v + g, state["velocity"],
                                      gradient)
    weights = jax.tree_util.tree_map(lambda w, v: w - p["lr"] * v, state["weights"], velocity)
    return {**state, "weights": weights, "velocity": velocity, "key": key}


def metrics(state: dict, p: dict) -> dict:
    """Loss and decision-step accuracy on the evaluation trials; recurrent weight change."""
    evaluation = state["eval"]
    _, outputs = run(state["weights"], evaluation["inputs"], p["leak"])
    correct = jnp.argmax(outputs[-1], axis=-1) == evaluation["labels"][-1]
    change = alignment.weight_change({"W_h": state["weights"]["W_h"]},
                                     {"W_h": state["weights0"]["W_h"]})
    return {"loss": cross_entropy(outputs, evaluation["labels"]),
            "accuracy": jnp.mean(correct.astype(outputs.dtype)),
            "weight_change": change["W_h"]}


def recurrent_ntk(weights: dict, inputs: jax.Array, leak) -> jax.Array:
    """(T B 3, T B 3) empirical NTK of the outputs w.r.t. W_h, outputs ordered (t, b, k)."""
    return empirical_ntk(lambda w: run(w, inputs, leak)[1], weights, wrt=("W_h",))


def _ntk_inputs(state: dict, p: dict) -> jax.Array:
    return state["eval"]["inputs"][:, : p["batch_size"]]


def ntk_reference(state0: dict, p: dict) -> dict:
    """Once per run: the initial NTK and decision-step activity."""
    hidden, _ = run(state0["weights"], state0["eval"]["inputs"], p["leak"])
    return {"kernel": recurrent_ntk(state0["weights"], _ntk_inputs(state0, p), p["leak"]),
            "decision": hidden[-1]}


def ntk_metrics(state: dict, reference: dict, p: dict) -> dict:
    """Kernel, representation and kernel-target alignment and sign similarity vs the start."""
    kernel = recurrent_ntk(state["weights"], _ntk_inputs(state, p), p["leak"])
    hidden, _ = run(state["weights"], state["eval"]["inputs"], p["leak"])
    labels = state["eval"]["labels"][:, : p["batch_size"]]
    targets = jax.nn.one_hot(labels, cognitive.N_OUTPUTS, dtype=kernel.dtype).reshape(-1)
    return {
        "kernel_alignment": alignment.kernel_alignment(reference["kernel"], kernel),
        "representation_alignment": alignment.representation_alignment(reference["decision"],
                                                                       hidden[-1]),
        "sign_similarity": alignment.sign_similarity(reference["decision"], hidden[-1]),
        "kernel_target_alignment": alignment.kernel_target_alignment(kernel, targets),
    }


RNN_RANK = register(Experiment(
    name="rnn_rank",
    doc="ReLU RNN on neurogym-style 2AF / DMS / CXT tasks from a rank-r recurrent init at fixed "
        "norm (Liu et al. 2024, Fig. 1)",
    parameters=PARAMETERS,
    outputs=OUTPUTS,
    init=init,
    step=step,
    metrics=metrics,
    check_batched=_check_batched,
    loss="loss",
    ntk_metrics=ntk_metrics,
    ntk_reference=ntk_reference,
))
