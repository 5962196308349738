"""What the scripts under ``scripts/`` share, and the studies' own parts.

Shared (one place each):

- ``environment``: the offline set-up and where the data beside the checkout lives;
- ``shapes``: the model shapes the benchmarks build from configs, with their tokenizer;
- ``texts``: texts read from the local data (PIQA gold answers, Gutenberg passages);
- ``tasks``: local copies of the shipped tasks pointed at the local data;
- ``formatting``: numbers in tables, markdown tables, the studies' JSON layout;
- ``records``: the machine and the package versions a study ran on.

A study's own modules live in a sub-package named after its script (``twin_collapse``,
``train_family``): catalogue or data, measurement, report. Statistics come from
``lm_eval_erank.core.statistics``, batching from ``lm_eval_erank.core.representations`` and
comparisons of models (tables, figures) from ``lm_eval_erank.compare``.

A script run as ``python scripts/<name>.py`` has ``scripts/`` on ``sys.path``; one imported by
its file path (the tests do) puts its folder there first. Importing this package imports
neither torch nor lm-eval.
"""
