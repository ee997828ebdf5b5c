"""The JAX cognitive tasks: neurogym's layout, timing, labels and noise level."""

import jax
import numpy as np
import pytest

from lazyrich.tasks import cognitive

BATCH = 4000


def _batch(task, seed=0):
    inputs, labels = cognitive.trials(jax.random.key(seed), task, BATCH)
    return np.asarray(inputs), np.asarray(labels)


@pytest.mark.parametrize("task", cognitive.TASKS)
def test_shapes_labels_and_fixation(task):
    inputs, labels = _batch(task)
    assert inputs.shape == (8, BATCH, cognitive.N_INPUTS[task]) and labels.shape == (8, BATCH)
    assert np.all(labels[:-1] == 0) and set(np.unique(labels[-1])) == {1, 2}
    assert abs(np.mean(labels[-1] == 1) - 0.5) < 0.03
    decision = inputs[-1]
    assert np.all(decision[:, 0] == 0)
    if task != "CXT":
        assert np.all(inputs[:-1, :, 0] == 1) and np.all(decision == 0)


def test_2af_evidence_points_to_the_label_with_noise_sd_0_1():
    inputs, labels = _batch("2AF")
    evidence = inputs[:-1, :, 1] - inputs[:-1, :, 2]  # (7, B): +coh/100 + noise for label 1
    mean = evidence.mean(0)
    sign = np.where(labels[-1] == 1, 1.0, -1.0)
    coherence = sign * mean * 100  # estimates of coh in {0, 6.4, 12.8, 25.6, 51.2}, sd 5.3
    assert np.mean(coherence) == pytest.approx(np.mean([0, 6.4, 12.8, 25.6, 51.2]), abs=0.5)
    residual = evidence - mean
    # difference of two independent N(0, 0.1^2) channels: sd 0.1 sqrt(2), 6 dof per trial
    assert np.sqrt(np.sum(residual**2) / (BATCH * 6)) == pytest.approx(0.1 * np.sqrt(2),
                                                                       rel=0.02)
    strong = np.abs(coherence) > 40
    assert np.all(np.sign(mean[strong]) == sign[strong])


def test_dms_sample_and_test_steps_decide_match():
    inputs, labels = _batch("DMS")
    sample, test = inputs[0, :, 1:], inputs[6, :, 1:]
    assert np.all(inputs[1:6, :, 1:] == 0)
    match = np.argmax(sample, 1) == np.argmax(test, 1)
    noisy = np.abs(sample[:, 0] - sample[:, 1]) < 0.6  # noise sd 0.1 rarely flips a one-hot
    assert np.mean(noisy) < 0.01
    assert np.mean((labels[-1] == 1) == match) > 0.99
    assert np.std(sample - np.round(sample)) == pytest.approx(0.1, rel=0.05)


def test_cxt_label_follows_the_cued_modality():
    inputs, labels = _batch("CXT")
    context = np.argmax(inputs[-1, :, 5:], 1)
    assert np.all(inputs[-1, :, 5:].sum(1) == 1) and np.all(inputs[2:, :, 1:5] == 0)
    mod1 = (inputs[:2, :, 1] - inputs[:2, :, 2]).mean(0)
    mod2 = (inputs[:2, :, 3] - inputs[:2, :, 4]).mean(0)
    cued = np.where(context == 0, mod1, mod2)
    strong = np.abs(cued) > 0.4  # coherence 50: mean difference 0.5, noise sd 0.1
    assert np.mean(strong) > 0.25
    assert np.all(np.where(cued[strong] > 0, 1, 2) == labels[-1][strong])


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="task='XOR'.*'2AF'"):
        cognitive.trials(jax.random.key(0), "XOR", 4)
