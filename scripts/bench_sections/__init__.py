"""The sections of ``scripts/bench.py``: one module per group of measurements, sharing its clock.

- ``clock``: the clock of every measurement and the timing instruments;
- ``models``: the data, the tokenizer and model, the LM instances, the texts;
- ``pipeline``: (a) our pipeline, (b) the paper's reference pipeline;
- ``harness``: (c) standard vs erank tasks, (e) ``batch_size=auto``, (h) K twins, (i) ``erank_<name>``;
- ``m0``: (d) building M0 vs loading M1, (f) M0's results cache, (g) memory with ``m0_swap``;
- ``report``: the machine, the verdicts and the printed table.
"""
