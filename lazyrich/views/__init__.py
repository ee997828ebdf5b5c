"""The presentation layer: plots, the figure gallery and the `lazyrich` command line."""
