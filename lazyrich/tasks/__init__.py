"""Data for the experiments.

Submodules: `polynomial` (Gaussian inputs with polynomial single-index targets, grokking),
`digits` (scikit-learn's 8x8 digits and a user's MNIST from .npz or idx files), `modular`
(modular addition pairs, one-hot and token encodings), `cognitive` (2AF / DMS / CXT trials in
JAX, rank sweeps) and `committee` (soft-committee teacher and its Gaussian integrals). The most
used loaders are re-exported here.
"""

from lazyrich.tasks.digits import ImageDataset, load_digits, load_mnist
from lazyrich.tasks.polynomial import (
    gaussian_moment,
    polynomial_coefficients,
    quadratic_model_population_loss,
    single_index_target,
)

__all__ = [
    "ImageDataset",
    "gaussian_moment",
    "load_digits",
    "load_mnist",
    "polynomial_coefficients",
    "quadratic_model_population_loss",
    "single_index_target",
]
