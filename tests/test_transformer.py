"""The flax transformer of `modular`: its attention equals a plain re-implementation, the pure
split (template / weights / apply) equals the module, and its initialisation follows init_std."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lazyrich.core.sampling import normal_blocks
from lazyrich.experiments import modular_transformer as transformer


def _reference_attention(x, query, key, value, output):
    """One causal attention layer in float64 numpy, one head and one query at a time."""
    x, query, key, value, output = (np.asarray(a, np.float64) for a in
                                    (x, query, key, value, output))
    length, d_model = x.shape
    heads, _, d_head = query.shape
    out = np.zeros((length, d_model))
    for h in range(heads):
        q, k, v = x @ query[h], x @ key[h], x @ value[h]
        for t in range(length):
            scores = np.array([q[t] @ k[s] / math.sqrt(d_head) for s in range(t + 1)])
            weights = np.exp(scores - scores.max())
            weights /= weights.sum()
            out[t] += (weights @ v[: t + 1]) @ output[h]
    return out


def _forward(module, x):
    """The module's forward pass, compiled once (eager flax dispatches every op separately)."""
    return nnx.jit(lambda m, inputs: m(inputs))(module, x)


def test_attention_equals_plain_reimplementation():
    """Flax attention on a 3-token, d_model = 4, 2-head input equals the numpy loop to 1e-5."""
    layer = transformer.CausalSelfAttention(4, 2, rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(2), (3, 4))
    expected = _reference_attention(x, layer.query[...], layer.key[...], layer.value[...],
                                     layer.output[...])
    np.testing.assert_allclose(_forward(layer, x), expected, rtol=1e-5, atol=1e-6)
    batch = jnp.stack([x, 2 * x])
    np.testing.assert_allclose(_forward(layer, batch)[1], _reference_attention(
        2 * x, layer.query[...], layer.key[...], layer.value[...], layer.output[...]),
        rtol=1e-5, atol=1e-5)


def test_first_position_attends_only_to_itself():
    """Causality: the first position's output does not change when later tokens change."""
    layer = transformer.CausalSelfAttention(4, 2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (3, 4))
    changed = x.at[1:].set(5.0)
    before, after = _forward(layer, jnp.stack([x, changed]))
    np.testing.assert_allclose(before[0], after[0], rtol=1e-6)
    assert not np.allclose(before[2], after[2])


def _plain_transformer(weights, tokens):
    """The whole forward pass in numpy from the weights dict (independent of the modules)."""
    w = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), weights)
    attention, mlp = w["attention"], w["feed_forward"]
    logits = []
    for sequence in np.asarray(tokens):
        x = w["embed"][sequence] + w["position"]
        x = x + _reference_attention(x, attention["query"], attention["key"], attention["value"],
                                     attention["output"])
        hidden = np.maximum(x @ mlp["w_in"] + mlp["b_in"], 0)
        x = x + hidden @ mlp["w_out"] + mlp["b_out"]
        logits.append(x[-1] @ w["unembed"])
    return np.stack(logits)


def test_pure_apply_equals_module_and_plain_forward():
    """apply(weights) from one normal draw equals the merged module and the numpy forward."""
    p, d_model = 5, 8
    template = transformer.template(p, d_model, 2, 16, "relu", "float32")
    shapes = transformer.weight_shapes(template)
    assert shapes["attention/query"] == (2, 8, 4) and shapes["unembed"] == (8, 5)
    normals = normal_blocks(jax.random.key(3), shapes)
    weights = transformer.weights_from_normals(normals, template)
    weights["feed_forward"]["b_in"] = jnp.linspace(-1, 1, 16)  # exercise the biases too
    tokens = jnp.array([[0, 1, p], [4, 4, p], [2, 3, p]])
    logits = jax.jit(lambda w: transformer.apply(w, tokens, template))(weights)
    assert logits.shape == (3, p)
    np.testing.assert_allclose(logits, _plain_transformer(weights, tokens), rtol=2e-5, atol=2e-5)
    batched = jax.jit(jax.vmap(lambda w: transformer.apply(w, tokens, template)))(
        jax.tree_util.tree_map(lambda a: jnp.stack([a, 2 * a]), weights))
    np.testing.assert_allclose(batched[0], logits, rtol=1e-6)


def test_initial_weights_follow_init_std():
    """Weights are init_std x the normals: embeddings 1/sqrt(d_model), W_out 1/sqrt(d_mlp),
    biases zero."""
    template = transformer.template(7, 16, 4, 64, "gelu", "float32")
    normals = normal_blocks(jax.random.key(0), transformer.weight_shapes(template))
    weights = transformer.weights_from_normals(normals, template)
    np.testing.assert_allclose(weights["embed"], normals["embed"] / 4, rtol=1e-6)
    np.testing.assert_allclose(weights["feed_forward"]["w_out"],
                               normals["feed_forward/w_out"] / 8, rtol=1e-6)
    assert float(jnp.abs(weights["feed_forward"]["b_out"]).max()) == 0.0


@pytest.mark.parametrize("activation", sorted(transformer.ACTIVATIONS))
def test_module_built_with_rngs_runs_for_every_activation(activation):
    model = transformer.Transformer(3, 4, 2, 8, activation, rngs=nnx.Rngs(0))
    assert _forward(model, jnp.array([[0, 2, 3]])).shape == (1, 3)
