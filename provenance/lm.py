"""A small decoder-only byte-level transformer (flax nnx + optax) for the palimpsest demo.

Kuditipudi et al. (2025) test provenance on Pythia / OLMo; the demo (issue 8) reproduces the
story on a model this file trains on a CPU in minutes. A document is `context` bytes
x_0..x_{L-1}; the model reads [BOS, x_0, ..., x_{L-2}] (BOS = 256) and predicts every byte, so a
document's log-likelihood is log p(x) = sum_t log p(x_t | x_<t) in nats over all L bytes.

Architecture (GPT-2 style, pre-norm): token + learned position embeddings, `layers` blocks of
[LayerNorm -> causal multi-head self-attention -> residual, LayerNorm -> GELU MLP (mlp_ratio x
d_model) -> residual], final LayerNorm, a linear read-out to 256 byte logits.

The engine-style split: `init_params` returns the weights as a plain nested dict (a pytree for
optax, `jax.jit` and `lax.scan`); `apply` rebuilds the nnx module from a cached graph inside the
traced function. Training (`Trainer`) is a jitted `lax.scan` over steps; sampling uses a
key/value cache so each new byte costs one position's forward pass.

Every compiled entry point (training, likelihoods, sampling) is traced with full float32 matrix
products, as lazyrich's sweeps and the DMFT are: JAX's own default on GPUs is TF32 (10-bit
mantissa operands), which would perturb the per-document likelihoods the provenance tests rank.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lazyrich.core.devices import matmul_precision_context

# the products' precision of every compiled entry point (see the module docstring)
MATMUL_PRECISION = "float32"

BYTES = 256
BOS = 256  # the begin-of-document token, an extra input embedding row


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Sizes of the byte transformer; `context` is the document length in bytes."""

    context: int = 128
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    mlp_ratio: int = 4

    def __post_init__(self):
        for name in ("context", "d_model", "layers", "heads", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by heads={self.heads}")


class Block(nnx.Module):
    """One pre-norm transformer block over x (..., T, d_model)."""

    def __init__(self, config: LMConfig, *, rngs: nnx.Rngs):
        d = config.d_model
        self.heads = config.heads
        self.norm_attention = nnx.LayerNorm(d, rngs=rngs)
        self.query_key_value = nnx.Linear(d, 3 * d, use_bias=False, rngs=rngs)
        self.attention_output = nnx.Linear(d, d, use_bias=False, rngs=rngs)
        self.norm_mlp = nnx.LayerNorm(d, rngs=rngs)
        self.mlp_in = nnx.Linear(d, config.mlp_ratio * d, rngs=rngs)
        self.mlp_out = nnx.Linear(config.mlp_ratio * d, d, rngs=rngs)

    def _split_heads(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        q, k, v = jnp.split(self.query_key_value(self.norm_attention(x)), 3, axis=-1)
        shape = (*x.shape[:-1], self.heads, x.shape[-1] // self.heads)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)

    def _finish(self, x: jax.Array, mixed: jax.Array) -> jax.Array:
        x = x + self.attention_output(mixed.reshape(x.shape))
        return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.norm_mlp(x))))

    def __call__(self, x: jax.Array) -> jax.Array:
        q, k, v = self._split_heads(x)  # (..., T, heads, d_head)
        scores = jnp.einsum("...thd,...shd->...hts", q, k) / math.sqrt(q.shape[-1])
        length = x.shape[-2]
        causal = jnp.tril(jnp.ones((length, length), dtype=bool))
        pattern = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
        return self._finish(x, jnp.einsum("...hts,...shd->...thd", pattern, v))

    def decode(self, x: jax.Array, keys: jax.Array, values: jax.Array,
               position: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """x (n, d_model) at `position`; keys, values (n, context, heads, d_head) caches."""
        q, k, v = self._split_heads(x)  # (n, heads, d_head)
        keys = keys.at[:, position].set(k)
        values = values.at[:, position].set(v)
        scores = jnp.einsum("nhd,nshd->nhs", q, keys) / math.sqrt(q.shape[-1])
        visible = jnp.arange(keys.shape[1]) <= position
        pattern = jax.nn.softmax(jnp.where(visible, scores, -jnp.inf), axis=-1)
        return self._finish(x, jnp.einsum("nhs,nshd->nhd", pattern, values)), keys, values


class ByteTransformer(nnx.Module):
    """Input tokens (..., T) in 0..256 (256 = BOS), T <= context -> byte logits (..., T, 256)."""

    def __init__(self, config: LMConfig, *, rngs: nnx.Rngs):
        d = config.d_model
        self.embed = nnx.Embed(BYTES + 1, d, rngs=rngs)
        self.position = nnx.Param(0.02 * jax.random.normal(rngs.params(), (config.context, d)))
        self.blocks = nnx.List([Block(config, rngs=rngs) for _ in range(config.layers)])
        self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.read_out = nnx.Linear(d, BYTES, use_bias=False, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.embed(tokens) + self.position[...][: tokens.shape[-1]]
        for block in self.blocks:
            x = block(x)
        return self.read_out(self.norm(x))

    def decode(self, tokens: jax.Array, position: jax.Array,
               caches: list) -> tuple[jax.Array, list]:
        """tokens (n,) at `position` -> logits (n, 256) and the updated [(keys, values)]."""
        x = self.embed(tokens) + self.position[...][position]
        updated = []
        for block, (keys, values) in zip(self.blocks, caches, strict=True):
            x, keys, values = block.decode(x, keys, values, position)
            updated.append((keys, values))
        return self.read_out(self.norm(x)), updated


@functools.lru_cache(maxsize=16)
def _template(config: LMConfig) -> tuple[nnx.GraphDef, nnx.State]:
    return nnx.split(nnx.eval_shape(lambda: ByteTransformer(config, rngs=nnx.Rngs(0))))


def init_params(config: LMConfig, key: jax.Array) -> dict:
    """Freshly initialised weights (nested dict of float32 arrays) drawn from `key`."""
    return nnx.to_pure_dict(nnx.state(ByteTransformer(config, rngs=nnx.Rngs(params=key))))


def parameter_count(params: dict) -> int:
    """Number of scalar weights."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def _module(config: LMConfig, params: dict) -> ByteTransformer:
    graph, abstract = _template(config)
    state = jax.tree_util.tree_map(lambda leaf: leaf, abstract)
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graph, state)


def model_inputs(documents: jax.Array) -> jax.Array:
    """[BOS, x_0, ..., x_{L-2}] (..., L) int32 for documents (..., L) of bytes."""
    documents = jnp.asarray(documents, jnp.int32)
    bos = jnp.full((*documents.shape[:-1], 1), BOS, jnp.int32)
    return jnp.concatenate([bos, documents[..., :-1]], axis=-1)


def apply(config: LMConfig, params: dict, tokens: jax.Array) -> jax.Array:
    """Byte logits (..., T, 256) for input tokens (..., T)."""
    return _module(config, params)(tokens)


def token_log_likelihoods(config: LMConfig, params: dict, documents: jax.Array) -> jax.Array:
    """log p(x_t | x_<t) in nats, (..., L), for documents (..., L) of bytes (L = context)."""
    logits = apply(config, params, model_inputs(documents))
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    targets = jnp.asarray(documents, jnp.int32)[..., None]
    return jnp.take_along_axis(log_probs, targets, axis=-1)[..., 0]


def _check_documents(config: LMConfig, documents) -> np.ndarray:
    documents = np.asarray(documents)
    if documents.ndim != 2 or documents.shape[1] != config.context or documents.shape[0] < 1:
        raise ValueError(f"documents must have shape (n >= 1, context={config.context}), got "
                         f"{documents.shape}")
    if not np.issubdtype(documents.dtype, np.integer) or documents.size and (
            documents.min() < 0 or documents.max() >= BYTES):
        raise ValueError(f"documents must be integer bytes in [0, {BYTES}), got dtype "
                         f"{documents.dtype}")
    return documents.astype(np.uint8)


@functools.partial(jax.jit, static_argnums=0)
def _batched_log_likelihood(config: LMConfig, params: dict, blocks: jax.Array) -> jax.Array:
    return jax.lax.map(lambda block: token_log_likelihoods(config, params, block).sum(-1),
                       blocks)


def document_log_likelihood(config: LMConfig, params: dict, documents,
                            batch_size: int = 256) -> np.ndarray:
    """log p(document) in nats, shape (n,) float64, for documents (n, context) of bytes; one
    jitted `lax.map` over blocks of `batch_size` documents (the last block zero-padded)."""
    documents = _check_documents(config, documents)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    n = documents.shape[0]
    size = min(batch_size, n)
    blocks = -(-n // size)
    padded = np.zeros((blocks * size, config.context), np.uint8)
    padded[:n] = documents
    with matmul_precision_context(MATMUL_PRECISION):
        out = _batched_log_likelihood(config, params, padded.reshape(blocks, size, -1))
    return np.asarray(out, np.float64).reshape(-1)[:n]


def make_optimizer(learning_rate: float = 3e-3, warmup_steps: int = 10,
                   clip_norm: float = 1.0) -> optax.GradientTransformation:
    """Adam with linear warmup to a constant learning rate, after global-norm clipping."""
    if not learning_rate > 0:
        raise ValueError(f"learning_rate={learning_rate!r} must be positive")
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps={warmup_steps!r} must be a non-negative integer")
    schedule = optax.warmup_constant_schedule(0.0, learning_rate, max(warmup_steps, 1))
    return optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(schedule))


class Trainer:
    """Jitted next-byte training: `run` scans optimiser steps over batches (steps, B, L)."""

    def __init__(self, config: LMConfig, optimizer: optax.GradientTransformation):
        self.config = config
        self.optimizer = optimizer
        self._scan = jax.jit(self._scan_steps)

    def loss(self, params: dict, batch: jax.Array) -> jax.Array:
        """Mean negative log-likelihood per byte (nats) of a batch (B, L)."""
        return -jnp.mean(token_log_likelihoods(self.config, params, batch))

    def _scan_steps(self, params, opt_state, batches):
        def step(carry, batch):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(self.loss)(params, batch)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), batches)
        return params, opt_state, losses

    def run(self, params: dict, opt_state, batches, chunk_steps: int = 16):
        """Train on batches (steps, B, L) in order; returns (params, opt_state, losses (steps,)).

        The scan runs `chunk_steps` steps per compiled call, so runs of different lengths share
        one compilation (a shorter last chunk compiles once more).
        """
        batches = np.asarray(batches)
        if not isinstance(chunk_steps, int) or chunk_steps < 1:
            raise ValueError(f"chunk_steps={chunk_steps!r} must be a positive integer")
        if batches.ndim != 3 or batches.shape[2] != self.config.context:
            raise ValueError(f"batches must have shape (steps, batch, {self.config.context}), "
                             f"got {batches.shape}")
        losses = []
        for start in range(0, batches.shape[0], chunk_steps):
            with matmul_precision_context(MATMUL_PRECISION):
                params, opt_state, chunk_losses = self._scan(
                    params, opt_state, jnp.asarray(batches[start:start + chunk_steps], jnp.uint8))
            losses.append(np.asarray(chunk_losses))
        return params, opt_state, np.concatenate(losses) if losses else np.zeros(0)


def batches_in_order(documents, order, batch_size: int) -> np.ndarray:
    """documents[order] grouped into consecutive batches (steps, batch_size, L); a last
    partial batch is dropped. Document order[i] is seen at step i // batch_size."""
    documents, order = np.asarray(documents), np.asarray(order)
    if not isinstance(batch_size, int) or batch_size < 1 or batch_size > order.size:
        raise ValueError(f"batch_size={batch_size!r} must be an integer in [1, {order.size}]")
    steps = order.size // batch_size
    return documents[order[:steps * batch_size]].reshape(steps, batch_size, -1)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _sample(config, params, key, n_sequences, length, temperature):
    model = _module(config, params)
    d_head = config.d_model // config.heads
    cache = jnp.zeros((n_sequences, config.context, config.heads, d_head))
    caches = [(cache, cache) for _ in range(config.layers)]
    tokens = jnp.full((n_sequences,), BOS, jnp.int32)

    def step(carry, inputs):
        tokens, caches = carry
        position, step_key = inputs
        logits, caches = model.decode(tokens, position, caches)
        drawn = jax.random.categorical(step_key, logits / temperature).astype(jnp.int32)
        return (drawn, caches), drawn

    keys = jax.random.split(key, length)
    _, drawn = jax.lax.scan(step, (tokens, caches), (jnp.arange(length), keys))
    return drawn.T


def sample(config: LMConfig, params: dict, key: jax.Array, n_sequences: int,
           length: int | None = None, temperature: float = 1.0) -> np.ndarray:
    """Text sampled from the model: (n_sequences, length) uint8 bytes, each sequence started
    from BOS and drawn byte by byte (a key/value cache; one `lax.scan` over positions)."""
    length = config.context if length is None else length
    if not isinstance(n_sequences, int) or n_sequences < 1:
        raise ValueError(f"n_sequences={n_sequences!r} must be a positive integer")
    if not isinstance(length, int) or not 1 <= length <= config.context:
        raise ValueError(f"length={length!r} must be an integer in [1, {config.context}]")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} must be positive")
    with matmul_precision_context(MATMUL_PRECISION):
        drawn = _sample(config, params, key, n_sequences, length, temperature)
    return np.asarray(drawn, np.uint8)
