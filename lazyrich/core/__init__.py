"""The engine layer: grids of runs, chunked batched execution, stores, labelled results.

`engine.sweep` turns keyword arguments (`grid`) into chunks of runs (`chunks`), runs them in
this process or on Ray (`distributed`), writes them to a store as they finish (`store`) and
labels the result (`labels`, `io`). `init` and `sampling` are the initialisations and random
draws the experiments share; `checks` validates values and memory at the public boundary.
"""
