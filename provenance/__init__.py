"""provenance: rank-correlation tests of model provenance from training order.

Kuditipudi et al. (2025), palimpsestic membership inference: a model remembers its late training
data best, so the correlation between a suspect model's per-example log-likelihoods and Alice's
training order tests whether the suspect derives from Alice's model.
"""

from provenance import simulate
from provenance.combine import combine_pvalues, fisher_combination, holm, stouffer_combination
from provenance.kendall_tau import count_inversions, kendall
from provenance.query import QueryResult, query_test
from provenance.stats import CorrelationResult, pearson, rankdata, spearman

__all__ = ["CorrelationResult", "QueryResult", "combine_pvalues", "count_inversions",
           "fisher_combination", "holm", "kendall", "pearson", "query_test", "rankdata",
           "simulate", "spearman", "stouffer_combination"]
