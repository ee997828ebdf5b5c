"""provenance.score and `python -m provenance score`: log-likelihoods of documents under a causal
LM, batched, resumable into a store (issue 16, item 2).

Checked against lm.py's own per-document log-likelihood (the demo's byte transformer) and
against a brute-force loop over an independent numpy bigram model on ragged documents.
"""

import json
import os

import jax
import numpy as np
import pytest

from lazyrich.core.checks import MemoryEstimateError
from provenance import lm
from provenance.__main__ import main
from provenance.score import ScoreStoreWarning, load_lm, save_lm, score

VOCABULARY = 11


@pytest.fixture(scope="module")
def tiny_lm():
    """The demo's byte transformer at a tiny size, random weights drawn in numpy into its
    parameter tree (lm.init_params builds the module eagerly: seconds on a busy CPU)."""
    from flax import nnx

    config = lm.LMConfig(context=24, d_model=16, layers=1, heads=2, mlp_ratio=2)
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map(
        lambda leaf: (0.3 * rng.normal(size=leaf.shape)).astype(np.float32),
        nnx.to_pure_dict(lm._template(config)[1]))
    return config, params


def test_score_equals_lm_document_log_likelihood(tiny_lm):
    """score((config, params), docs) is lm.document_log_likelihood to float32 rounding
    (relative 1e-6: both sum 24 float32 log-probabilities), and a token window sums the
    per-token values it returns."""
    config, params = tiny_lm
    documents = np.random.default_rng(0).integers(0, 256, size=(37, 24)).astype(np.uint8)
    scores = score((config, params), documents, batch_size=8, per_token=True, progress=False)
    expected = lm.document_log_likelihood(config, params, documents)
    np.testing.assert_allclose(scores.loglik, expected, rtol=1e-6)
    assert scores.n_tokens.tolist() == [24] * 37
    per_token = np.stack(scores.token_loglik)
    assert per_token.shape == (37, 24) and np.all(per_token < 0)
    again = score((config, params), documents, batch_size=8, tokens="4:", progress=False)
    np.testing.assert_allclose(again.loglik, per_token[:, 4:].sum(1, dtype=np.float64),
                               rtol=1e-6)
    assert again.n_tokens.tolist() == [20] * 37


def bigram_model(seed=0):
    """A causal numpy bigram LM: log p(x_t | x_{t-1}) from a fixed table, row V for t = 0."""
    logits = np.random.default_rng(seed).normal(size=(VOCABULARY + 1, VOCABULARY))
    table = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def scorer(tokens):
        previous = np.concatenate([np.full((len(tokens), 1), VOCABULARY), tokens[:, :-1]], 1)
        return table[previous, tokens]

    return scorer, table


def brute_force(table, documents, window):
    out = []
    for document in documents:
        values = [table[VOCABULARY if t == 0 else document[t - 1], document[t]]
                  for t in range(len(document))]
        out.append(sum(values[window]))
    return np.array(out)


@pytest.mark.parametrize(("tokens", "window"), [(None, slice(None)), ("2:", slice(2, None)),
                                                (slice(None, -1), slice(None, -1))])
def test_ragged_documents_under_a_callable_match_a_loop(tokens, window):
    """Ragged documents padded into batches: the sums over the window equal a Python loop
    over each unpadded document, whatever the padding token."""
    rng = np.random.default_rng(1)
    documents = [rng.integers(0, VOCABULARY, size=rng.integers(3, 12)) for _ in range(23)]
    scorer, table = bigram_model()
    expected = brute_force(table, documents, window)
    for pad_token in (0, 7):
        scores = score(scorer, documents, batch_size=5, tokens=tokens, pad_token=pad_token,
                       per_token=True, progress=False)
        np.testing.assert_allclose(scores.loglik, expected, rtol=1e-6)
        assert scores.n_tokens.tolist() == [len(range(len(d))[window]) for d in documents]
        assert [len(row) for row in scores.token_loglik] == [len(d) for d in documents]


def test_store_resumes_after_a_crash_and_recomputes_damaged_batches(tmp_path):
    """A run killed after two batches leaves two batch files; the rerun computes only the
    missing batches; a truncated batch is named in a warning and recomputed; a store made for
    other arguments is refused naming the key."""
    rng = np.random.default_rng(2)
    documents = [rng.integers(0, VOCABULARY, size=rng.integers(3, 12)) for _ in range(20)]
    scorer, _ = bigram_model()
    fresh = score(scorer, documents, batch_size=4, progress=False)
    calls = []

    def crashing(tokens):
        if len(calls) == 2:
            raise RuntimeError("killed")
        calls.append(1)
        return scorer(tokens)

    store = tmp_path / "scores"
    with pytest.raises(RuntimeError, match="killed"):
        score(crashing, documents, batch_size=4, store=store, progress=False, name="bigram")
    assert sorted(p.name for p in store.iterdir()) == ["batch_000000.npz", "batch_000001.npz",
                                                       "meta.json"]
    counted = []
    resumed = score(lambda t: counted.append(1) or scorer(t), documents, batch_size=4,
                    store=store, progress=False, name="bigram")
    assert len(counted) == 3
    np.testing.assert_array_equal(resumed.loglik, fresh.loglik)
    damaged = store / "batch_000003.npz"
    damaged.write_bytes(damaged.read_bytes()[:40])
    with pytest.warns(ScoreStoreWarning, match="batch_000003.npz"):
        again = score(scorer, documents, batch_size=4, store=store, progress=False,
                      name="bigram")
    np.testing.assert_array_equal(again.loglik, fresh.loglik)
    for options, key in [({"batch_size": 5, "name": "bigram"}, "batch_size=4"),
                         ({"batch_size": 4, "name": "other"}, "model='bigram'"),
                         ({"batch_size": 4, "name": "bigram", "tokens": "1:"}, "tokens=")]:
        with pytest.raises(ValueError, match=key):
            score(scorer, documents, store=store, progress=False, **options)
    with pytest.raises(ValueError, match="documents_sha256"):
        score(scorer, documents[:-1], batch_size=4, store=store, progress=False, name="bigram")


def test_memory_is_estimated_before_scoring(tiny_lm, monkeypatch):
    config, params = tiny_lm
    monkeypatch.setenv("LAZYRICH_MEMORY_BYTES", "100000")
    with pytest.raises(MemoryEstimateError, match=r"batch_size= \(now 64\)"):
        score((config, params), np.zeros((500, 24), np.uint8), progress=False)


@pytest.mark.parametrize(("documents", "options", "message"), [
    ([], {}, "documents is empty"),
    (np.zeros(5, int), {}, r"shape \(5,\)"),
    ([np.array([1.5, 2.0])], {}, "documents\\[0\\] has dtype float64"),
    ([np.array([1, -2])], {}, "token -2"),
    ([np.array([1, 2])], {"batch_size": 0}, "batch_size=0"),
    ([np.array([1, 2]), np.array([3])], {"tokens": "1:"}, "documents\\[1\\]"),
    ([np.array([1, 2])], {"model": lambda t: t[:, :1]}, r"returned shape \(1, 1\)"),
    ([np.array([1, 2])], {"model": "gpt2"}, "model='gpt2' must be a callable"),
])
def test_bad_input_is_refused_naming_the_argument(documents, options, message):
    model = options.pop("model", bigram_model()[0])
    with pytest.raises((ValueError, TypeError), match=message):
        score(model, documents, progress=False, **options)


def test_lm_documents_longer_than_its_context_are_refused(tiny_lm):
    with pytest.raises(ValueError, match="context=24"):
        score(tiny_lm, np.zeros((2, 30), np.uint8), progress=False)


def test_command_line_scores_then_queries(tmp_path, tiny_lm, capsys):
    """save_lm -> `score` -> .npz the query command reads; per-token .jsonl; bad output paths
    exit 2 having written nothing."""
    config, params = tiny_lm
    save_lm(tmp_path / "alice.npz", config, params)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(
        np.array_equal, load_lm(tmp_path / "alice.npz")[1], params))
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 256, size=(37, 24))  # the shapes of the test above: no recompiling
    step = rng.permutation(37)
    np.savez(tmp_path / "docs.npz", tokens=tokens, index=step)
    out = tmp_path / "scores.npz"
    arguments = ["score", "--model", str(tmp_path / "alice.npz"), "--documents",
                 str(tmp_path / "docs.npz"), "--order-field", "index", "--batch-size", "8",
                 "--no-progress"]
    assert main([*arguments, "--out", str(out)]) == 0
    with np.load(out) as written:
        np.testing.assert_allclose(written["loglik"], lm.document_log_likelihood(
            config, params, tokens.astype(np.uint8)), rtol=1e-6)
        np.testing.assert_array_equal(written["order"], step)
    assert main(["query", "--loglik", str(out), "--order-field", "order",
                 "--n-tokens", "n_tokens"]) == 0
    assert "n = 37" in capsys.readouterr().out
    lines = tmp_path / "scores.jsonl"
    assert main([*arguments, "--per-token", "--tokens", "8:", "--out", str(lines)]) == 0
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(records) == 37 and len(records[0]["token_loglik"]) == 24
    assert records[0]["n_tokens"] == 16
    assert records[0]["loglik"] == pytest.approx(sum(records[0]["token_loglik"][8:]), rel=1e-6)
    before = sorted(os.listdir(tmp_path))
    for extra, fragment in [(["--out", str(tmp_path / "s.npy")], "--out"),
                            (["--out", str(tmp_path / "s.npz"), "--per-token"], ".jsonl"),
                            (["--out", str(tmp_path / "no" / "s.npz")], "--out"),
                            (["--out", str(tmp_path / "s.npz"), "--documents-field", "x"],
                             "--documents")]:
        assert main([*arguments, *extra]) == 2
        assert fragment in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == before


def test_command_line_reads_ragged_token_lists(tmp_path, tiny_lm, capsys):
    """Documents as a .jsonl field of token-id lists of different lengths (with an order
    field): the command writes what score() gives on the same lists; a field of floats or of
    one number per row is refused naming the file and field."""
    config, params = tiny_lm
    save_lm(tmp_path / "alice.npz", config, params)
    rng = np.random.default_rng(5)
    documents = [rng.integers(0, 256, size=rng.integers(10, 25)) for _ in range(37)]
    (tmp_path / "docs.jsonl").write_text("".join(
        json.dumps({"tokens": d.tolist(), "index": i, "weight": 0.5, "frac": [0.5]}) + "\n"
        for i, d in enumerate(documents)))
    arguments = ["score", "--model", str(tmp_path / "alice.npz"), "--documents",
                 str(tmp_path / "docs.jsonl"), "--batch-size", "8", "--no-progress"]
    out = tmp_path / "scores.npz"
    assert main([*arguments, "--documents-field", "tokens", "--order-field", "index",
                 "--out", str(out)]) == 0
    expected = score((config, params), documents, batch_size=8, progress=False)
    with np.load(out) as written:
        np.testing.assert_array_equal(written["loglik"], expected.loglik)
        assert written["n_tokens"].tolist() == [len(d) for d in documents]
    for field, fragment in [("weight", "one number per row"), ("frac", "integer token ids"),
                            (None, "--documents-field")]:
        extra = [] if field is None else ["--documents-field", field]
        assert main([*arguments, *extra, "--out", str(tmp_path / "never.npz")]) == 2
        message = capsys.readouterr().err
        assert "docs.jsonl" in message and fragment in message, message
    assert not (tmp_path / "never.npz").exists()
