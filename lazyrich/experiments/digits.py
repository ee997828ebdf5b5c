"""Experiment `digits`: an MLP on real handwritten digits, output scale and init scale batched.

Kumar, Bordelon, Gershman, Pehlevan (2023), Sec. 5 (paper page `grokking.md`, Sec. 5): on MNIST a
large initialisation (or output) scale makes the network fit the training set early, in the
lazy regime, and generalise late, when its features move: grokking without weight decay. Here
the data are scikit-learn's 8x8 digits (`lazyrich.tasks.digits`); `image_experiment` builds the
same experiment on a user's MNIST.

Network (depth hidden layers of width N, no biases, d input pixels, C classes):

    h_1 = W_1 x / sqrt(d),   h_{l+1} = W_{l+1} phi(h_l) / sqrt(N),
    f(x) = alpha W_out phi(h_depth) / N - [f_0(x) when centred],

every weight initially N(0, init_scale^2). Full-batch training on a random train subset of
n_train images (the rest of the pool, or n_test of it, is the test set) with the MSE on one-hot
targets or the cross-entropy. Learning rate: lr N / (alpha init_scale^depth)^2 for SGD, so the
function moves at a rate independent of alpha, init_scale and N at initialisation;
lr / (alpha init_scale^depth) for Adam (whose update per weight is ~ its learning rate). The
weights then move ~ 1 / (alpha init_scale^(depth+1)): larger is lazier. For ReLU the network is
homogeneous, and a run with init scale c equals one with init scale 1 and output scale
alpha c^(depth+1) exactly (the notebook's "weight norm and laziness have the same effect").

Grokking here comes from the random initial function, as in the notebooks (not centred, the
default): its size alpha init_scale^(depth+1) / sqrt(N) grows with the scales, a lazy network
fits the training labels on top of it but keeps it on the test images, and test accuracy rises
only as the features move. Centred, the lazy limit is kernel regression with the initial NTK,
which already generalises well on these digits: train and test accuracy then rise together.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lazyrich.core.sampling import normal_blocks
from lazyrich.experiments import classification
from lazyrich.experiments.base import (
    COMMON_PARAMETERS,
    Experiment,
    Output,
    Parameter,
    register,
    step_parameters,
)
from lazyrich.measures.metrics import relative_parameter_movement
from lazyrich.tasks.digits import ImageDataset, load_digits

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}

PARAMETERS = {
    "output_scale": Parameter(1.0, "float", static=False, minimum=0, exclusive_minimum=True,
                              doc="alpha, multiplies the network's output; larger is lazier"),
    "init_scale": Parameter(1.0, "float", static=False, minimum=0, exclusive_minimum=True,
                            doc="standard deviation of every initial weight; larger is lazier"),
    "lr": Parameter(1.0, "float", static=False, minimum=0, exclusive_minimum=True,
                    doc="learning rate before the normalisation by N, alpha and init_scale"),
    "weight_decay": Parameter(0.0, "float", static=False, minimum=0,
                              doc="fraction by which every weight shrinks each step (< 1)"),
    "width": Parameter(128, "int", static=True, minimum=1, doc="N, units per hidden layer"),
    "depth": Parameter(1, "int", static=True, minimum=1, doc="number of hidden layers"),
    "n_train": Parameter(200, "int", static=True, minimum=1,
                         doc="training images, drawn from the pool for each seed"),
    "n_test": Parameter(1000, "int", static=True, minimum=1,
                        doc="test images, drawn from the rest of the pool"),
    "loss": Parameter("mse", "choice", static=True, choices=classification.LOSSES,
                      doc="MSE on one-hot targets or cross-entropy"),
    "optimizer": Parameter("sgd", "choice", static=True, choices=classification.OPTIMIZERS,
                           doc="full-batch gradient descent or Adam"),
    "activation": Parameter("relu", "choice", static=True, choices=tuple(ACTIVATIONS),
                            doc="hidden-unit nonlinearity phi"),
    "centred": Parameter(False, "bool", static=True,
                         doc="train f - f_0, so every output scale starts from f = 0"),
    "seed": COMMON_PARAMETERS["seed"],
    **step_parameters(2000, 20),
}

OUTPUTS = {
    "train_loss": Output("loss on the n_train training images"),
    "test_loss": Output("loss on the n_test test images"),
    "train_accuracy": Output("fraction of training images whose largest output is the label"),
    "test_accuracy": Output("fraction of test images whose largest output is the label"),
    "param_movement": Output("relative parameter movement |theta - theta_0|^2 / |theta_0|^2"),
}


def network_output(weights: dict, x: jax.Array, p: dict) -> jax.Array:
    """alpha W_out phi(h_depth) / N (not centred) for inputs x (P, d); returns (P, C)."""
    phi = ACTIVATIONS[p["activation"]]
    first, *hidden = weights["hidden"]
    h = x @ first.T / jnp.sqrt(x.shape[-1])
    for layer in hidden:
        h = phi(h) @ layer.T / jnp.sqrt(layer.shape[1])
    readout = weights["readout"]
    return p["output_scale"] * phi(h) @ readout.T / readout.shape[1]


def learning_rate(p: dict):
    """The step size actually used (see the module docstring)."""
    laziness = p["output_scale"] * p["init_scale"] ** p["depth"]
    if p["optimizer"] == "sgd":
        return p["lr"] * p["width"] / laziness**2
    return p["lr"] / laziness


def _shapes(p: dict, n_pixels: int, n_classes: int) -> dict[str, tuple[int, int]]:
    width = p["width"]
    shapes = {"hidden_0": (width, n_pixels)}
    shapes.update({f"hidden_{i}": (width, width) for i in range(1, p["depth"])})
    shapes["readout"] = (n_classes, width)
    return shapes


def image_experiment(dataset: ImageDataset | Callable[[], ImageDataset], name: str,
                     doc: str | None = None) -> Experiment:
    """The digits experiment on another pool of images (e.g. `tasks.digits.load_mnist(path)`).

    Args:
        dataset: an ImageDataset, or a function returning one (called when first needed).
        name: the experiment's name in results.
        doc: its one-paragraph description.

    Returns:
        an Experiment (not registered) to pass to `lazyrich.sweep(experiment, ...)`. The pool is
        a constant of the compiled program: for MNIST's 70000 images compiling takes seconds.
    """
    def pool() -> ImageDataset:
        return dataset() if callable(dataset) else dataset

    def check(p: dict) -> None:
        size = len(pool().labels)
        if p["n_train"] + p["n_test"] > size:
            raise ValueError(f"n_train={p['n_train']} plus n_test={p['n_test']} exceeds the "
                             f"{size} images of the pool; n_train + n_test must be <= {size}")

    def init(key: jax.Array, p: dict) -> dict:
        """Draw the train/test subsets (one permutation) and the weights (one normal draw)."""
        data = pool()
        split_key, weight_key = jax.random.split(key)
        order = jax.random.permutation(split_key, len(data.labels))
        images, labels = jnp.asarray(data.images, jnp.result_type(float)), jnp.asarray(data.labels)
        n_train, n_test = p["n_train"], p["n_test"]
        sets = {"train": order[:n_train], "test": order[n_train:n_train + n_test]}
        normals = normal_blocks(weight_key, _shapes(p, images.shape[1], data.n_classes))
        weights = {"hidden": tuple(p["init_scale"] * normals[f"hidden_{i}"]
                                   for i in range(p["depth"])),
                   "readout": p["init_scale"] * normals["readout"]}
        state = {"weights": weights, "weights0": weights,
                 "opt_state": classification.optimizer(p["optimizer"], 1.0).init(weights)}
        for split, index in sets.items():
            x = images[index]
            state[f"x_{split}"], state[f"y_{split}"] = x, labels[index]
            f0 = network_output(weights, x, p)
            state[f"f0_{split}"] = f0 if p["centred"] else jnp.zeros_like(f0)
        return state

    def outputs(weights, state, split, p):
        return network_output(weights, state[f"x_{split}"], p) - state[f"f0_{split}"]

    def step(state: dict, p: dict) -> dict:
        """One full-batch optimiser step on the training loss, then weight decay."""
        def loss(weights):
            return classification.classification_loss(outputs(weights, state, "train", p),
                                                      state["y_train"], p["loss"])
        transform = classification.optimizer(p["optimizer"], learning_rate(p))
        weights, opt_state = classification.optimizer_step(
            loss, state["weights"], state["opt_state"], transform, p["weight_decay"])
        return {**state, "weights": weights, "opt_state": opt_state}

    def metrics(state: dict, p: dict) -> dict:
        """Loss and accuracy on both sets, and the relative parameter movement."""
        logged = {"param_movement": relative_parameter_movement(state["weights"],
                                                                state["weights0"])}
        for split in ("train", "test"):
            f = outputs(state["weights"], state, split, p)
            labels = state[f"y_{split}"]
            logged[f"{split}_loss"] = classification.classification_loss(f, labels, p["loss"])
            logged[f"{split}_accuracy"] = classification.accuracy(f, labels)
        return logged

    return Experiment(
        name=name,
        doc=doc or f"MLP on the image pool {name!r}, output scale and init scale batched",
        parameters=PARAMETERS, outputs=OUTPUTS, init=init, step=step, metrics=metrics,
        check=check, check_batched=classification.check_weight_decay)


DIGITS = register(image_experiment(
    load_digits, "digits",
    doc="MLP on scikit-learn's 8x8 handwritten digits; output scale alpha and init scale "
        "batched: grokking without weight decay as they grow (Kumar et al. 2023, Sec. 5)"))
