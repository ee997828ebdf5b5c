"""Registered experiments; importing this package registers every built-in one."""

from lazyrich.experiments import digits, grokking, linear_rank, modular, rnn_rank, teacher
from lazyrich.experiments.base import (
    Experiment,
    Output,
    Parameter,
    get_experiment,
    register,
    registered,
)

__all__ = ["Experiment", "Output", "Parameter", "digits", "get_experiment", "grokking",
           "linear_rank", "modular", "register", "registered", "rnn_rank", "teacher"]
