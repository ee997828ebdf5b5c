"""The measurement layer: losses, weight change, empirical NTKs, alignments, effective rank.

Pure functions of arrays, used by the experiments inside the engine and by users on results.
"""
