"""Metric registration with lm-eval and the stderr hook."""

from __future__ import annotations

import math

import lm_eval.evaluator_utils as evaluator_utils
from lm_eval.api import registry

from lm_eval_erank.core import aggregation as agg
from lm_eval_erank.core.metrics import AGGREGATION_PREFIX, MAX_BOOTSTRAP_ITERS, METRICS, per_document_values
from lm_eval_erank.harness.activation import register


def test_every_metric_and_aggregation_is_registered_and_builtins_survive():
    register()
    for spec in METRICS:
        assert spec.name in registry.metric_registry
        assert registry.get_aggregation(AGGREGATION_PREFIX + spec.name) is not None
    assert registry.get_aggregation("mean") is not None and "hf" in registry.model_registry


def test_stderr_hook_caps_bootstrap_draws_and_leaves_builtins_alone():
    register()
    items = [(2.0 + i % 5, 1.5 + i % 3) for i in range(50)]
    stderr = evaluator_utils.stderr_for_metric(registry.get_aggregation(AGGREGATION_PREFIX + "diff_erank"), 100_000)
    assert stderr(items) == agg.difference_of_geometric_means_stderr(items, MAX_BOOTSTRAP_ITERS)
    assert evaluator_utils.stderr_for_metric(registry.get_aggregation(AGGREGATION_PREFIX + "diff_erank"), 0) is None
    mean_stderr = evaluator_utils.stderr_for_metric(registry.get_aggregation("mean"), 100_000)
    assert abs(mean_stderr([0.0, 1.0, 0.0, 1.0]) - 0.288675) < 1e-5


def test_per_document_values_map_undefined_to_none():
    values = per_document_values({"entropy_m1": None, "entropy_m0": float("nan"), "loss_m1": 1.0, "loss_m0": 3.0,
                                  "n_tokens": 2, "truncated": False, "layers": {4: {"entropy_m1": 1.0, "entropy_m0": 2.0}}})
    assert values["diff_erank"] is None and values["erank_excluded"] == 1 and values["reduced_loss"] == 2.0
    assert values["erank_m1_layer4"] == math.exp(1.0) and values["diff_erank_layer4"] == [math.exp(2.0), math.exp(1.0)]


def test_every_request_type_of_ours_has_a_clear_error_on_other_models():
    from lm_eval.api.model import LM

    from lm_eval_erank.multimodal_tasks import MULTIMODAL_REQUEST
    from lm_eval_erank.harness.request_types import REQUEST_SERVERS
    from lm_eval_erank.tasks import ERANK_REQUEST

    register()
    assert set(REQUEST_SERVERS) == {ERANK_REQUEST, MULTIMODAL_REQUEST}
    for request_type, (_, model, _) in REQUEST_SERVERS.items():
        try:
            getattr(LM, request_type)(object(), [])
        except NotImplementedError as err:
            assert f"--model {model}" in str(err)
        else:
            raise AssertionError(f"{request_type} did not raise")
