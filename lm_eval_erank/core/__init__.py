"""The pure core: spectra, aggregation, representations, the random twin, M0's cache, argument
checks, results and the one metric table. Nothing here imports lm-eval (``tests/test_layers.py``)."""
