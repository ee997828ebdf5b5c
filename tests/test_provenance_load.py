"""provenance.load_likelihoods: every format round-trips, per-token lists are reduced as a plain
Python loop does, and every ambiguous or bad file is refused naming the file, the field and the
flag (issue 16, item 1).

Fixtures are written in the test: the HuggingFace dataset directory in the layout
`datasets.Dataset.save_to_disk` writes (state.json listing the Arrow *stream* shards,
dataset_info.json with the features, data-0000i-of-0000N.arrow), with pyarrow alone.
"""

import json

import numpy as np
import pytest
from scipy import stats

import provenance
from provenance.likelihoods import LikelihoodFileError, load_likelihoods

pa = pytest.importorskip("pyarrow")
parquet = pytest.importorskip("pyarrow.parquet")

N = 40


@pytest.fixture
def documents():
    """Per-token losses of N documents of 5..20 tokens, an unsorted step index, a scalar."""
    rng = np.random.default_rng(0)
    losses = [rng.gamma(2.0, 1.0, size=rng.integers(5, 21)).astype(np.float32)
              for _ in range(N)]
    order = rng.permutation(N) // 2  # a step index: two documents per step, rows unsorted
    scalar = rng.normal(size=N)
    return losses, order, scalar


def brute_force(losses, window, reduce, loss):
    """The per-document reduction as a Python loop over lists (float64)."""
    out = []
    for row in losses:
        kept = [float(value) for value in list(row)[window]]
        total = sum(kept) / (len(kept) if reduce == "mean" else 1)
        out.append(-total if loss else total)
    return np.array(out)


def rows(losses, order, scalar):
    return [{"loss": [float(v) for v in row], "index": int(step), "score": float(value)}
            for row, step, value in zip(losses, order, scalar, strict=True)]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def arrow_table(losses, order, scalar):
    return pa.table({"loss": pa.array([list(row) for row in losses], pa.list_(pa.float32())),
                     "index": pa.array(order, pa.int64()), "score": pa.array(scalar)})


def write_hf_dataset(folder, table, shards=2):
    """A directory as `datasets.Dataset.save_to_disk` writes it (Arrow IPC stream shards)."""
    folder.mkdir()
    bounds = np.linspace(0, table.num_rows, shards + 1).astype(int)
    names = [f"data-{i:05d}-of-{shards:05d}.arrow" for i in range(shards)]
    for name, start, stop in zip(names, bounds[:-1], bounds[1:], strict=True):
        with pa.OSFile(str(folder / name), "wb") as sink, \
                pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table.slice(start, stop - start))
    (folder / "state.json").write_text(json.dumps({
        "_data_files": [{"filename": name} for name in names], "_fingerprint": "0" * 16,
        "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
        "_output_all_columns": False, "_split": None}))
    (folder / "dataset_info.json").write_text(json.dumps({"features": {
        "loss": {"feature": {"dtype": "float32", "_type": "Value"}, "_type": "Sequence"},
        "index": {"dtype": "int64", "_type": "Value"},
        "score": {"dtype": "float64", "_type": "Value"}}}))
    return folder


def per_token_file(tmp_path, fmt, data):
    if fmt == "jsonl":
        return write_jsonl(tmp_path / "losses.jsonl", rows(*data))
    if fmt == "parquet":
        parquet.write_table(arrow_table(*data), tmp_path / "losses.parquet")
        return tmp_path / "losses.parquet"
    return write_hf_dataset(tmp_path / "losses_hf", arrow_table(*data))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
@pytest.mark.parametrize(("tokens", "window", "reduce", "loss"), [
    (None, slice(None), "mean", True), ("2:", slice(2, None), "sum", False),
    ("1:-1", slice(1, -1), "mean", False), (slice(-4, None), slice(-4, None), "sum", True)])
def test_ragged_per_token_lists_reduce_like_a_python_loop(tmp_path, documents, fmt, tokens,
                                                           window, reduce, loss):
    """Ragged lists, a token window, mean or sum, the loss sign flip, and an unsorted order
    column read as values (not row positions); agreement with the loop to 1e-12."""
    losses, order, _ = documents
    read = load_likelihoods(per_token_file(tmp_path, fmt, documents), field="loss",
                            per_token=True, tokens=tokens, reduce=reduce, loss=loss,
                            order="index")
    np.testing.assert_allclose(read.loglik, brute_force(losses, window, reduce, loss),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(read.order, order)
    assert read.token_counts.tolist() == [len(list(row)[window]) for row in losses]
    assert read.models is None and "per-token" in read.source


def scalar_file(tmp_path, fmt, scalar, order):
    path = tmp_path / f"scores.{fmt}"
    if fmt == "npy":
        np.save(path, scalar)
    elif fmt == "npz":
        np.savez(path, loglik=scalar, index=order)
    elif fmt == "csv":
        path.write_text("index,loglik\n" + "".join(f"{o},{v!r}\n" for o, v in
                                                   zip(order, scalar.tolist(), strict=True)))
    elif fmt == "jsonl":
        write_jsonl(path, [{"index": int(o), "loglik": v} for o, v in
                           zip(order, scalar.tolist(), strict=True)])
    else:
        table = pa.table({"index": order, "loglik": scalar})
        if fmt == "parquet":
            parquet.write_table(table, path)
        else:
            path = write_hf_dataset(tmp_path / "scores_hf", table, shards=3)
    return path


@pytest.mark.parametrize("fmt", ["npy", "npz", "csv", "jsonl", "parquet", "hf"])
def test_scalar_values_round_trip_every_format(tmp_path, documents, fmt):
    """One number per document comes back exactly (float64), with the order where the file
    holds one; the query test on it equals scipy's Spearman on the original arrays."""
    _, order, scalar = documents
    read = load_likelihoods(scalar_file(tmp_path, fmt, scalar, order),
                            order=None if fmt == "npy" else "index")
    np.testing.assert_array_equal(read.loglik, scalar)
    if fmt != "npy":
        np.testing.assert_array_equal(read.order, order)
        result = provenance.query_test(read.loglik, read.order)
        expected = stats.spearmanr(order, scalar, alternative="greater")
        assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert result.pvalue == pytest.approx(expected.pvalue, rel=1e-9)


def test_dataset_dict_directory_needs_a_split_when_it_has_several(tmp_path, documents):
    """A saved DatasetDict: one split is read without asking, several need split=."""
    root = tmp_path / "dict"
    root.mkdir()
    table = arrow_table(*documents)
    for name in ("train", "validation"):
        write_hf_dataset(root / name, table)
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "validation"]}))
    with pytest.raises(LikelihoodFileError, match=r"splits \['train', 'validation'\].*--split"):
        load_likelihoods(root, field="score")
    read = load_likelihoods(root, field="score", split="validation", order="index")
    np.testing.assert_array_equal(read.loglik, documents[2])


def test_list_field_is_never_read_implicitly(tmp_path, documents):
    """The issue's case: a .jsonl field of fixed-length per-token lists (the authors' 64-token
    windows) must not silently become one model per token position."""
    losses = [row[:5] for row in documents[0]]  # every list 5 long
    path = write_jsonl(tmp_path / "windows.jsonl", rows(losses, *documents[1:]))
    with pytest.raises(LikelihoodFileError) as info:
        load_likelihoods(path, field="loss", order="index")
    for fragment in ("windows.jsonl", "'loss'", "--per-token", "--per-model"):
        assert fragment in str(info.value)
    as_models = load_likelihoods(path, field="loss", per_token=False)
    assert as_models.loglik.shape == (5, N)
    np.testing.assert_allclose(as_models.loglik[2], [row[2] for row in losses])
    as_tokens = load_likelihoods(path, field="loss", per_token=True)
    np.testing.assert_allclose(as_tokens.loglik, [np.mean(row, dtype=np.float64)
                                                  for row in losses])


def test_2d_arrays_are_models_unless_per_token(tmp_path):
    """A 2-D .npy is (models, n) like query_test's argument; per_token=True reads its rows as
    documents and its columns as tokens."""
    matrix = np.arange(12.0).reshape(3, 4)
    np.save(tmp_path / "m.npy", matrix)
    np.testing.assert_array_equal(load_likelihoods(tmp_path / "m.npy").loglik, matrix)
    np.testing.assert_allclose(load_likelihoods(tmp_path / "m.npy", per_token=True,
                                                tokens="1:", reduce="sum").loglik,
                               matrix[:, 1:].sum(1))


def test_several_fields_are_several_named_models(tmp_path, documents):
    _, order, scalar = documents
    path = tmp_path / "two.csv"
    path.write_text("a,b,index\n" + "".join(f"{v!r},{-v!r},{o}\n" for v, o in
                                            zip(scalar.tolist(), order, strict=True)))
    read = load_likelihoods(path, field=["a", "b"], order="index")
    assert read.models == ("a", "b")
    np.testing.assert_array_equal(read.loglik, [scalar, -scalar])


BAD = [  # (file name, contents, options, fragments the message must hold)
    ("missing.jsonl", [{"loss": 1.0}] * 3, {"field": "logprob"}, ["'logprob' not found"]),
    ("mixed.jsonl", [{"loss": 1.0}, {"loss": [1.0, 2.0]}, {"loss": 3.0}], {"field": "loss"},
     ["mixed types", "list (first at row 2)"]),
    ("text.jsonl", [{"loss": "high"}] * 3, {"field": "loss"}, ["non-numeric"]),
    ("nan.jsonl", [{"loss": 1.0}, {"loss": float("nan")}, {"loss": 3.0}], {"field": "loss"},
     ["non-finite", "row 2"]),
    ("nan_token.jsonl", [{"loss": [1.0, 2.0]}, {"loss": [1.0, float("nan")]}],
     {"field": "loss", "per_token": True}, ["non-finite", "row 2", "kept tokens"]),
    ("ragged_models.jsonl", [{"loss": [1.0, 2.0]}, {"loss": [1.0]}],
     {"field": "loss", "per_token": False}, ["different lengths", "--per-token"]),
    ("window.jsonl", [{"loss": [1.0, 2.0, 3.0]}, {"loss": [1.0]}],
     {"field": "loss", "per_token": True, "tokens": "1:"}, ["row 2", "--tokens"]),
    ("lacking.jsonl", [{"loss": 1.0, "index": 0}, {"loss": 2.0}], {"field": "loss",
                                                                   "order": "index"},
     ["'index'", "row 2"]),
    ("scalar.jsonl", [{"loss": 1.0}] * 3, {"field": "loss", "per_token": True},
     ["one number per document", "--per-token"]),
    ("order_list.jsonl", [{"loss": 1.0, "index": [1, 2]}] * 3, {"field": "loss",
                                                                 "order": "index"},
     ["'index'", "--order-field"]),
    ("two.jsonl", [{"a": 1.0, "b": 2.0}] * 3, {}, ["fields ['a', 'b']", "--field"]),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_files_name_the_file_and_field_and_write_nothing(tmp_path, case):
    name, records, options, fragments = BAD[case]
    path = write_jsonl(tmp_path / name, records)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(LikelihoodFileError) as info:
        load_likelihoods(path, **options)
    assert name in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert sorted(tmp_path.iterdir()) == before


def test_bad_arrow_files_and_options(tmp_path):
    """Nulls and string columns in parquet; a folder that is not a dataset; bad options."""
    table = pa.table({"loss": pa.array([[1.0], None, [2.0]], pa.list_(pa.float64())),
                      "name": ["a", "b", "c"]})
    parquet.write_table(table, tmp_path / "nulls.parquet")
    with pytest.raises(LikelihoodFileError,
                       match=r"'loss' has no value \(null or missing\) at row 2"):
        load_likelihoods(tmp_path / "nulls.parquet", field="loss", per_token=True)
    with pytest.raises(LikelihoodFileError, match="'name' has type string"):
        load_likelihoods(tmp_path / "nulls.parquet", field="name")
    parquet.write_table(pa.table({"loss": pa.array([], pa.float64())}), tmp_path / "empty.parquet")
    with pytest.raises(LikelihoodFileError, match="empty.parquet' field 'loss' holds no documents"):
        load_likelihoods(tmp_path / "empty.parquet")
    np.savez(tmp_path / "short.npz", loglik=np.arange(5.0), index=np.arange(4))
    with pytest.raises(LikelihoodFileError, match="short.npz': the order field has 4 values but "
                                                  "the likelihoods 5 documents"):
        load_likelihoods(tmp_path / "short.npz", order="index")
    (tmp_path / "folder").mkdir()
    with pytest.raises(LikelihoodFileError, match="not a saved HuggingFace dataset"):
        load_likelihoods(tmp_path / "folder")
    np.save(tmp_path / "x.npy", np.arange(5.0))
    for options, message in [({"reduce": "median", "per_token": True}, "reduce='median'"),
                             ({"tokens": "1:2:3", "per_token": True}, "START:STOP"),
                             ({"tokens": "2:"}, "add per_token=True"),
                             ({"per_token": True, "n_tokens": "n"}, "second time")]:
        with pytest.raises(ValueError, match=message):
            load_likelihoods(tmp_path / "x.npy", **options)


def test_n_tokens_field_normalises_in_the_query(tmp_path, documents):
    """Sums with a token-count field give the same test as per-token means."""
    losses, order, _ = documents
    sums = brute_force(losses, slice(None), "sum", True)
    path = write_jsonl(tmp_path / "sums.jsonl", [
        {"loglik": s, "n": len(row), "index": int(o)}
        for s, row, o in zip(sums, losses, order, strict=True)])
    read = load_likelihoods(path, n_tokens="n", order="index")
    means = load_likelihoods(per_token_file(tmp_path, "jsonl", documents), field="loss",
                             per_token=True, loss=True)
    by_count = provenance.query_test(read.loglik, read.order, n_tokens=read.n_tokens)
    by_mean = provenance.query_test(means.loglik, order)
    assert by_count.statistic == pytest.approx(by_mean.statistic, abs=1e-12)


def test_query_test_refuses_a_bare_string_for_models():
    """models="bob" would otherwise name three models 'b', 'o', 'b'."""
    loglik = np.random.default_rng(0).normal(size=(3, 20))
    with pytest.raises(TypeError, match=r"models='bob' must be a list of names"):
        provenance.query_test(loglik, np.arange(20), models="bob")
    result = provenance.query_test(loglik[:1], np.arange(20), models=["bob"])
    assert result.models == ("bob",)


def test_jsonl_reads_the_same_without_pyarrow(tmp_path, documents, monkeypatch):
    """The Python json fallback (no pyarrow) gives the same values as pyarrow's reader."""
    from provenance import tables

    path = per_token_file(tmp_path, "jsonl", documents)
    options = {"field": "loss", "per_token": True, "tokens": "1:", "order": "index"}
    with_arrow = load_likelihoods(path, **options)
    monkeypatch.setattr(tables, "_arrow_json", lambda path: None)
    without = load_likelihoods(path, **options)
    np.testing.assert_array_equal(with_arrow.loglik, without.loglik)
    np.testing.assert_array_equal(with_arrow.order, without.order)


@pytest.mark.slow
def test_authors_scale_dataset_folder_reads_exactly(tmp_path):
    """100,000 documents of 96 per-token losses in a dataset folder (the authors' query-test
    scale): window means equal numpy's on the dense array to 1e-12."""
    rng = np.random.default_rng(7)
    losses = rng.gamma(2.0, 1.0, size=(100_000, 96)).astype(np.float32)
    table = pa.table({"loss": pa.FixedSizeListArray.from_arrays(losses.reshape(-1), 96)
                      .cast(pa.list_(pa.float32())), "index": rng.permutation(100_000)})
    read = load_likelihoods(write_hf_dataset(tmp_path / "hf", table, shards=4), field="loss",
                            per_token=True, tokens="32:", loss=True, order="index")
    np.testing.assert_allclose(read.loglik, -losses[:, 32:].astype(np.float64).mean(1),
                               rtol=1e-12)
    np.testing.assert_array_equal(read.order, table.column("index").to_numpy())
