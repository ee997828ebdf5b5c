"""provenance: rank-correlation tests of model provenance from training order.

Kuditipudi et al. (2025), palimpsestic membership inference: a model remembers its late training
data best, so the correlation between a suspect model's per-example log-likelihoods and Alice's
training order tests whether the suspect derives from Alice's model.
"""

from provenance import simulate
from provenance.combine import combine_pvalues, fisher_combination, holm, stouffer_combination
from provenance.kendall_tau import count_inversions, kendall
from provenance.likelihoods import Likelihoods, load_likelihoods
from provenance.observational import (
    RetrainResult,
    SpanIndex,
    SpanOverlapResult,
    build_span_index,
    longest_matches,
    reshuffled_rank_test,
    reshuffled_z_test,
    span_overlap_scores,
    span_overlap_test,
)
from provenance.query import QueryResult, query_test
from provenance.score import Scores, score
from provenance.simulate import Palimpsest, palimpsest, power_curve
from provenance.stats import CorrelationResult, pearson, rankdata, spearman
from provenance.suffix_index import SuffixIndex, build_suffix_index, open_suffix_index

__all__ = ["CorrelationResult", "Palimpsest", "QueryResult", "RetrainResult", "SpanIndex",
           "SpanOverlapResult", "SuffixIndex", "build_span_index", "build_suffix_index",
           "combine_pvalues", "count_inversions",
           "Likelihoods", "Scores", "fisher_combination", "holm", "kendall", "load_likelihoods",
           "longest_matches", "open_suffix_index", "palimpsest", "pearson",
           "power_curve", "query_test", "rankdata", "reshuffled_rank_test", "reshuffled_z_test",
           "score", "simulate", "span_overlap_scores", "span_overlap_test", "spearman",
           "stouffer_combination"]
