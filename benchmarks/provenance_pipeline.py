"""Run time of each step from per-token loss files to a p-value (provenance/README.md's guide).

At the authors' scale (Kuditipudi et al. 2025 score 10^5 sampled Pythia training sequences of
96 tokens, a 32-token prompt dropped): per-token losses of `--documents` documents with
`--tokens` tokens each, for a suspect model and a reference model, are written as .parquet, as a
HuggingFace dataset directory (the Arrow stream layout of `datasets.save_to_disk`, written with
pyarrow) and as .jsonl; then timed:

  read      `provenance.load_likelihoods(..., per_token=True, tokens="32:", loss=True)` per
            format (both files: suspect with its order field, reference);
  query     `provenance.query_test(loglik, order, reference)` on the documents;
  score     `provenance.score` of lm.py's default byte transformer (lm.LMConfig(): 2 layers,
            d_model 128, context 128) over `--score-documents` 128-byte documents, batch 256:
            the first call (compilation included), the documents per second after it, and its
            time over `lm.document_log_likelihood`'s (one jitted `lax.map`) on the same
            documents, interleaved: the cost of batching from Python and of the store hooks.

Each time is the best of `--repeats` runs. Writes its fixtures to a temporary folder, removed
at the end; prints a table to stdout.

    python benchmarks/provenance_pipeline.py [--documents 100000] [--tokens 96] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def best_time(function, repeats: int) -> tuple[float, object]:
    """Best wall time (s) of `repeats` calls, and the last call's value."""
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def write_files(folder: Path, n: int, length: int, seed: int) -> dict[str, tuple[Path, Path]]:
    """Suspect and reference per-token losses in each format; returns format -> (bob, ref)."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    import provenance

    data = provenance.palimpsest(n, 0.2, reference_correlation=0.9, seed=seed)
    rng = np.random.default_rng(seed)
    files = {}
    for name, per_document in (("bob", data.loglik), ("ref", data.reference)):
        losses = (-per_document[:, None] + rng.normal(0, 1, size=(n, length))).astype(np.float32)
        table = pa.table({"loss": pa.FixedSizeListArray.from_arrays(losses.reshape(-1), length)
                          .cast(pa.list_(pa.float32())), "index": data.order})
        parquet.write_table(table, folder / f"{name}.parquet")
        directory = folder / f"{name}_hf"
        directory.mkdir()
        with pa.OSFile(str(directory / "data-00000-of-00001.arrow"), "wb") as sink, \
                pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        (directory / "state.json").write_text(json.dumps(
            {"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
        with (folder / f"{name}.jsonl").open("w") as handle:
            for row, step in zip(losses.tolist(), data.order.tolist(), strict=True):
                handle.write(json.dumps({"loss": row, "index": step}) + "\n")
    for fmt, suffix in (("parquet", ".parquet"), ("hf", "_hf"), ("jsonl", ".jsonl")):
        files[fmt] = (folder / f"bob{suffix}", folder / f"ref{suffix}")
    return files


def score_times(n_documents: int, repeats: int) -> tuple[float, float, float]:
    """(first call in s, documents per second after it, its time / lm.document_log_likelihood's
    on the same documents) of provenance.score on lm.py's default model."""
    import jax

    import provenance
    from provenance import lm

    config = lm.LMConfig()
    params = lm.init_params(config, jax.random.key(0))
    documents = np.random.default_rng(0).integers(0, 256, size=(n_documents, 128)).astype(
        np.uint8)

    def ours():
        return provenance.score((config, params), documents, batch_size=256, progress=False)

    def direct():
        return lm.document_log_likelihood(config, params, documents, batch_size=256)

    first, _ = best_time(ours, 1)
    direct()  # compile
    times = {"ours": float("inf"), "direct": float("inf")}
    for _ in range(repeats):  # interleaved, so both see the same machine load
        for name, function in (("ours", ours), ("direct", direct)):
            seconds, _ = best_time(function, 1)
            times[name] = min(times[name], seconds)
    return first, n_documents / times["ours"], times["ours"] / times["direct"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--score-documents", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import provenance

    options = {"field": "loss", "per_token": True, "tokens": "32:", "loss": True}
    print(f"{args.documents} documents x {args.tokens} tokens (tokens 32: kept), two models")
    with tempfile.TemporaryDirectory() as folder:
        files = write_files(Path(folder), args.documents, args.tokens, args.seed)
        for fmt, (bob_path, ref_path) in files.items():
            size = sum(path.stat().st_size if path.is_file() else
                       sum(p.stat().st_size for p in path.iterdir())
                       for path in (bob_path, ref_path))
            seconds, (bob, ref) = best_time(lambda b=bob_path, r=ref_path: (
                provenance.load_likelihoods(b, order="index", **options),
                provenance.load_likelihoods(r, **options)), args.repeats)
            print(f"read {fmt:<8} {seconds:8.2f} s   ({size / 2**20:.0f} MiB on disk)")
        seconds, result = best_time(lambda: provenance.query_test(bob.loglik, bob.order,
                                                                  ref.loglik), args.repeats)
        print(f"query         {seconds:8.3f} s   (log10 p = {float(result.log10_pvalue):.1f})")
    first, rate, ratio = score_times(args.score_documents, args.repeats)
    print(f"score first   {first:8.2f} s   ({args.score_documents} documents of 128 bytes, "
          f"lm.LMConfig(), compilation included)")
    print(f"score rate    {rate:8.0f} documents / s after compilation "
          f"({ratio:.2f} x lm.document_log_likelihood's time on the same documents)")


if __name__ == "__main__":
    main()
