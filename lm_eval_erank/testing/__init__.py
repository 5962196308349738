"""Helpers for the project's tests and studies, not the product's runtime: nothing in the plugin
imports this package. ``real_models``: the real pretrained models that ship in registry wheels."""
