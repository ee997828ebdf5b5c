"""The palimpsest demo end to end: the byte transformer, the stdlib corpus and the demo's tests.

Every model here uses the miniature configuration's architecture, so the compiled training scan
is shared by all tests in one process.
"""

import dataclasses
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from scipy import special

from provenance import corpus, demo, lm

MINI = demo.SIZES["mini"]


@pytest.fixture(scope="module")
def documents():
    """Alice's and Bob's documents of the miniature configuration."""
    all_documents = corpus.stdlib_documents(MINI.model.context)
    return corpus.split_documents(all_documents, (MINI.n_documents, MINI.n_other))


def test_corpus_documents_are_file_chunks(tmp_path):
    """Documents are consecutive byte chunks of each file in sorted order; tails are dropped and
    test directories skipped."""
    (tmp_path / "b.py").write_bytes(b"0123456789")
    (tmp_path / "a.py").write_bytes(b"abcdefg")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "c.py").write_bytes(b"zzzzzzzz")
    (tmp_path / "notes.txt").write_bytes(b"yyyyyyyy")
    documents = corpus.stdlib_documents(3, root=tmp_path)
    assert [bytes(row) for row in documents] == [b"abc", b"def", b"012", b"345", b"678"]
    assert corpus.stdlib_documents(3, max_documents=2, root=tmp_path).shape == (2, 3)
    with pytest.raises(ValueError, match="document_bytes"):
        corpus.stdlib_documents(1, root=tmp_path)


def test_split_documents_is_disjoint_and_deterministic():
    """Subsets are disjoint, of the asked sizes, and fixed by the corpus seed."""
    rows = np.arange(40).reshape(20, 2)
    first, second = corpus.split_documents(rows, (5, 7), seed=3)
    assert first.shape == (5, 2) and second.shape == (7, 2)
    assert not set(first[:, 0]) & set(second[:, 0])
    np.testing.assert_array_equal(first, corpus.split_documents(rows, (5, 7), seed=3)[0])
    with pytest.raises(ValueError, match="sizes"):
        corpus.split_documents(rows, (15, 7))


def test_stdlib_corpus_is_real_text():
    """The stdlib gives tens of thousands of documents of Python source."""
    documents = corpus.stdlib_documents(128)
    assert documents.shape[0] > 20_000
    assert b"def " in documents[:200].tobytes()


def test_loss_falls(documents):
    """Training the miniature model on Alice's documents for 64 steps lowers the loss per byte
    by more than 1.5 nats, to below the uniform model's log(256) = 5.55 nats minus 1."""
    alice, _ = documents
    trainer = demo._trainer(MINI.model, MINI.learning_rate)
    params = lm.init_params(MINI.model, jax.random.key(0))
    batches = lm.batches_in_order(alice, np.arange(MINI.n_documents), MINI.batch_size)
    _, _, losses = trainer.run(params, trainer.optimizer.init(params), batches[:64])
    assert losses[-8:].mean() < losses[0] - 1.5
    assert losses[-8:].mean() < np.log(256) - 1


def test_document_log_likelihood_matches_token_loop(documents):
    """log p(document) from the batched, jitted function equals a float64 loop over tokens of
    log_softmax(forward-pass logits)[next byte] (tolerance 1e-4 nats per document, float32
    sums); the logits at t do not change when later bytes change (causality)."""
    alice, _ = documents
    config = MINI.model
    params = lm.init_params(config, jax.random.key(1))
    batched = lm.document_log_likelihood(config, params, alice[:5], batch_size=2)
    inputs = np.asarray(lm.model_inputs(alice[:5]))
    logits = np.asarray(lm.apply(config, params, inputs), np.float64)
    for document, document_logits, value in zip(alice[:5], logits, batched, strict=True):
        total = 0.0
        for t in range(config.context):
            total += document_logits[t, document[t]] - special.logsumexp(document_logits[t])
        assert abs(value - total) < 1e-4
    changed = inputs.copy()
    changed[:, 20:] = (changed[:, 20:] + 1) % 256
    changed_logits = np.asarray(lm.apply(config, params, changed), np.float64)
    np.testing.assert_allclose(changed_logits[:, :20], logits[:, :20], atol=1e-5)
    assert np.abs(changed_logits[:, 20:] - logits[:, 20:]).max() > 1e-3


def test_cached_decoding_matches_full_forward(documents):
    """The key/value-cache decoder used for sampling gives the full forward pass's logits at
    each of the first 12 positions (to 1e-4; the cache logic does not depend on the position)."""
    alice, _ = documents
    config = MINI.model
    params = lm.init_params(config, jax.random.key(2))
    inputs = lm.model_inputs(alice[:3])
    full = np.asarray(lm.apply(config, params, inputs))
    model = lm._module(config, params)
    d_head = config.d_model // config.heads
    cache = jax.numpy.zeros((3, config.context, config.heads, d_head))
    caches = [(cache, cache)] * config.layers
    for position in range(12):
        logits, caches = model.decode(inputs[:, position], position, caches)
        np.testing.assert_allclose(np.asarray(logits), full[:, position], atol=1e-4)
    text = lm.sample(config, params, jax.random.key(3), 4, length=10)
    assert text.shape == (4, 10) and text.dtype == np.uint8


def _recording(real, programs: list):
    """`real` (a jitted function) that first appends the text of its lowered program."""
    def call(*args):
        programs.append(real.lower(*args).as_text())
        return real(*args)
    return call


def test_products_are_full_float32_whatever_jaxs_default(documents, monkeypatch):
    """Training, likelihoods and sampling are traced with every matrix product at HIGHEST
    precision even where JAX's default is TF32 (its default on GPUs; set here around the calls),
    which, traced as is, the likelihood program would use."""
    alice, _ = documents
    config = MINI.model
    params = lm.init_params(config, jax.random.key(4))
    programs: list = []
    likelihood = lm._batched_log_likelihood
    monkeypatch.setattr(lm, "_batched_log_likelihood", _recording(likelihood, programs))
    monkeypatch.setattr(lm, "_sample", _recording(lm._sample, programs))
    trainer = demo._trainer(config, MINI.learning_rate)
    monkeypatch.setattr(trainer, "_scan", _recording(trainer._scan, programs))
    batches = lm.batches_in_order(alice, np.arange(MINI.n_documents), MINI.batch_size)
    with jax.default_matmul_precision("tensorfloat32"):
        trainer.run(params, trainer.optimizer.init(params), batches[:16])
        lm.document_log_likelihood(config, params, alice[:4], batch_size=2)
        lm.sample(config, params, jax.random.key(5), 2, length=4)
        unguarded = likelihood.lower(config, params, np.zeros((1, 2, config.context),
                                                              np.uint8)).as_text()
    assert len(programs) == 3
    for program in programs:
        dots = [line for line in program.splitlines() if "dot_general" in line]
        assert dots and all("precision = [HIGHEST, HIGHEST]" in line for line in dots), \
            [line for line in dots if "HIGHEST" not in line][:2]
    assert "precision = [HIGHEST, HIGHEST]" not in unguarded


def test_bad_inputs_are_rejected():
    """Sizes, documents and sampling lengths outside their ranges raise ValueError."""
    with pytest.raises(ValueError, match="divisible"):
        lm.LMConfig(d_model=10, heads=3)
    with pytest.raises(ValueError, match="layers"):
        lm.LMConfig(layers=0)
    params = lm.init_params(MINI.model, jax.random.key(0))
    with pytest.raises(ValueError, match="context"):
        lm.document_log_likelihood(MINI.model, params, np.zeros((2, 5), np.uint8))
    with pytest.raises(ValueError, match="length"):
        lm.sample(MINI.model, params, jax.random.key(0), 2, length=MINI.model.context + 1)
    with pytest.raises(ValueError, match="batch_size"):
        dataclasses.replace(MINI, batch_size=7)
    with pytest.raises(ValueError, match="observed_finetune_steps"):
        dataclasses.replace(MINI, observed_finetune_steps=5)


def test_miniature_query_test_separates_derivatives_from_independent(documents):
    """Across 3 seeds of the miniature demo: the independent model's query p-value is never
    below 0.01 (a null p-value is uniform, so three draws below 0.01 have chance 3%), while
    the 8-step fine-tune's p-value is below the independent one's in every seed and below 1e-3
    in at least two (measured: ~1e-6 .. 1e-8)."""
    alice, other = documents
    finetune, independent = [], []
    for seed in range(3):
        config = dataclasses.replace(MINI, seed=seed)
        query = demo.query_tests(config, demo.train_models(config, alice, other), alice)
        finetune.append(float(query.query_log10_p.sel(model="finetune_8")))
        independent.append(float(query.query_log10_p.sel(model="independent")))
    assert min(independent) > -2
    assert all(f < i for f, i in zip(finetune, independent, strict=True))
    assert sum(f < -3 for f in finetune) >= 2


def test_demo_cli_end_to_end(tmp_path, capsys):
    """`main` on the miniature configuration writes the netCDF results, a JSON summary and
    both figures, with a p-value for every derivative and every sampled-token count; it reports
    every stage on stderr as it starts and ends (with its time) and ends by listing its files."""
    assert demo.main(["--size", "mini", "--out-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    stages = ["loading the stdlib corpus", "training Alice", "reshuffled copies",
              "reference and independent", "fine-tuning Bob", "query test",
              "observational tests", "writing results and figures"]
    lines = err.splitlines()
    for stage in stages:
        started = [i for i, line in enumerate(lines) if stage in line and line.endswith("...")]
        ended = [i for i, line in enumerate(lines) if stage in line and "done in" in line]
        assert len(started) == len(ended) == 1 and started[0] < ended[0], (stage, err)
    assert out.splitlines()[-1] == "wrote " + ", ".join(
        str(tmp_path / name) for name in demo.OUTPUT_FILES)
    for name in ("palimpsest.nc", "summary.json", "query.png", "observational.png"):
        assert (tmp_path / name).stat().st_size > 0
    report = json.loads((tmp_path / "summary.json").read_text())
    assert set(report["query_log10_p"]) == {"alice", "finetune_8", "finetune_32", "independent"}
    assert report["query_log10_p"]["alice"] < -3
    import xarray as xr

    with xr.open_dataset(tmp_path / "palimpsest.nc", engine="h5netcdf") as dataset:
        assert np.all(np.isfinite(dataset.span_log10_p)) and dataset.tokens.size > 3


def test_demo_cli_rejects_bad_sizes(capsys, tmp_path):
    """A document count that is not a multiple of the batch size exits with status 2 and a
    one-line message naming it, before anything is trained or written."""
    out_dir = tmp_path / "out"
    assert demo.main(["--size", "mini", "--documents", "1001", "--out-dir", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert "n_documents=1001" in err and len(err.strip().splitlines()) == 1
    assert not out_dir.exists()


def test_python_m_provenance_demo_dispatches():
    """`python -m provenance demo --help` reaches the demo's own argument parser."""
    completed = subprocess.run([sys.executable, "-m", "provenance", "demo", "--help"],
                               capture_output=True, text=True, timeout=120, check=True)
    assert "--size" in completed.stdout and "mini" in completed.stdout


@pytest.mark.slow
def test_python_m_provenance_demo_runs_mini(tmp_path):
    """The miniature demo run as `python -m provenance demo` writes its summary."""
    subprocess.run([sys.executable, "-m", "provenance", "demo", "--size", "mini", "--out-dir",
                    str(tmp_path)], capture_output=True, timeout=600, check=True)
    assert json.loads((tmp_path / "summary.json").read_text())["query_log10_p"]["alice"] < -3


def test_first_below_finds_where_p_stays_small():
    """The token count reported is where log10 p drops below -3 for good."""
    tokens = np.array([10, 20, 40, 80])
    assert demo.first_below(np.array([-1, -4, -2, -5]), tokens) == 80
    assert demo.first_below(np.array([-1, -4, -4, -5]), tokens) == 20
    assert demo.first_below(np.array([-4, -4, -4, -5]), tokens) == 10
    assert demo.first_below(np.array([-4, -4, -4, -1]), tokens) is None


@pytest.mark.slow
def test_miniature_null_p_values_are_uniform(documents):
    """Over 20 seeds the independent model's query p-values pass a Kolmogorov-Smirnov test of
    uniformity at the 1% level (the null is exact: its order is independent of Alice's)."""
    from scipy import stats

    alice, other = documents
    pvalues = []
    for seed in range(100, 120):
        config = dataclasses.replace(MINI, seed=seed, finetune_steps=(8,), n_copies=2)
        query = demo.query_tests(config, demo.train_models(config, alice, other), alice)
        pvalues.append(10.0 ** float(query.query_log10_p.sel(model="independent")))
    assert stats.kstest(pvalues, "uniform").pvalue > 0.01
