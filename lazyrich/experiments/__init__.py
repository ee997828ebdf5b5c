"""Registered experiments; importing this package registers every built-in one."""

from lazyrich.experiments import grokking, teacher
from lazyrich.experiments.base import (
    Experiment,
    Output,
    Parameter,
    get_experiment,
    register,
    registered,
)

__all__ = ["Experiment", "Output", "Parameter", "get_experiment", "grokking", "register",
           "registered", "teacher"]
