"""python -m provenance: query on .npy / .npz / .csv / .jsonl files, power PNG, demo hook."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from provenance.__main__ import main


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    order = np.repeat(np.arange(50.0), 4)
    rng.shuffle(order)
    loglik = np.stack([0.02 * order + rng.normal(size=200), rng.normal(size=200)])
    reference = rng.normal(size=200)
    return loglik, order, reference


def write(tmp_path, fmt, name, values, key=None):
    """Write values (n,) or (models, n) in a format; returns the path."""
    path = tmp_path / f"{name}.{fmt}"
    values = np.asarray(values)
    columns = {key or name: values} if values.ndim == 1 else {
        f"model{i}": row for i, row in enumerate(values)}
    if fmt == "npy":
        np.save(path, values)
    elif fmt == "npz":
        np.savez(path, **columns, unrelated=np.zeros(3))
    elif fmt == "csv":
        names = list(columns)
        lines = [",".join(names)] + [",".join(repr(float(columns[c][i])) for c in names)
                                     for i in range(values.shape[-1])]
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text("".join(json.dumps({c: float(columns[c][i]) for c in columns}) + "\n"
                                for i in range(values.shape[-1])))
    return path


@pytest.mark.parametrize("fmt", ["npy", "npz", "csv", "jsonl"])
def test_query_reads_every_format_and_matches_scipy(tmp_path, data, fmt, capsys):
    loglik, order, reference = data
    out = tmp_path / "result.json"
    arguments = ["query", "--loglik", str(write(tmp_path, fmt, "loglik", loglik[0], "logprob")),
                 "--order", str(write(tmp_path, fmt, "order", order)),
                 "--reference", str(write(tmp_path, fmt, "reference", reference)),
                 "--json", str(out)]
    if fmt != "npy":
        arguments += ["--key", "logprob"]
    assert main(arguments) == 0
    record = json.loads(out.read_text())
    expected = stats.spearmanr(order, loglik[0] - reference, alternative="greater")
    assert record["statistic"] == pytest.approx(expected.statistic, abs=1e-12)
    assert record["pvalue"] == pytest.approx(expected.pvalue, rel=1e-8)
    printed = capsys.readouterr().out
    assert "spearman" in printed and "read loglik from" in printed


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_several_models_in_one_file(tmp_path, data, fmt, capsys):
    loglik, order, _ = data
    out = tmp_path / "result.json"
    assert main(["query", "--loglik", str(write(tmp_path, fmt, "loglik", loglik)), "--order",
                 str(write(tmp_path, fmt, "order", order)), "--statistic", "kendall",
                 "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert len(record["statistic"]) == 2
    assert record["statistic"][1] == pytest.approx(stats.kendalltau(order, loglik[1]).statistic,
                                                   abs=1e-12)
    if fmt == "csv":
        assert record["models"] == ["model0", "model1"]


def test_bad_input_exits_2_names_the_argument_and_writes_nothing(tmp_path, data, capsys):
    loglik, order, _ = data
    good_order = str(write(tmp_path, "npy", "order", order))
    out = tmp_path / "never.json"
    text = tmp_path / "words.csv"
    text.write_text("loglik\nhigh\nlow\nmid\n")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([1.0, np.nan, 2.0] + [0.0] * 197))
    cases = [(["--loglik", str(text)], "--loglik: .*non-numeric"),
             (["--loglik", str(nan)], "--loglik: .*nan.npy' field 'array' has 1 non-finite"),
             (["--loglik", str(write(tmp_path, "npy", "short", loglik[0, :50]))],
              "--order: order has 200 values"),
             (["--loglik", str(tmp_path / "missing.npy")], "does not exist"),
             (["--loglik", str(tmp_path / "x.txt")], "allowed formats"),
             (["--loglik", str(write(tmp_path, "npz", "bundle", loglik[0])), "--key", "nope"],
              "key 'nope' not found")]
    for arguments, message in cases:
        assert main(["query", *arguments, "--order", good_order, "--json", str(out)]) == 2
        assert re.search(message, capsys.readouterr().err)
        assert not out.exists()


def test_power_writes_a_png(tmp_path, capsys):
    out = tmp_path / "power.png"
    assert main(["power", "--out", str(out), "--strengths", "0", "0.5", "--sizes", "100", "400",
                 "--draws", "20"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
    assert main(["power", "--out", str(tmp_path / "power.pdf")]) == 2


def test_demo_subcommand_hands_over_its_arguments_or_explains(capsys, monkeypatch):
    import importlib.util
    import types

    calls = []
    fake = types.ModuleType("provenance.demo")
    fake.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "provenance.demo", fake)
    monkeypatch.setattr("provenance.demo", fake, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert main(["demo", "--quick", "-n", "3"]) == 0 and calls == [["--quick", "-n", "3"]]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert main(["demo"]) == 2
    assert "provenance.demo" in capsys.readouterr().err


def test_module_entry_point_runs_as_a_subprocess(tmp_path, data):
    loglik, order, _ = data
    completed = subprocess.run(
        [sys.executable, "-m", "provenance", "query", "--loglik",
         str(write(tmp_path, "npy", "loglik", loglik[0])), "--order",
         str(write(tmp_path, "npy", "order", order)), "--alternative", "two-sided"],
        capture_output=True, text=True, check=True)
    assert "alternative = two-sided" in completed.stdout


def test_jsonl_field_holding_a_list_must_be_declared(tmp_path, data, capsys):
    """The issue's case: a list field is refused until --per-model (one value per model) or
    --per-token says what it is; --per-model reproduces scipy per model."""
    loglik, order, _ = data
    path = tmp_path / "scores.jsonl"
    path.write_text("".join(json.dumps({"id": i, "loglik": [float(a), float(b)],
                                        "order": float(o)}) + "\n"
                            for i, (a, b, o) in enumerate(zip(*loglik, order, strict=True))))
    out = tmp_path / "result.json"
    assert main(["query", "--loglik", str(path), "--order", str(path), "--json", str(out)]) == 2
    message = capsys.readouterr().err
    assert "scores.jsonl' field 'loglik'" in message and "--per-model" in message
    assert "--per-token" in message and not out.exists()
    assert main(["query", "--loglik", str(path), "--order", str(path), "--per-model",
                 "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    np.testing.assert_allclose(record["statistic"], [stats.spearmanr(order, row).statistic
                                                     for row in loglik], atol=1e-12)
    assert record["inputs"]["loglik"].endswith("field 'loglik' (one value per model)")


def test_per_token_loss_datasets_with_a_reference_as_the_authors_store_them(tmp_path, capsys):
    """Per-token losses in saved HuggingFace datasets (ragged, a 4-token prompt to drop, an
    unsorted step column), a reference model's file of the same layout: the command equals
    scipy's Spearman on the window means computed here by a loop."""
    pa = pytest.importorskip("pyarrow")
    from test_provenance_load import write_hf_dataset

    rng = np.random.default_rng(3)
    n = 60
    step = rng.permutation(n)
    difficulty = rng.normal(size=n)
    lengths = rng.integers(6, 15, size=n)
    bob = [np.abs(d + 2 - 0.02 * s + 0.3 * rng.normal(size=k))
           for d, s, k in zip(difficulty, step, lengths, strict=True)]
    ref = [np.abs(d + 2 + 0.3 * rng.normal(size=k)) for d, k in zip(difficulty, lengths,
                                                                      strict=True)]
    for name, losses in (("bob", bob), ("ref", ref)):
        write_hf_dataset(tmp_path / name, pa.table({
            "loss": pa.array([row.tolist() for row in losses], pa.list_(pa.float32())),
            "index": step, "score": np.zeros(n)}))
    out = tmp_path / "result.json"
    assert main(["query", "--loglik", str(tmp_path / "bob"), "--field", "loss", "--per-token",
                 "--tokens", "4:", "--loss", "--order-field", "index", "--reference",
                 str(tmp_path / "ref"), "--json", str(out)]) == 0
    window_mean = [[float(np.mean(row[4:].astype(np.float32), dtype=np.float64)) for row in rows]
                   for rows in (bob, ref)]
    expected = stats.spearmanr(step, -np.array(window_mean[0]) + np.array(window_mean[1]),
                               alternative="greater")
    record = json.loads(out.read_text())
    assert record["statistic"] == pytest.approx(expected.statistic, abs=1e-12)
    assert record["pvalue"] == pytest.approx(expected.pvalue, rel=1e-8)
    assert "per-token mean of tokens 4:" in record["inputs"]["reference"]
    assert main(["query", "--loglik", str(tmp_path / "bob"), "--field", "loss",
                 "--order-field", "index"]) == 2
    assert "--per-token" in capsys.readouterr().err


def test_reference_rows_in_another_order_and_rows_that_look_like_documents(tmp_path, capsys):
    """A reference whose order field disagrees is refused; a (documents, tokens) .npy read as
    models gets a hint to add --per-token."""
    rows = [{"loglik": float(i % 7), "index": i} for i in range(10)]
    (tmp_path / "bob.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "ref.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]))
    out = tmp_path / "never.json"
    assert main(["query", "--loglik", str(tmp_path / "bob.jsonl"), "--order-field", "index",
                 "--reference", str(tmp_path / "ref.jsonl"), "--json", str(out)]) == 2
    assert "--reference: its field 'index'" in capsys.readouterr().err
    (tmp_path / "plain.jsonl").write_text("".join(json.dumps({"loglik": float(i % 3)}) + "\n"
                                                  for i in range(10)))
    assert main(["query", "--loglik", str(tmp_path / "bob.jsonl"), "--order-field", "index",
                 "--reference", str(tmp_path / "plain.jsonl")]) == 0  # no order field: trusted
    np.save(tmp_path / "tokens.npy", np.random.default_rng(0).normal(size=(10, 32)))
    np.save(tmp_path / "order.npy", np.arange(10))
    assert main(["query", "--loglik", str(tmp_path / "tokens.npy"), "--order",
                 str(tmp_path / "order.npy"), "--json", str(out)]) == 2
    assert "add --per-token" in capsys.readouterr().err
    assert main(["query", "--loglik", str(tmp_path / "tokens.npy"), "--order",
                 str(tmp_path / "order.npy"), "--per-token"]) == 0
    assert main(["query", "--loglik", str(tmp_path / "bob.jsonl"), "--order",
                 str(tmp_path / "order.npy"), "--order-field", "index"]) == 2
    assert "not both or neither" in capsys.readouterr().err
    assert not out.exists()
