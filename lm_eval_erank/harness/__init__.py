"""Everything that touches lm-eval: its internals (``lm_eval_internals``, the only module that
reaches past lm-eval's public API), start-up and registration, the ``hf-erank`` and
``hf-multimodal-erank`` models, the ``erank_*`` tasks and the ``erank_<name>`` wrapping, metric
registration, the result writers, the CLI and the entry points."""
