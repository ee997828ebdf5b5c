"""A one-layer transformer for modular addition, written with flax nnx and split into pure
functions for the engine.

Kumar et al. (2023), Sec. 5 (paper page `grokking.md`, Sec. 5) take Nanda et al. (2023)'s
one-layer transformer on (a, b, =) -> (a + b) mod p (no layer norm, causal attention, ReLU MLP,
logits read at the "=" position) and multiply its logits by an output scale. Every weight is
Gaussian with the standard deviation stored on its `nnx.Param` as `init_std` metadata: embeddings
1/sqrt(d_model), every other matrix 1/sqrt(fan_in), biases 0.

The engine never holds a module. `template` builds the module's graph and abstract state once
per static configuration (`nnx.eval_shape`, nothing drawn); `weight_shapes` and
`weights_from_normals` turn one flat normal draw into the weights, a nested dict of arrays (a
plain pytree that `jax.vmap`, `lax.scan` and optax handle); `apply` merges graph and weights
back into a module inside the traced function and runs it.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

# the hidden nonlinearities of both modular models: the notebook's MLP squares, Nanda's ReLU
ACTIVATIONS = {"quadratic": jnp.square, "relu": jax.nn.relu, "gelu": jax.nn.gelu}
SEQUENCE_LENGTH = 3  # (a, b, =)


def _param(rngs: nnx.Rngs, shape: tuple[int, ...], std: float) -> nnx.Param:
    """A Gaussian weight N(0, std^2) that remembers its std (std 0: zeros, for biases)."""
    value = std * jax.random.normal(rngs.params(), shape, jnp.result_type(float))
    return nnx.Param(value, init_std=std)


class CausalSelfAttention(nnx.Module):
    """Multi-head causal self-attention without biases.

    Weights: query, key, value (heads, d_model, d_head); output (heads, d_head, d_model),
    d_head = d_model / heads. For x (..., T, d_model): per head q = x W_Q, k = x W_K, v = x W_V,
    A = softmax(q k^T / sqrt(d_head) with keys after the query masked), output sum_h A v W_O.
    """

    def __init__(self, d_model: int, heads: int, *, rngs: nnx.Rngs):
        d_head = d_model // heads
        std = 1 / math.sqrt(d_model)
        self.query = _param(rngs, (heads, d_model, d_head), std)
        self.key = _param(rngs, (heads, d_model, d_head), std)
        self.value = _param(rngs, (heads, d_model, d_head), std)
        self.output = _param(rngs, (heads, d_head, d_model), 1 / math.sqrt(d_head * heads))

    def __call__(self, x: jax.Array) -> jax.Array:
        q = jnp.einsum("...td,hde->...hte", x, self.query[...])
        k = jnp.einsum("...td,hde->...hte", x, self.key[...])
        v = jnp.einsum("...td,hde->...hte", x, self.value[...])
        scores = jnp.einsum("...hte,...hse->...hts", q, k) / math.sqrt(q.shape[-1])
        length = x.shape[-2]
        causal = jnp.tril(jnp.ones((length, length), dtype=bool))
        scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)
        pattern = jax.nn.softmax(scores, axis=-1)
        mixed = jnp.einsum("...hts,...hse->...hte", pattern, v)
        return jnp.einsum("...hte,hed->...td", mixed, self.output[...])


class FeedForward(nnx.Module):
    """phi(x W_in + b_in) W_out + b_out, applied at every position."""

    def __init__(self, d_model: int, d_mlp: int, activation: str, *, rngs: nnx.Rngs):
        self.activation = activation
        self.w_in = _param(rngs, (d_model, d_mlp), 1 / math.sqrt(d_model))
        self.b_in = _param(rngs, (d_mlp,), 0.0)
        self.w_out = _param(rngs, (d_mlp, d_model), 1 / math.sqrt(d_mlp))
        self.b_out = _param(rngs, (d_model,), 0.0)

    def __call__(self, x: jax.Array) -> jax.Array:
        hidden = ACTIVATIONS[self.activation](x @ self.w_in[...] + self.b_in[...])
        return hidden @ self.w_out[...] + self.b_out[...]


class Transformer(nnx.Module):
    """Embed (a, b, =) with token and position embeddings, one residual attention block and one
    residual MLP block, and unembed the "=" position into p logits (unscaled)."""

    def __init__(self, p: int, d_model: int, heads: int, d_mlp: int, activation: str, *,
                 rngs: nnx.Rngs):
        self.embed = _param(rngs, (p + 1, d_model), 1 / math.sqrt(d_model))
        self.position = _param(rngs, (SEQUENCE_LENGTH, d_model), 1 / math.sqrt(d_model))
        self.attention = CausalSelfAttention(d_model, heads, rngs=rngs)
        self.feed_forward = FeedForward(d_model, d_mlp, activation, rngs=rngs)
        self.unembed = _param(rngs, (d_model, p), 1 / math.sqrt(d_model))

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """tokens (..., 3) ints -> logits (..., p)."""
        x = self.embed[...][tokens] + self.position[...]
        x = x + self.attention(x)
        x = x + self.feed_forward(x)
        return x[..., -1, :] @ self.unembed[...]


@functools.lru_cache(maxsize=32)
def template(p: int, d_model: int, heads: int, d_mlp: int, activation: str,
             dtype: str) -> tuple[nnx.GraphDef, nnx.State]:
    """(graph, abstract state) of a Transformer; nothing is drawn. `dtype` keys the cache to the
    float type (float32 / float64) that the abstract state records."""
    del dtype
    model = nnx.eval_shape(lambda: Transformer(p, d_model, heads, d_mlp, activation,
                                               rngs=nnx.Rngs(0)))
    return nnx.split(model)


def _name(path: tuple) -> str:
    return "/".join(str(part) for part in path)


def weight_shapes(graph_and_state: tuple) -> dict[str, tuple[int, ...]]:
    """'module/param' -> shape of every weight, for one `normal_blocks` draw."""
    _, abstract = graph_and_state
    return {_name(path): tuple(variable.get_value().shape)
            for path, variable in nnx.to_flat_state(abstract)}


def weights_from_normals(normals: dict[str, jax.Array], graph_and_state: tuple) -> dict:
    """The weights (nested dict, the layout of `nnx.to_pure_dict`): init_std x standard normals."""
    _, abstract = graph_and_state
    weights: dict = {}
    for path, variable in nnx.to_flat_state(abstract):
        node = weights
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = variable.get_metadata()["init_std"] * normals[_name(path)]
    return weights


def apply(weights: dict, tokens: jax.Array, graph_and_state: tuple) -> jax.Array:
    """Unscaled logits (..., p) of the transformer with these weights on tokens (..., 3)."""
    graph, abstract = graph_and_state
    state = jax.tree_util.tree_map(lambda leaf: leaf, abstract)
    nnx.replace_by_pure_dict(state, weights)
    return nnx.merge(graph, state)(tokens)
