"""Cognitive tasks 2AF, DMS and CXT generated natively in JAX, with neurogym's layout and timing.

Liu et al. (ICLR 2024), Sec. 4 and App. C (the authors' script builds them with neurogym:
dt = 100 ms, 8 steps a trial); paper page `connectivity.md` Sec. 5. Inputs follow neurogym's
channel order (fixation first, then the stimulus channels), labels its action convention
(0 = fixate, which is the target on every step but the last; 1 or 2 = the choice, on the last
step). Input noise is N(0, sigma^2 / dt) with neurogym's sigma = 1, i.e. sd 0.1.

- 2AF (`PerceptualDecisionMaking`, stimulus 700 ms, decision 100 ms): channels [fixation,
  stim1, stim2]; for 7 steps stim_j = 0.5 + cos(theta_j - theta_choice) coh / 200 + noise,
  theta = (0, pi), coh in {0, 6.4, 12.8, 25.6, 51.2}; fixation 1 until the decision step, where
  every input is 0.
- DMS (`DelayMatchSample`, sample 100, delay 500, test 100, decision 100 ms): channels
  [fixation, stim1, stim2]; the sample (step 0) and test (step 6) are cos(theta_j - theta) / 2
  + 1/2 + noise, the test equal to the sample (label 1, match) or opposite (label 2).
- CXT (`ContextDecisionMaking`, stimulus 200, delay 500, decision 100 ms): channels [fixation,
  stim1_mod1, stim2_mod1, stim1_mod2, stim2_mod2, context1, context2]; for 2 steps each
  modality shows (1 +- signed coh / 100) / 2, coh in {5, 15, 50}, with noise on every channel;
  the context channel is 1 throughout and says which modality gives the label.

All of a batch's randomness comes from one `jax.random.normal` call (uniform choices through the
normal CDF), see `lazyrich.core.sampling`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

TASKS = ("2AF", "DMS", "CXT")
N_STEPS = 8
N_INPUTS = {"2AF": 3, "DMS": 3, "CXT": 7}
N_OUTPUTS = 3
NOISE_SD = 0.1
COHERENCES_2AF = (0.0, 6.4, 12.8, 25.6, 51.2)
COHERENCES_CXT = (5.0, 15.0, 50.0)
N_CHOICES = {"2AF": 2, "DMS": 2, "CXT": 5}  # uniform draws per trial


def _pick(uniform: jax.Array, options) -> jax.Array:
    """Element of `options` chosen uniformly by u in (0, 1)."""
    options = jnp.asarray(options, uniform.dtype)
    index = jnp.minimum((uniform * len(options)).astype(jnp.int32), len(options) - 1)
    return options[index]


def _coin(uniform: jax.Array) -> jax.Array:
    """0 or 1 with probability 1/2 each."""
    return (uniform >= 0.5).astype(jnp.int32)


def _labels(choice: jax.Array) -> jax.Array:
    """(T, B): 0 (fixate) on every step, `choice` (1 or 2) on the last."""
    fixate = jnp.zeros((N_STEPS - 1, choice.shape[0]), jnp.int32)
    return jnp.concatenate([fixate, choice[None].astype(jnp.int32)])


def _fixation(batch_size: int, dtype) -> jax.Array:
    """(T, B) fixation channel: 1 until the decision step."""
    return jnp.broadcast_to((jnp.arange(N_STEPS) < N_STEPS - 1).astype(dtype)[:, None],
                            (N_STEPS, batch_size))


def perceptual_decision(uniform: jax.Array, noise: jax.Array):
    """2AF from uniforms (B, 2) and noise (T, B, 3): inputs (T, B, 3), labels (T, B)."""
    choice = _coin(uniform[:, 0])
    coherence = _pick(uniform[:, 1], COHERENCES_2AF)
    sign = jnp.where(choice == 0, 1.0, -1.0)
    stimulus = jnp.stack([0.5 + sign * coherence / 200, 0.5 - sign * coherence / 200], -1)
    on = (jnp.arange(N_STEPS) < N_STEPS - 1).astype(noise.dtype)[:, None, None]
    stimuli = on * (stimulus[None] + noise[..., 1:])
    inputs = jnp.concatenate([_fixation(choice.shape[0], noise.dtype)[..., None], stimuli], -1)
    return inputs, _labels(choice + 1)


def delayed_match_to_sample(uniform: jax.Array, noise: jax.Array):
    """DMS from uniforms (B, 2) and noise (T, B, 3): sample at step 0, test at step 6."""
    sample = _coin(uniform[:, 0])
    match = _coin(uniform[:, 1])  # 1: test equals sample
    test = jnp.where(match == 1, sample, 1 - sample)
    sample_input = jax.nn.one_hot(sample, 2, dtype=noise.dtype)
    test_input = jax.nn.one_hot(test, 2, dtype=noise.dtype)
    step = jnp.arange(N_STEPS)[:, None, None]
    stimuli = (jnp.where(step == 0, sample_input[None], 0.0)
               + jnp.where(step == N_STEPS - 2, test_input[None], 0.0))
    shown = (step == 0) | (step == N_STEPS - 2)
    stimuli = stimuli + jnp.where(shown, noise[..., 1:], 0.0)
    inputs = jnp.concatenate([_fixation(sample.shape[0], noise.dtype)[..., None], stimuli], -1)
    return inputs, _labels(jnp.where(match == 1, 1, 2))


def context_decision(uniform: jax.Array, noise: jax.Array):
    """CXT from uniforms (B, 5) and noise (T, B, 7): stimulus steps 0-1, decision step 7."""
    choice = _coin(uniform[:, 0]) + 1
    other = _coin(uniform[:, 1]) + 1
    context = _coin(uniform[:, 2])
    coherence = jnp.stack([_pick(uniform[:, 3], COHERENCES_CXT),
                           _pick(uniform[:, 4], COHERENCES_CXT)], -1)
    direction = jnp.stack([jnp.where(context == 0, choice, other),
                           jnp.where(context == 0, other, choice)], -1)
    signed = jnp.where(direction == 1, coherence, -coherence) / 100
    modalities = jnp.stack([(1 + signed[:, 0]) / 2, (1 - signed[:, 0]) / 2,
                            (1 + signed[:, 1]) / 2, (1 - signed[:, 1]) / 2], -1)
    step = jnp.arange(N_STEPS)[:, None, None]
    fixation = _fixation(choice.shape[0], noise.dtype)[..., None]
    stimulus = jnp.where(step < 2, modalities[None] + noise[..., 1:5], 0.0)
    fixation = fixation + jnp.where(step < 2, noise[..., :1], 0.0)
    cue = jax.nn.one_hot(context, 2, dtype=noise.dtype)[None] + jnp.where(step < 2,
                                                                          noise[..., 5:], 0.0)
    inputs = jnp.concatenate([fixation, stimulus, jnp.broadcast_to(cue, stimulus.shape[:2]
                                                                   + (2,))], -1)
    return inputs, _labels(choice)


GENERATORS = {"2AF": perceptual_decision, "DMS": delayed_match_to_sample,
              "CXT": context_decision}


def trials(key: jax.Array, task: str, batch_size: int, dtype=None):
    """A batch of fresh trials of `task`.

    Args:
        key: PRNG key (one `jax.random.normal` call is made with it).
        task: "2AF", "DMS" or "CXT".
        batch_size: number of trials B.

    Returns:
        inputs (T=8, B, n_inputs) and integer labels (T, B) in {0, 1, 2}.

    Raises:
        ValueError: unknown task.
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r} is unknown; task must be one of {TASKS}")
    dtype = dtype or jnp.result_type(float)
    n_noise = N_STEPS * batch_size * N_INPUTS[task]
    normal = jax.random.normal(key, (n_noise + batch_size * N_CHOICES[task],), dtype)
    noise = NOISE_SD * normal[:n_noise].reshape(N_STEPS, batch_size, N_INPUTS[task])
    uniform = ndtr(normal[n_noise:]).reshape(batch_size, N_CHOICES[task])
    return GENERATORS[task](uniform, noise)
