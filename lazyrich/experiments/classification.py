"""Losses, accuracy and the optimiser step shared by the classification experiments.

`digits` and `modular` (Kumar et al. 2023, Sec. 5; paper page `grokking.md`, Sec. 5) train a
network's outputs f (P, classes) on integer labels with one of two losses and one of two
optimisers, built with optax inside the traced step so that the learning rate and weight decay
may be batched (traced) parameters, and decoupled weight decay:

- "mse": mean over examples and classes of (f - one_hot(y))^2 (the notebook's nn.MSELoss);
- "cross_entropy": mean over examples of -log softmax(f)_y;
- "sgd": full-batch gradient descent, w <- w - lr grad;
- "adam": Adam (as the AdamW of the MNIST and transformer notebooks);
- weight decay: after the optimiser's update every weight shrinks by the factor
  (1 - weight_decay), so `weight_decay` is a fraction per step whatever the learning-rate
  normalisation of the experiment (0: none, the default of every experiment).

`rise_step` and `grokking_delay` read the grokking delay off a result: the steps between the
train and the test accuracy each reaching a fraction (0.9) of its final value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import xarray as xr

LOSSES = ("mse", "cross_entropy")
OPTIMIZERS = ("sgd", "adam")


def classification_loss(outputs: jax.Array, labels: jax.Array, kind: str) -> jax.Array:
    """Loss of outputs (P, C) against integer labels (P,); `kind` is one of LOSSES."""
    if kind == "mse":
        targets = jax.nn.one_hot(labels, outputs.shape[-1], dtype=outputs.dtype)
        return jnp.mean((outputs - targets) ** 2)
    if kind == "cross_entropy":
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs, labels))
    raise ValueError(f"loss={kind!r} is not allowed; loss must be one of {LOSSES}")


def accuracy(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of examples whose largest output is the label; outputs (P, C), labels (P,)."""
    return jnp.mean(jnp.argmax(outputs, axis=-1) == labels)


def optimizer(kind: str, learning_rate) -> optax.GradientTransformation:
    """The optax optimiser `kind` (one of OPTIMIZERS); learning_rate may be a traced scalar."""
    if kind == "sgd":
        return optax.sgd(learning_rate)
    if kind == "adam":
        return optax.adam(learning_rate)
    raise ValueError(f"optimizer={kind!r} is not allowed; optimizer must be one of {OPTIMIZERS}")


def optimizer_step(loss_fn, weights, opt_state, transform: optax.GradientTransformation,
                   weight_decay):
    """One step of `transform` on loss_fn(weights), then decoupled weight decay.

    Returns:
        (weights, opt_state) after the step: w <- (1 - weight_decay) (w + update).
    """
    gradient = jax.grad(loss_fn)(weights)
    updates, opt_state = transform.update(gradient, opt_state, weights)
    weights = optax.apply_updates(weights, updates)
    return jax.tree_util.tree_map(lambda w: (1 - weight_decay) * w, weights), opt_state


def check_weight_decay(static: dict, values: dict) -> None:
    """`check_batched` of the experiments: refuse weight decays >= 1 (they would flip or zero
    every weight each step)."""
    bad = [v for v in values["weight_decay"] if v >= 1]
    if bad:
        raise ValueError(f"weight_decay={bad[0]!r} is out of range; weight_decay must be >= 0 "
                         f"and < 1 (a fraction per step)")


def rise_step(accuracy: xr.DataArray, fraction: float = 0.9) -> xr.DataArray:
    """First logged step at which an accuracy curve reaches `fraction` of its final value.

    Args:
        accuracy: a curve with a `step` dimension (e.g. `ds.test_accuracy`), any other dims.
        fraction: in (0, 1].

    Returns:
        the step (in optimisation steps), with the curve's other dims; NaN where the final
        value is NaN (a diverged run).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} is out of range; fraction must be in (0, 1]")
    final = accuracy.isel(step=-1)
    first = (accuracy >= fraction * final).argmax("step")
    steps = accuracy.step.isel(step=first).astype(float).drop_vars("step")
    return steps.where(final.notnull())


def grokking_delay(ds: xr.Dataset, fraction: float = 0.9) -> xr.DataArray:
    """Steps between train and test accuracy each reaching `fraction` of its final value:
    rise_step(test_accuracy) - rise_step(train_accuracy); positive when generalisation lags."""
    return rise_step(ds.test_accuracy, fraction) - rise_step(ds.train_accuracy, fraction)
