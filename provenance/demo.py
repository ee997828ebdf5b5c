"""Palimpsest end to end (issue 8): train a byte transformer on shuffled stdlib source, derive
models from it, and prove provenance with the query and observational tests.

Kuditipudi et al. (2025). Alice trains `provenance.lm`'s transformer once over her documents in
a uniformly random order drawn from her seed (document order[i] is seen at batch i // B, its
"position"). Bob's derivatives:
  (a) fine-tunes: Alice's final weights trained on other stdlib documents (held out from hers)
      with a fresh optimiser, for each k in `finetune_steps`;
  (b) the null: a model of the same architecture trained from its own seed on Alice's documents in
      its own random order (a second one, the reference, normalises log-likelihoods);
  (c) K reshuffled-retrain copies: Alice's checkpoint before her last `retrain_fraction` of steps
      (weights and optimiser state) retrained on that phase's documents in K fresh orders. Under
      H0 her real final model and the copies are exchangeable, which is what the reshuffled
      tests assume. (They restart from that checkpoint, not from her final weights: copies
      trained further from the final weights would not be exchangeable with it.)
Query test (`provenance.query.query_test`): Spearman rho between each of Alice's documents'
position and its log-likelihood under Bob's model minus that under the reference model (and
raw), one-sided, asymptotic p-value. Observational
tests: text sampled from Bob's fine-tune (and, as a null, from the independent model), scored by
`provenance.observational`'s span-overlap test (byte spans) and reshuffled-retrain tests (rank,
exact; z-score, Student t), as functions of the number of sampled bytes (= tokens).

`main(["--size", "mini"])` runs in well under a minute on a CPU; the default size in about two
minutes on 2 CPU cores. Every random draw comes from keys split from `seed` (and the corpus
split's fixed seed), so a run is reproducible: the same seed gives the same p-values. Each stage
is reported on stderr as it starts and ends, with its elapsed time; `main` ends with the list of
files it wrote.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import numbers
import pathlib
import sys
import time

import jax
import numpy as np
import xarray as xr

from lazyrich.core.checks import check_positive_integer, check_seed, require_memory
from provenance import lm, observational
from provenance.command_line import OneLineParser, check_output_folder
from provenance.corpus import split_documents, stdlib_documents
from provenance.demo_plot import plot
from provenance.query import query_test

CHUNK_STEPS = 8  # steps per compiled scan; step counts that are multiples share one compilation


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Every size of the demo. Step counts are optimiser steps of `batch_size` documents."""

    model: lm.LMConfig = lm.LMConfig(context=64, d_model=64, layers=2, heads=4)
    n_documents: int = 4096  # Alice's training set (one epoch)
    n_other: int = 2048  # Bob's fine-tuning text, disjoint from Alice's
    batch_size: int = 8
    learning_rate: float = 5e-3
    finetune_steps: tuple[int, ...] = (8, 32, 128, 512)
    n_copies: int = 16
    retrain_fraction: float = 0.25
    observed_finetune_steps: int = 8  # which fine-tune publishes text
    sample_sequences: int = 1024  # sampled texts of `context` bytes per source
    span_lengths: tuple[int, int] = (16, 32)  # byte spans indexed by the span-overlap test
    seed: int = 0  # Alice's seed (her initialisation and her order)

    def __post_init__(self):
        for name in ("n_documents", "n_other", "batch_size", "sample_sequences",
                     "observed_finetune_steps"):
            check_positive_integer(name, getattr(self, name))
        check_positive_integer("n_copies", self.n_copies, minimum=2)  # the z-score needs two
        for steps in self.finetune_steps:
            check_positive_integer("finetune_steps", steps)
        check_seed(self.seed)
        if isinstance(self.retrain_fraction, bool) or not isinstance(
                self.retrain_fraction, numbers.Real) or not 0 < self.retrain_fraction < 1:
            raise ValueError(f"retrain_fraction={self.retrain_fraction!r} is not allowed; it "
                             f"must be a number in (0, 1)")
        if self.n_documents % self.batch_size:
            raise ValueError(f"n_documents={self.n_documents} must be a multiple of "
                             f"batch_size={self.batch_size}")
        retrain_steps = round(self.retrain_fraction * self.steps)
        if not 1 <= retrain_steps < self.steps:
            raise ValueError(f"retrain_fraction={self.retrain_fraction} must leave between 1 "
                             f"and {self.steps - 1} of Alice's {self.steps} steps to retrain")
        if self.observed_finetune_steps not in self.finetune_steps:
            raise ValueError(f"observed_finetune_steps={self.observed_finetune_steps} must be "
                             f"one of finetune_steps={self.finetune_steps}")
        if list(self.finetune_steps) != sorted(set(self.finetune_steps)) or \
                self.finetune_steps[0] < 1:
            raise ValueError(f"finetune_steps={self.finetune_steps} must be increasing "
                             f"positive integers")

    @property
    def steps(self) -> int:
        return self.n_documents // self.batch_size

    @property
    def retrain_steps(self) -> int:
        return round(self.retrain_fraction * self.steps)


SIZES = {
    "default": DemoConfig(),
    "mini": DemoConfig(model=lm.LMConfig(context=32, d_model=32, layers=1, heads=2),
                       n_documents=1024, n_other=512, batch_size=8, learning_rate=1e-2,
                       finetune_steps=(8, 32), n_copies=4, observed_finetune_steps=8,
                       sample_sequences=64, span_lengths=(6, 16)),
}


LOGLIK_BATCH = 256  # documents per block of `lm.document_log_likelihood`
OUTPUT_FILES = ("palimpsest.nc", "summary.json", "query.png", "observational.png")


def demo_bytes(config: DemoConfig) -> int:
    """Peak bytes of the arrays the demo builds from its configuration: the span index over
    Alice's documents (the largest), matching the sampled text against it, one block of
    log-likelihood logits (float32, ~3 live copies) and Alice's and Bob's documents. Not
    counted: the stdlib corpus (~12 MB at 64-byte documents) and JAX itself."""
    context = config.model.context
    lo, hi = config.span_lengths
    return (observational.span_index_bytes(config.n_documents * context, lo, hi)
            + observational.LOOKUP_BYTES_PER_TOKEN * config.sample_sequences * context
            + 3 * 4 * LOGLIK_BATCH * context * 256  # 256 logits (byte values) per position
            + (config.n_documents + config.n_other) * context)


class Progress:
    """Reports each stage as it starts and ends, with its elapsed time (to `stream`; None:
    silent), and adds each stage's seconds to `timings[key]`."""

    def __init__(self, stream=None):
        self.stream, self.began, self.timings = stream, time.perf_counter(), {}

    @contextlib.contextmanager
    def stage(self, label: str, key: str | None = None):
        start = time.perf_counter()
        self.say(f"{label} ...")
        yield
        seconds = time.perf_counter() - start
        if key is not None:
            self.timings[key] = self.timings.get(key, 0.0) + seconds
        self.say(f"{label}: done in {seconds:.1f} s")

    def say(self, message: str) -> None:
        if self.stream is not None:
            print(f"[demo {time.perf_counter() - self.began:7.1f} s] {message}", file=self.stream,
                  flush=True)


@functools.lru_cache(maxsize=8)
def _trainer(model: lm.LMConfig, learning_rate: float) -> lm.Trainer:
    return lm.Trainer(model, lm.make_optimizer(learning_rate))


def _permutation(key: jax.Array, n: int) -> np.ndarray:
    return np.asarray(jax.random.permutation(key, n))


def _train(config: DemoConfig, params, opt_state, documents, order):
    trainer = _trainer(config.model, config.learning_rate)
    opt_state = trainer.optimizer.init(params) if opt_state is None else opt_state
    batches = lm.batches_in_order(documents, order, config.batch_size)
    return trainer.run(params, opt_state, batches, chunk_steps=CHUNK_STEPS)


def train_models(config: DemoConfig, documents: np.ndarray, other: np.ndarray,
                 progress: Progress | None = None) -> dict:
    """Alice, her checkpoint and copies, the reference, the independent model and Bob's
    fine-tunes; returns weights, Alice's positions and losses. Each stage is reported to
    `progress` (and its seconds added to `training_s`)."""
    progress = Progress() if progress is None else progress
    n, batch, cut = config.n_documents, config.batch_size, config.steps - config.retrain_steps
    with progress.stage(f"training Alice ({config.steps} steps of {batch} documents)",
                        "training_s"):
        keys = dict(zip(("alice_init", "alice_order", "reference", "independent", "bob",
                         "copies"), jax.random.split(jax.random.key(config.seed), 6), strict=True))
        order = _permutation(keys["alice_order"], n)
        position = np.empty(n)
        position[order] = np.arange(n) // batch
        params = lm.init_params(config.model, keys["alice_init"])
        checkpoint = _train(config, params, None, documents, order[:cut * batch])
        alice, _, late_losses = _train(config, *checkpoint[:2], documents, order[cut * batch:])
    alice_losses = np.concatenate([checkpoint[2], late_losses])
    copies = []
    with progress.stage(f"training {config.n_copies} reshuffled copies (her last "
                        f"{config.retrain_steps} steps each)", "training_s"):
        for key in jax.random.split(keys["copies"], config.n_copies):
            late = order[cut * batch:][_permutation(key, n - cut * batch)]
            copies.append(_train(config, *checkpoint[:2], documents, late)[0])
        jax.block_until_ready(copies)
    others = {}
    with progress.stage("training the reference and independent models", "training_s"):
        for name in ("reference", "independent"):
            init_key, order_key = jax.random.split(keys[name])
            others[name] = _train(config, lm.init_params(config.model, init_key), None,
                                  documents, _permutation(order_key, n))[0]
        jax.block_until_ready(others)
    finetunes, bob, bob_state, done = {}, alice, None, 0
    with progress.stage(f"fine-tuning Bob's models ({', '.join(map(str, config.finetune_steps))}"
                        f" steps)", "training_s"):
        bob_order_key, _ = jax.random.split(keys["bob"])
        epochs = -(-config.finetune_steps[-1] * batch // other.shape[0])
        bob_order = np.concatenate([_permutation(key, other.shape[0])
                                    for key in jax.random.split(bob_order_key, epochs)])
        for k in config.finetune_steps:
            bob, bob_state, _ = _train(config, bob, bob_state, other,
                                       bob_order[done * batch:k * batch])
            finetunes[k], done = bob, k
        jax.block_until_ready(finetunes)  # so that the time is counted here, not later
    return {"alice": alice, "copies": copies, "finetunes": finetunes, **others,
            "position": position, "alice_losses": alice_losses, "bob_key": keys["bob"]}


def query_tests(config: DemoConfig, models: dict, documents: np.ndarray) -> xr.Dataset:
    """rho and log10 p of the query test for Alice, each fine-tune and the independent model."""
    names = ["alice", *(f"finetune_{k}" for k in config.finetune_steps), "independent"]
    weights = [models["alice"], *models["finetunes"].values(), models["independent"]]
    reference = lm.document_log_likelihood(config.model, models["reference"], documents)
    loglik = np.stack([lm.document_log_likelihood(config.model, w, documents) for w in weights])
    raw = query_test(loglik, models["position"], models=names)
    normalised = query_test(loglik, models["position"], reference, models=names)
    steps = [0, *config.finetune_steps, -1]
    return xr.Dataset(
        {"query_rho": ("model", np.asarray(normalised.statistic)),
         "query_log10_p": ("model", np.asarray(normalised.log10_pvalue)),
         "query_rho_raw": ("model", np.asarray(raw.statistic)),
         "query_log10_p_raw": ("model", np.asarray(raw.log10_pvalue)),
         "document_loglik": (("model", "document"), loglik),
         "reference_loglik": ("document", reference),
         "position": ("document", models["position"])},
        coords={"model": names, "finetune_steps": ("model", steps)})


def observational_tests(config: DemoConfig, models: dict, documents: np.ndarray) -> xr.Dataset:
    """Span-overlap and reshuffled-retrain log10 p vs sampled bytes, for text from Bob's
    observed fine-tune ("derived") and from the independent model ("independent")."""
    context = config.model.context
    counts = np.unique(np.geomspace(1, config.sample_sequences, 8).round().astype(int))
    lo, hi = config.span_lengths
    index = observational.build_span_index(list(documents), min_length=lo, max_length=hi)
    sources = {"derived": models["finetunes"][config.observed_finetune_steps],
               "independent": models["independent"]}
    result = {name: np.zeros((len(sources), len(counts))) for name in
              ("span_log10_p", "retrain_z_log10_p", "retrain_rank_log10_p")}
    for s, weights in enumerate(sources.values()):
        key = jax.random.fold_in(models["bob_key"], s + 1)
        text = lm.sample(config.model, weights, key, config.sample_sequences)
        alice_ll = lm.document_log_likelihood(config.model, models["alice"], text)
        copies_ll = np.stack([lm.document_log_likelihood(config.model, w, text)
                              for w in models["copies"]])
        for c, count in enumerate(counts):
            try:
                span = observational.span_overlap_test(index, list(text[:count]),
                                                       models["position"]).log10_pvalue
            except ValueError as error:  # no indexed span occurs in so little text: no evidence
                if "same span-overlap score" not in str(error):
                    raise
                span = 0.0
            result["span_log10_p"][s, c] = span
            result["retrain_z_log10_p"][s, c] = observational.reshuffled_z_test(
                alice_ll[:count], copies_ll[:, :count]).log10_pvalue
            result["retrain_rank_log10_p"][s, c] = observational.reshuffled_rank_test(
                alice_ll[:count], copies_ll[:, :count]).log10_pvalue
    return xr.Dataset({name: (("source", "tokens"), value) for name, value in result.items()},
                      coords={"source": list(sources), "tokens": counts * context})


def first_below(log10_p: np.ndarray, tokens: np.ndarray, threshold: float = -3.0) -> int | None:
    """The smallest token count from which log10 p stays below `threshold` (None: never)."""
    below = np.asarray(log10_p) < threshold
    if not below[-1]:
        return None
    return int(tokens[len(below) - np.argmin(below[::-1]) if not below.all() else 0])


def require_demo_memory(config: DemoConfig) -> None:
    """Refuse (MemoryEstimateError) a configuration whose arrays would not fit, before any work."""
    require_memory(demo_bytes(config), f"the demo with n_documents={config.n_documents}, "
                   f"sample_sequences={config.sample_sequences}, span_lengths="
                   f"{config.span_lengths}", f"use --size mini or lower --documents (now "
                   f"{config.n_documents}) or --sample-sequences (now {config.sample_sequences})")


def run(config: DemoConfig, progress: Progress | None = None) -> xr.Dataset:
    """The whole demonstration; returns one Dataset (query and observational results, losses).
    Each stage is reported to `progress` as it starts and ends."""
    require_demo_memory(config)
    progress = Progress() if progress is None else progress
    with progress.stage("loading the stdlib corpus", "corpus_s"):
        corpus = stdlib_documents(config.model.context)
        documents, other = split_documents(corpus, (config.n_documents, config.n_other))
    models = train_models(config, documents, other, progress)
    with progress.stage(f"query test: scoring {config.n_documents} documents under "
                        f"{len(config.finetune_steps) + 3} models", "query_s"):
        query = query_tests(config, models, documents)
    with progress.stage(f"observational tests: span index, {config.sample_sequences} sampled "
                        f"texts per source, scoring", "observational_s"):
        observed = observational_tests(config, models, documents)
    timings = progress.timings
    dataset = xr.merge([query, observed])
    dataset["alice_loss"] = ("step", models["alice_losses"])
    dataset["alice_loss"].attrs["units"] = "nats per byte"
    dataset.attrs.update({
        "config": json.dumps(dataclasses.asdict(config)),
        "corpus_documents": corpus.shape[0], "corpus_bytes": int(corpus.size),
        "parameters": lm.parameter_count(models["alice"]),
        **{key: round(value, 2) for key, value in timings.items()}})
    return dataset


def summary(dataset: xr.Dataset) -> dict:
    """JSON-ready headline numbers beside the paper's."""
    tokens = dataset.tokens.values
    crossing = {f"{test}_{source}": first_below(dataset[f"{test}_log10_p"].sel(source=source),
                                                tokens)
                for test in ("span", "retrain_z", "retrain_rank")
                for source in dataset.source.values}
    return {**dataset.attrs, "config": json.loads(dataset.attrs["config"]),
            "query_log10_p": dict(zip(dataset.model.values.tolist(),
                                      dataset.query_log10_p.values.round(2).tolist(),
                                      strict=True)),
            "query_log10_p_raw": dict(zip(dataset.model.values.tolist(),
                                          dataset.query_log10_p_raw.values.round(2).tolist(),
                                          strict=True)),
            "tokens_to_p_below_1e-3": crossing,
            "paper": {"query_test": "p <= 1e-8 for all but 6 of 40+ fine-tunes (Pythia, OLMo)",
                      "reshuffled_retrain_tokens": "a few hundred",
                      "span_overlap_tokens": "hundreds of thousands"}}


def main(argv: list[str] | None = None) -> int:
    """`python -m provenance demo [--size mini|default] [--seed S] [--out-dir DIR] ...`."""
    parser = OneLineParser(prog="python -m provenance demo", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--seed", type=int, help="Alice's seed (default 0)")
    parser.add_argument("--out-dir", type=pathlib.Path, default=pathlib.Path("palimpsest-demo"))
    parser.add_argument("--documents", type=int, help="Alice's number of documents")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--copies", type=int, help="reshuffled-retrain copies K")
    parser.add_argument("--finetune-steps", type=int, nargs="+")
    parser.add_argument("--sample-sequences", type=int,
                        help="texts of `context` bytes sampled per source (observational tests)")
    args = parser.parse_args(argv)
    overrides = {name: value for name, value in (
        ("seed", args.seed), ("n_documents", args.documents), ("batch_size", args.batch_size),
        ("n_copies", args.copies), ("sample_sequences", args.sample_sequences),
        ("finetune_steps", tuple(args.finetune_steps) if args.finetune_steps else None))
        if value is not None}
    if "finetune_steps" in overrides:
        overrides["observed_finetune_steps"] = overrides["finetune_steps"][0]
    try:
        config = dataclasses.replace(SIZES[args.size], **overrides)
        check_output_folder("--out-dir", args.out_dir, OUTPUT_FILES)
        require_demo_memory(config)
    except (ValueError, TypeError) as error:  # MemoryEstimateError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    progress = Progress(sys.stderr)
    dataset = run(config, progress)
    with progress.stage(f"writing results and figures to {args.out_dir}"):
        args.out_dir.mkdir(exist_ok=True)
        dataset.to_netcdf(args.out_dir / OUTPUT_FILES[0], engine="h5netcdf")
        report = summary(dataset)
        (args.out_dir / OUTPUT_FILES[1]).write_text(json.dumps(report, indent=2))
        written = [args.out_dir / OUTPUT_FILES[0], args.out_dir / OUTPUT_FILES[1],
                   *plot(dataset, args.out_dir)]
    print(json.dumps({key: report[key] for key in
                      ("query_log10_p", "tokens_to_p_below_1e-3", "training_s")}, indent=2))
    print("wrote " + ", ".join(str(path) for path in written))
    return 0
