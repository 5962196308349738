"""Multi-modal eRank (eRank1..5, Image Reduction Ratio, Image-Text Alignment) on a tiny random LLaVA.

The model is built from configs (tiny CLIP vision tower, tiny Llama LLM), saved with a locally
built processor (CLIPImageProcessor + a locally trained tokenizer plus ``<image>``) and loaded
through ``pretrained=<dir>`` as a user would. Images are generated here (PIL).
"""

from __future__ import annotations

import ast
import json
import math

import numpy as np
import pytest
import torch

from lm_eval_erank import multimodal as mm
from lm_eval_erank.core.spectral import matrix_entropy
from lm_eval_erank.testing import tiny

from .conftest import run_cli

TEXTS = [
    "Describe the image.\nA small noisy picture with stripes.",
    "What is shown?\nRandom coloured pixels.",
    "Describe the image in detail.\nThere is nothing but noise here, in many colours.",
    "Describe it.\nNoise.",
    "What do you see?\nA wide picture of static.",
]


def _images():
    from PIL import Image

    rng = np.random.default_rng(0)
    # Non-square sizes: rotation changes what the centre crop keeps as well as the layout.
    return [Image.fromarray(rng.integers(0, 255, (40 + 4 * i, 56, 3), dtype=np.uint8)) for i in range(len(TEXTS))]


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    root = tmp_path_factory.mktemp("llava")
    tok = tiny.train_tokenizer(tiny.gold_texts() + TEXTS, root / "tok", add_bos=True)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               image_token="<image>")
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=32, patch_size=8)
    text = LlamaConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, max_position_embeddings=512)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-2, vision_feature_select_strategy="default")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    directory = root / "model"
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def loaded(tiny_llava):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_llava, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(tiny_llava)


@pytest.fixture(scope="module")
def local_mm_task(tmp_path_factory):
    """A local jsonl (image path column, instruction/response columns) and two tasks on it:
    ``local_mm`` and ``local_mm_rot90`` (task option mm_rotate: 90)."""
    directory = tmp_path_factory.mktemp("mmdata")
    (directory / "img").mkdir()
    rows = []
    for i, (image, text) in enumerate(zip(_images(), TEXTS)):
        image.save(directory / "img" / f"{i}.png")
        instruction, response = text.split("\n")
        rows.append({"image": f"{i}.png", "instruction": instruction, "response": response})
    tiny.write_jsonl(directory / "pairs.jsonl", rows)
    tasks = directory / "tasks"
    tasks.mkdir()
    common = (
        "class: !function lm_eval_erank.multimodal_tasks.MultimodalErankTask\n"
        "dataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    test: {directory / 'pairs.jsonl'}\n"
        "test_split: test\nmm_image: image\n"
        f"mm_image_root: {directory / 'img'}\n"
        "mm_text: \"{{instruction}}\\n{{response}}\"\nmetadata:\n  version: 1.0\n"
    )
    (tasks / "local_mm.yaml").write_text("task: local_mm\n" + common)
    (tasks / "local_mm_rot90.yaml").write_text("task: local_mm_rot90\nmm_rotate: 90\n" + common)
    return tasks


# ---- end to end through the CLI --------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_run(tiny_llava, local_mm_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("mmout")
    done, results, samples = run_cli(
        ["--model", "hf-multimodal-erank", "--model_args", f"pretrained={tiny_llava},dtype=float32",
         "--tasks", "local_mm,local_mm_rot90", "--include_path", str(local_mm_task),
         "--batch_size", "2", "--log_samples"],
        out, module="lm_eval",  # lm-eval's own command: the plugin activates itself
    )
    return results, samples


def test_cli_reports_every_metric_with_stderr(cli_run):
    results, _ = cli_run
    row = results["results"]["local_mm"]
    for name in ("erank1", "erank2", "erank3", "erank4", "erank5", "image_reduction_ratio", "image_text_alignment"):
        assert math.isfinite(row[f"{name},none"]), name
        assert row[f"{name}_stderr,none"] > 0, name
    assert row["mm_excluded,none"] == 0
    assert results["config"]["erank_rotate"] == 0


def test_cli_ratios_recomputed_from_the_five_eranks(cli_run):
    row = cli_run[0]["results"]["local_mm"]
    e = [row[f"erank{i},none"] for i in range(1, 6)]
    assert row["image_reduction_ratio,none"] == pytest.approx((e[0] - e[1]) / e[0], rel=1e-12)
    assert row["image_text_alignment,none"] == pytest.approx(np.mean(e[2:]) / max(e[2:]), rel=1e-12)


def test_cli_per_sample_entropies_match_the_api(cli_run, loaded):
    model, processor = loaded
    _, samples = cli_run
    docs = sorted(samples["local_mm"], key=lambda s: s["doc_id"])
    api = mm.alignment_eranks(model, processor, _images(), TEXTS, batch_size=3)
    for sample, row in zip(docs, api.rows):
        served = ast.literal_eval(sample["resps"][0][0])
        for key in mm.ENTROPY_KEYS:
            assert served[key] == pytest.approx(row[key], abs=1e-6), key
        assert sample["erank1"] == pytest.approx(math.exp(served["entropy1"]), rel=1e-12)
        assert sample["image_text_alignment"] == pytest.approx([math.exp(served[f"entropy{i}"]) for i in (3, 4, 5)])


def test_cli_rotation_task_option(cli_run):
    results, samples = cli_run
    plain, rotated = results["results"]["local_mm"], results["results"]["local_mm_rot90"]
    for i in (1, 2, 3, 5):
        assert plain[f"erank{i},none"] != pytest.approx(rotated[f"erank{i},none"], rel=1e-9), i
    assert plain["erank4,none"] == pytest.approx(rotated["erank4,none"], rel=1e-9)
    arguments = samples["local_mm_rot90"][0]["arguments"]
    assert "'rotate': 90" in json.dumps(arguments) or '"rotate": 90' in json.dumps(arguments)


# ---- the Python API ----------------------------------------------------------------------------


def test_rotation_changes_image_side_only(loaded):
    model, processor = loaded
    base = mm.alignment_eranks(model, processor, _images(), TEXTS)
    turned = mm.alignment_eranks(model, processor, _images(), TEXTS, rotate=90)
    for key in ("entropy1", "entropy2", "entropy3", "entropy5"):
        assert all(abs(a - b) > 1e-9 for a, b in zip(base.entropies[key], turned.entropies[key])), key
    assert turned.entropies["entropy4"] == base.entropies["entropy4"]
    # Rotating by 90 four times is the identity.
    full = mm.alignment_eranks(model, processor, [mm.rotate_image(im, 270) for im in _images()], TEXTS, rotate=90)
    assert full.entropies == base.entropies


def test_entropies_equal_direct_recomputation(loaded):
    """Each sample alone, from the model's own modules and hidden states (no hooks, no padding)."""
    model, processor = loaded
    result = mm.alignment_eranks(model, processor, _images(), TEXTS, batch_size=2)
    config = model.config
    image_id = config.image_token_id
    with torch.no_grad():
        for i, (image, text) in enumerate(zip(_images(), TEXTS)):
            pixels = processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
            vision = model.model.vision_tower(pixels, output_hidden_states=True)
            features = vision.hidden_states[config.vision_feature_layer][0, 1:]  # CLS dropped ("default")
            assert features.shape[0] == 16
            projected = model.model.multi_modal_projector(features)
            expected = {"entropy1": matrix_entropy(features).item(), "entropy2": matrix_entropy(projected).item()}
            for key, prompt, use_image in (("entropy3", "<image>", True), ("entropy4", text, False),
                                           ("entropy5", "<image>\n" + text, True)):
                enc = processor(text=prompt, images=image if use_image else None, return_tensors="pt")
                out = model(**enc, output_hidden_states=True)
                states = out.hidden_states[-1][0]
                mask = enc["input_ids"][0] == image_id if key == "entropy3" else None
                expected[key] = matrix_entropy(states, mask).item()
            for key, value in expected.items():
                assert result.entropies[key][i] == pytest.approx(value, abs=1e-6), (i, key)
            assert result.rows[i]["n_image_tokens"] == 16


def test_scores_from_eranks_and_bootstrap(loaded):
    model, processor = loaded
    result = mm.alignment_eranks(model, processor, _images(), TEXTS)
    s = result.scores
    for k in range(1, 6):
        assert s[f"erank{k}"] == pytest.approx(math.exp(np.mean(result.entropies[f"entropy{k}"])), rel=1e-12)
    assert s["image_reduction_ratio"] == pytest.approx((s["erank1"] - s["erank2"]) / s["erank1"], rel=1e-12)
    e = [s["erank3"], s["erank4"], s["erank5"]]
    assert s["image_text_alignment"] == pytest.approx(sum(e) / 3 / max(e), rel=1e-12)
    pairs = [mm.per_sample_values(r)["image_reduction_ratio"] for r in result.rows]
    assert mm.image_reduction_ratio_stderr(pairs, 500) > 0
    assert mm.image_reduction_ratio_stderr([pairs[0]] * 5, 500) == pytest.approx(0.0, abs=1e-15)
    triples = [mm.per_sample_values(r)["image_text_alignment"] for r in result.rows]
    assert mm.image_text_alignment_stderr(triples, 500) > 0


def test_undefined_entropy_is_excluded():
    row = {"entropy1": 2.0, "entropy2": 1.0, "entropy3": 1.5, "entropy4": None, "entropy5": 2.5}
    values = mm.per_sample_values(row)
    assert values["erank4"] is None and values["image_text_alignment"] is None
    assert values["image_reduction_ratio"] == [math.exp(2.0), math.exp(1.0)]
    assert values["mm_excluded"] == 1


def test_unsupported_architecture_is_a_clear_error(loaded):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, vocab_size=50))
    with pytest.raises(mm.UnsupportedArchitectureError, match="LlamaForCausalLM.*LlavaForConditionalGeneration.*LlavaNext"):
        mm.alignment_eranks(model, loaded[1], _images()[:1], TEXTS[:1])


def test_rotation_must_be_a_multiple_of_90():
    with pytest.raises(ValueError, match="multiple of 90"):
        mm.check_rotation(45)


def test_models_without_the_request_name_the_right_model():
    from lm_eval_erank.harness.activation import register

    register()
    from lm_eval.api.model import LM

    with pytest.raises(NotImplementedError, match="hf-multimodal-erank"):
        LM.erank_multimodal(object(), [])


# ---- the shipped paper tasks (offline: config and helpers only) -------------------------------


def test_shipped_multimodal_tasks_are_indexed():
    from lm_eval_erank.harness.activation import register
    from lm_eval_erank.harness.task_dirs import task_dir

    register()
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    names = set(TaskManager().all_tasks)
    for name in ("erank_mm_detail_23k", "erank_mm_detail_23k_rot90", "erank_mm_cc_sbu_align",
                 "erank_mm_cc_sbu_align_rot90"):
        assert name in names
        config = load_yaml(task_dir() / f"{name}.yaml", resolve_func=True)
        assert config["mm_rotate"] == (90 if name.endswith("rot90") else 0)


def test_paper_task_texts(monkeypatch, tmp_path):
    from lm_eval_erank import multimodal_tasks as mt

    doc = {"id": "1", "image": "000000000001.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat is this photo about?"},
        {"from": "gpt", "value": "A cat on a sofa."}]}
    assert mt.llava_instruct_text(doc) == "What is this photo about?\nA cat on a sofa."
    assert mt.cc_sbu_text({"image_id": "2", "caption": "A dog. "}) == "Describe this image in detail.\nA dog."
    monkeypatch.setenv("LM_EVAL_ERANK_CC_SBU_DIR", str(tmp_path))
    assert mt.cc_sbu_image({"image_id": "2"}) == str(tmp_path / "image" / "2.jpg")


# ---- LLaVA-NeXT (anyres tiles) ------------------------------------------------------------------


def test_llava_next_tiles_are_split_per_image(tmp_path):
    """eRank1/2 of a LLaVA-NeXT image use all its tiles (base + crops); images with different tile
    counts in one batch give the same entropies as each alone and as a direct recomputation."""
    from PIL import Image
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    tok = tiny.train_tokenizer(tiny.gold_texts(), tmp_path / "tok", add_bos=True)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    pins = [[32, 32], [32, 64], [64, 32]]
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                                image_grid_pinpoints=pins),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        image_token="<image>")
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, image_size=32, patch_size=8),
        text_config=LlamaConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, vocab_size=len(tok), pad_token_id=tok.pad_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=pins,
        vision_feature_layer=-2, vision_feature_select_strategy="default")
    torch.manual_seed(0)
    model = LlavaNextForConditionalGeneration(config).eval()
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)) for shape in
              ((32, 32, 3), (40, 80, 3), (80, 40, 3))]
    texts = TEXTS[:3]
    batch = mm.alignment_eranks(model, processor, images, texts, batch_size=3)
    assert [r["n_vision_tokens"] for r in batch.rows] == [32, 48, 48]  # 2 or 3 tiles of 16 patches
    with torch.no_grad():
        for i, image in enumerate(images):
            alone = mm.alignment_eranks(model, processor, [image], [texts[i]])
            for key in mm.ENTROPY_KEYS:
                assert batch.rows[i][key] == pytest.approx(alone.rows[0][key], abs=1e-6)
            pixels = processor.image_processor(images=image, return_tensors="pt")["pixel_values"][0]
            tiles = pixels[: batch.rows[i]["n_vision_tokens"] // 16]
            hidden = model.model.vision_tower(tiles, output_hidden_states=True).hidden_states[-2][:, 1:]
            features = hidden.reshape(-1, hidden.shape[-1])
            assert batch.rows[i]["entropy1"] == pytest.approx(matrix_entropy(features).item(), abs=1e-6)
            projected = model.model.multi_modal_projector(features)
            assert batch.rows[i]["entropy2"] == pytest.approx(matrix_entropy(projected).item(), abs=1e-6)


def test_alignment_eranks_checks_its_arguments_before_any_forward(loaded):
    model, processor = loaded
    images = _images()
    with pytest.raises(TypeError, match="texts must be a sequence of strings"):
        mm.alignment_eranks(model, processor, images[:1], TEXTS[0])
    with pytest.raises(ValueError, match="texts is empty"):
        mm.alignment_eranks(model, processor, [], [])
    with pytest.raises(TypeError, match="images must be a sequence.*single"):
        mm.alignment_eranks(model, processor, images[0], TEXTS[:1])
    with pytest.raises(ValueError, match="2 images but 1 texts"):
        mm.alignment_eranks(model, processor, images[:2], TEXTS[:1])
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        mm.alignment_eranks(model, processor, images[:1], TEXTS[:1], batch_size=0)
    with pytest.raises(ValueError, match="rotate must be a multiple of 90"):
        mm.alignment_eranks(model, processor, images[:1], TEXTS[:1], rotate="ninety")
    with pytest.raises(TypeError, match="processor must be the model's loaded processor"):
        mm.alignment_eranks(model, "llava-hf/llava-1.5-7b-hf", images[:1], TEXTS[:1])


def test_alignment_eranks_example_runs(loaded):
    import doctest

    model, processor = loaded
    globs = {"model": model, "processor": processor, "images": _images(), "alignment_eranks": mm.alignment_eranks}
    (test,) = doctest.DocTestFinder().find(mm.alignment_eranks, globs=globs)
    assert test.examples and doctest.DocTestRunner().run(test).failed == 0
