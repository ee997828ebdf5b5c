"""Mean-field (DMFT) and kernel theory of lazy and rich training, compared with lazyrich sweeps."""
