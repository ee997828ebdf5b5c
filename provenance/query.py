"""The query-setting provenance test: Bob's per-example log-likelihoods against Alice's order.

Kuditipudi et al. (2025), query setting. Alice trained on n examples in a uniformly random order;
`order[i]` is the step (or batch index) at which example i was seen, so examples of one batch
tie. Bob's model (or each of several suspect models) scores every example, `loglik[m, i]`.
Palimpsestic memorisation makes late examples more likely under a model derived from Alice's, so
the test statistic is a rank correlation phi = corr(order, score) with

    score = loglik / n_tokens - reference / n_tokens    (both optional)

and H0 (Bob's model is independent of Alice's shuffle) makes `order` a uniform random
permutation of itself given the scores: the permutation distribution of phi is its exact null,
whatever the data. Subtracting a reference model's log-likelihood removes the per-example
difficulty that every model shares and raises power without touching validity, because the
reference does not see Alice's order. One-sided ("greater": later examples more likely) by
default.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from provenance.combine import holm
from provenance.kendall_tau import kendall
from provenance.stats import CorrelationResult, pearson, spearman

STATISTICS = ("spearman", "kendall", "pearson")


@dataclasses.dataclass(frozen=True)
class QueryResult:
    """Outcome of `query_test`; statistic / pvalue / log10_pvalue are (models,) or scalars."""

    statistic: np.ndarray | float
    pvalue: np.ndarray | float
    log10_pvalue: np.ndarray | float
    n: int
    method: str
    alternative: str
    statistic_name: str
    reference_normalised: bool
    models: tuple[str, ...] | None = None

    def __str__(self) -> str:
        head = (f"query test: {self.statistic_name} of log-likelihood"
                f"{' - reference' if self.reference_normalised else ''} vs training order, "
                f"n = {self.n}, {self.method} p-value, alternative = {self.alternative}")
        if np.ndim(self.statistic) == 0:
            return (f"{head}\n  {self.statistic_name} = {float(self.statistic):.6g}, "
                    f"p = {float(self.pvalue):.3g} (log10 p = {float(self.log10_pvalue):.2f})")
        rows = [f"  {name:<24} {self.statistic_name} = {s:+.6f}  p = {p:.3g}  "
                f"log10 p = {lp:.2f}"
                for name, s, p, lp in zip(self._model_names(), self.statistic, self.pvalue,
                                          self.log10_pvalue, strict=True)]
        return "\n".join([head, *rows])

    def _model_names(self) -> tuple[str, ...]:
        return self.models or tuple(str(i) for i in range(np.size(self.statistic)))

    def to_dict(self) -> dict:
        """Plain-Python form (lists and floats), e.g. for JSON."""
        def plain(value):
            return np.asarray(value, np.float64).tolist()

        return {"statistic_name": self.statistic_name, "statistic": plain(self.statistic),
                "pvalue": plain(self.pvalue), "log10_pvalue": plain(self.log10_pvalue),
                "n": self.n, "method": self.method, "alternative": self.alternative,
                "reference_normalised": self.reference_normalised,
                "models": list(self._model_names()) if np.ndim(self.statistic) else None}

    def to_dataset(self):
        """xarray.Dataset over a `model` dimension (scalars without one); batched results also
        carry `pvalue_holm`, the Holm-adjusted p-values across models."""
        import xarray as xr

        attrs = {"n": self.n, "method": self.method, "alternative": self.alternative,
                 "statistic_name": self.statistic_name,
                 "reference_normalised": int(self.reference_normalised)}
        if np.ndim(self.statistic) == 0:
            return xr.Dataset({name: ((), float(getattr(self, name)))
                               for name in ("statistic", "pvalue", "log10_pvalue")}, attrs=attrs)
        variables = {name: ("model", np.asarray(getattr(self, name)))
                     for name in ("statistic", "pvalue", "log10_pvalue")}
        variables["pvalue_holm"] = ("model", holm(self.pvalue))
        return xr.Dataset(variables, coords={"model": list(self._model_names())}, attrs=attrs)


def _as_matrix(name: str, values, max_ndim: int = 2) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if array.ndim == 0 or array.ndim > max_ndim:
        raise ValueError(f"{name} must have shape (n,) or (models, n); got shape {array.shape}")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} non-finite values (NaN or inf), first at "
                         f"index {np.argwhere(bad)[0].tolist()}; drop or impute those examples")
    return array


def _check_length(name: str, array: np.ndarray, n: int) -> None:
    if array.shape[-1] != n:
        raise ValueError(f"{name} has {array.shape[-1]} examples (shape {array.shape}) but "
                         f"loglik has {n}; each must give one value per training example")


def query_test(loglik, order, reference=None, *, statistic: str = "spearman",
               method: str = "asymptotic", alternative: str = "greater", n_tokens=None,
               models=None, n_permutations: int = 10_000, seed: int = 0) -> QueryResult:
    """Test whether suspect model(s) derive from Alice's model, from her training order.

    Args:
        loglik: (n,) or (models, n) log-likelihoods (nats) of Alice's n training examples under
            each suspect model.
        order: (n,) training step or batch index of each example (ties allowed), or
            (models, n) if the examples differ per model.
        reference: optional (n,) or (models, n) log-likelihoods under a reference model that
            never saw Alice's order; the test uses loglik - reference.
        statistic: "spearman" (the paper's), "kendall" or "pearson".
        method: "asymptotic", "exact" or "permutation" (pearson: asymptotic only).
        alternative: "greater" (later examples more likely: the provenance direction), "less"
            or "two-sided".
        n_tokens: optional (n,) token counts; scores become per-token log-likelihoods.
        models: optional names of the models (length models).
        n_permutations, seed: size and seed of the permutation test.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r} is not allowed; statistic must be one of "
                         f"{STATISTICS}")
    if statistic == "pearson" and method != "asymptotic":
        raise ValueError(f"method={method!r} is not available for statistic='pearson'; "
                         f"use method='asymptotic' or statistic='spearman'")
    score = _as_matrix("loglik", loglik)
    n = score.shape[-1]
    order_array = _as_matrix("order", order)
    _check_length("order", order_array, n)
    if order_array.ndim == 2 and order_array.shape != score.shape:
        raise ValueError(f"order has shape {order_array.shape}; it must be (n,) or match "
                         f"loglik's shape {score.shape}")
    if reference is not None:
        reference_array = _as_matrix("reference", reference)
        _check_length("reference", reference_array, n)
        score = score - reference_array
    if n_tokens is not None:
        tokens = _as_matrix("n_tokens", n_tokens, max_ndim=1)
        _check_length("n_tokens", tokens, n)
        if np.any(tokens <= 0):
            raise ValueError("n_tokens must be positive token counts; found "
                             f"{float(np.min(tokens))!r}")
        score = score / tokens
    if n < 3:
        raise ValueError(f"loglik has n={n} examples; the test needs at least 3")
    if np.any(np.ptp(order_array, axis=-1) == 0):
        raise ValueError("order is constant (every example at the same step); the test needs "
                         "examples from at least two steps")
    constant = np.flatnonzero(np.ptp(score.reshape(-1, n), axis=-1) == 0)
    if constant.size:
        raise ValueError(f"loglik{' - reference' if reference is not None else ''} is constant "
                         f"for model(s) {constant.tolist()}; a constant score carries no evidence")
    if models is not None:
        if isinstance(models, str | bytes) or not hasattr(models, "__iter__"):
            raise TypeError(f"models={models!r} must be a list of names, one per row of "
                            f"loglik (e.g. models=[{models!r}]), not a "
                            f"{type(models).__name__}")
        models = tuple(str(name) for name in models)
        if score.ndim != 2 or len(models) != score.shape[0]:
            raise ValueError(f"models has {len(models)} names but loglik has shape "
                             f"{score.shape}; give one name per row of a (models, n) loglik")
    options = {"alternative": alternative}
    if statistic != "pearson":
        options.update(method=method, n_permutations=n_permutations, seed=seed)
    test = {"spearman": spearman, "kendall": kendall, "pearson": pearson}[statistic]
    result: CorrelationResult = test(order_array, score, **options)
    return QueryResult(result.statistic, result.pvalue, result.log10_pvalue, result.n,
                       result.method, result.alternative, statistic, reference is not None,
                       models)
