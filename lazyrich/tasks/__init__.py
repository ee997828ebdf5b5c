"""Data for the experiments: Gaussian inputs with polynomial single-index targets."""

from lazyrich.tasks.polynomial import (
    gaussian_moment,
    polynomial_coefficients,
    quadratic_model_population_loss,
    single_index_target,
)

__all__ = [
    "gaussian_moment",
    "polynomial_coefficients",
    "quadratic_model_population_loss",
    "single_index_target",
]
