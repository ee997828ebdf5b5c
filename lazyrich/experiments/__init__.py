"""Registered experiments; importing this package registers every built-in one."""

from lazyrich.experiments import grokking, linear_rank, rnn_rank, teacher
from lazyrich.experiments.base import (
    Experiment,
    Output,
    Parameter,
    get_experiment,
    register,
    registered,
)

__all__ = ["Experiment", "Output", "Parameter", "get_experiment", "grokking", "linear_rank",
           "register", "registered", "rnn_rank", "teacher"]
