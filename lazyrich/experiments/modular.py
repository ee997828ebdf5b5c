"""Experiment `modular`: modular addition with an MLP or a one-layer transformer, output scale
batched.

Kumar, Bordelon, Gershman, Pehlevan (2023), Sec. 5 / Fig. 2 (paper page `grokking.md`, Sec. 5;
the authors' notebook). A random fraction `train_fraction` (0.9) of the p^2 pairs (a, b), p = 23,
is the training set; the label is (a + b) mod p. Two models, selected by `model`:

- "mlp" (the notebook's): one-hot pair inputs x (D = 2p), hidden width N,
  f(x) = scale W2 phi(W1 x) / (D N) with phi(z) = z^2, W1 (N, D) and W2 (p, N) ~ N(0, 1);
- "transformer": `modular_transformer.Transformer` (flax nnx, width = d_model, `heads` heads,
  d_mlp = 4 d_model) on the tokens (a, b, =), f = scale x its logits.

With `centred` the model trained and evaluated is f - f_0. Full-batch training on the MSE to
one-hot targets (or the cross-entropy) with step size lr / scale^2 for SGD (lr = 100 in the
paper) and lr / scale for Adam (whose update per weight is ~ its step size): the function then
moves at a scale-independent rate while the weights move ~ 1/scale, so a larger scale is lazier
and generalisation comes later (the grokking delay grows with the scale). lr = 100 suits the
MLP's 1/(D N) normalisation; the transformer (standard parameterisation) needs lr ~ 0.1 with
SGD and the cross-entropy, or Adam with lr ~ 1e-3: larger steps diverge. With the MLP, SGD
and lr = 100 this is the notebook's setting as the paper page states it (scales 0.5 to 2, 50k to
100k steps); the gallery uses lr = 400 to fit CI time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lazyrich.core.sampling import normal_blocks
from lazyrich.experiments import classification
from lazyrich.experiments import modular_transformer as transformer
from lazyrich.experiments.base import Experiment, Output, Parameter, register, step_parameters
from lazyrich.measures.metrics import relative_parameter_movement, squared_norm
from lazyrich.tasks.modular import one_hot_pairs, random_split, token_sequences, train_size

MODELS = ("mlp", "transformer")

PARAMETERS = {
    "scale": Parameter(1.0, "float", static=False, minimum=0, exclusive_minimum=True,
                       doc="output scale multiplying the network; larger is lazier"),
    "lr": Parameter(100.0, "float", static=False, minimum=0, exclusive_minimum=True,
                    doc="step size times scale^2 (SGD) or times scale (Adam)"),
    "weight_decay": Parameter(0.0, "float", static=False, minimum=0,
                              doc="fraction by which every weight shrinks each step (< 1)"),
    "p": Parameter(23, "int", static=True, minimum=2, doc="modulus; inputs are pairs mod p"),
    "train_fraction": Parameter(0.9, "float", static=True, minimum=0, exclusive_minimum=True,
                                doc="fraction of the p^2 pairs used for training, in (0, 1)"),
    "model": Parameter("mlp", "choice", static=True, choices=MODELS,
                       doc="the notebook's MLP or a one-layer transformer (flax nnx)"),
    "width": Parameter(100, "int", static=True, minimum=1,
                       doc="hidden units N of the MLP, or d_model of the transformer"),
    "heads": Parameter(4, "int", static=True, minimum=1,
                       doc="attention heads of the transformer (must divide width)"),
    "activation": Parameter("quadratic", "choice", static=True,
                            choices=tuple(transformer.ACTIVATIONS),
                            doc="hidden nonlinearity of the MLP / the transformer's MLP block"),
    "loss": Parameter("mse", "choice", static=True, choices=classification.LOSSES,
                      doc="MSE on one-hot targets or cross-entropy"),
    "optimizer": Parameter("sgd", "choice", static=True, choices=classification.OPTIMIZERS,
                           doc="full-batch gradient descent or Adam"),
    "centred": Parameter(False, "bool", static=True,
                         doc="train f - f_0, so every scale starts from f = 0"),
    **step_parameters(50_000, 500),
}

OUTPUTS = {
    "train_loss": Output("loss on the training pairs"),
    "test_loss": Output("loss on the held-out pairs"),
    "train_accuracy": Output("fraction of training pairs whose largest output is (a + b) mod p"),
    "test_accuracy": Output("fraction of held-out pairs whose largest output is (a + b) mod p"),
    "param_movement": Output("relative parameter movement |theta - theta_0|^2 / |theta_0|^2"),
    "weight_norm": Output("|theta| / |theta_0|, the weight norm relative to initialisation"),
}


def _check(params: dict) -> None:
    train_size(params["p"], params["train_fraction"])
    if params["model"] == "transformer" and params["width"] % params["heads"]:
        raise ValueError(f"heads={params['heads']} does not divide width={params['width']}; the "
                         f"transformer's d_model = width must be a multiple of heads")


def _template(params: dict) -> tuple:
    width = params["width"]
    return transformer.template(params["p"], width, params["heads"], 4 * width,
                                params["activation"], str(jnp.result_type(float)))


def _weight_shapes(params: dict) -> dict[str, tuple[int, ...]]:
    if params["model"] == "mlp":
        return {"W1": (params["width"], 2 * params["p"]), "W2": (params["p"], params["width"])}
    return transformer.weight_shapes(_template(params))


def network_output(weights: dict, inputs: jax.Array, params: dict) -> jax.Array:
    """f before centring: (P, p) outputs for one-hot pairs (P, 2p) or token sequences (P, 3)."""
    if params["model"] == "mlp":
        n_inputs, width = inputs.shape[-1], weights["W1"].shape[0]
        hidden = transformer.ACTIVATIONS[params["activation"]](inputs @ weights["W1"].T)
        return params["scale"] * hidden @ weights["W2"].T / (n_inputs * width)
    return params["scale"] * transformer.apply(weights, inputs, _template(params))


def init(key: jax.Array, params: dict) -> dict:
    """Split the pairs (one permutation) and draw the weights (one normal draw)."""
    split_key, weight_key = jax.random.split(key)
    modulus = params["p"]
    pairs = random_split(split_key, modulus, train_size(modulus, params["train_fraction"]))
    normals = normal_blocks(weight_key, _weight_shapes(params))
    weights = normals if params["model"] == "mlp" else transformer.weights_from_normals(
        normals, _template(params))
    encode = one_hot_pairs if params["model"] == "mlp" else token_sequences
    state = {"weights": weights, "weights0": weights,
             "opt_state": classification.optimizer(params["optimizer"], 1.0).init(weights)}
    for split in ("train", "test"):
        inputs = encode(pairs[f"a_{split}"], pairs[f"b_{split}"], params["p"])
        f0 = network_output(weights, inputs, params)
        state[f"x_{split}"], state[f"y_{split}"] = inputs, pairs[f"y_{split}"]
        state[f"f0_{split}"] = f0 if params["centred"] else jnp.zeros_like(f0)
    return state


def _outputs(weights: dict, state: dict, split: str, params: dict) -> jax.Array:
    return network_output(weights, state[f"x_{split}"], params) - state[f"f0_{split}"]


def step(state: dict, params: dict) -> dict:
    """One full-batch optimiser step (step size lr / scale^2, or lr / scale for Adam), then
    weight decay."""
    def loss(weights):
        return classification.classification_loss(_outputs(weights, state, "train", params),
                                                  state["y_train"], params["loss"])
    power = 2 if params["optimizer"] == "sgd" else 1
    transform = classification.optimizer(params["optimizer"],
                                         params["lr"] / params["scale"] ** power)
    weights, opt_state = classification.optimizer_step(loss, state["weights"],
                                                       state["opt_state"], transform,
                                                       params["weight_decay"])
    return {**state, "weights": weights, "opt_state": opt_state}


def metrics(state: dict, params: dict) -> dict:
    """Loss and accuracy on both sets, parameter movement and relative weight norm."""
    weights, weights0 = state["weights"], state["weights0"]
    logged = {"param_movement": relative_parameter_movement(weights, weights0),
              "weight_norm": jnp.sqrt(squared_norm(weights) / squared_norm(weights0))}
    for split in ("train", "test"):
        f = _outputs(weights, state, split, params)
        labels = state[f"y_{split}"]
        logged[f"{split}_loss"] = classification.classification_loss(f, labels, params["loss"])
        logged[f"{split}_accuracy"] = classification.accuracy(f, labels)
    return logged


MODULAR = register(Experiment(
    name="modular",
    doc="modular addition mod p with the notebook's quadratic MLP or a one-layer transformer "
        "(flax nnx), output scale batched: the grokking delay grows with the scale "
        "(Kumar et al. 2023, Sec. 5)",
    parameters=PARAMETERS,
    outputs=OUTPUTS,
    init=init,
    step=step,
    metrics=metrics,
    check=_check,
    check_batched=classification.check_weight_decay,
))
