"""provenance: rank-correlation tests of model provenance from training order.

Kuditipudi et al. (2025), palimpsestic membership inference: a model remembers its late training
data best, so the correlation between a suspect model's per-example log-likelihoods and Alice's
training order tests whether the suspect derives from Alice's model.
"""

from provenance.stats import (
    CorrelationResult,
    fisher_combination,
    holm,
    pearson,
    rankdata,
    spearman,
    stouffer_combination,
)

__all__ = ["CorrelationResult", "fisher_combination", "holm", "pearson", "rankdata", "spearman",
           "stouffer_combination"]
