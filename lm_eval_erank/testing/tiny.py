"""Tiny models and fixture data for the tests, the studies and the offline example (not the
product's runtime: the plugin never imports this module).

- Documents in the hub schemas of PIQA, OpenBookQA and WinoGrande (``PIQA_DOCS``, ``OBQA_DOCS``,
  ``WINOGRANDE_DOCS``, as rows: ``piqa_rows()``, ...) and their gold texts (``gold_texts()``).
- Task YAMLs pointing the shipped ``erank_*`` tasks (and lm-eval's standard ones) at local json
  files: ``write_local_tasks``, ``write_local_lm_tasks``, ``write_jsonl``.
- A byte-level BPE tokenizer trained on a few texts (``train_tokenizer``) and tiny GPT-2-, Llama-
  or OPT-shaped models from configs (``tiny_config``, ``build_tiny_model``, ``train_briefly``),
  saved for ``pretrained=<dir>`` as a user's model would be.

Everything is deterministic (seeded), so the example and the tests build the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..harness.lm_eval_internals import lm_eval_tasks_dir
from ..harness.task_dirs import task_dir


def _piqa_rows(block: str) -> list[tuple[str, str, str, int]]:
    """(goal, sol1, sol2, label) from ``goal | sol1 | sol2 | label`` lines."""
    rows = [[field.strip() for field in line.split("|")] for line in block.strip().splitlines()]
    return [(goal, sol1, sol2, int(label)) for goal, sol1, sol2, label in rows]


PIQA_DOCS = _piqa_rows("""
    How do I keep bread fresh? | Store it in a sealed bag at room temperature. | Leave it open in the sun all day. | 0
    How can I cool a hot drink quickly? | Pour it into a hot pan on the stove. | Stir in a few ice cubes. | 1
    How do I open a stuck jar lid? | Run the lid under hot water, then twist. | Put the jar in the freezer overnight. | 0
    How do I dry wet shoes? | Fill them with dry newspaper and leave them. | Soak them in a bucket of water. | 0
    How do I clean a greasy pan? | Rub it with dry sand only. | Wash it with hot soapy water. | 1
    How do I stop a door from squeaking? | Oil the hinges with a few drops. | Paint the door a darker colour. | 0
    How do I keep cut apples from browning? | Brush them with lemon juice. | Leave them in a warm room. | 0
    How do I find a small leak in a tyre? | Spray soapy water and look for bubbles. | Drive faster on the highway. | 0
    How can I remove a splinter? | Pull it out gently with clean tweezers. | Push it deeper with a finger. | 0
    How do I water a plant while away? | Turn the plant upside down. | Use a bottle with a slow drip. | 1
    How do I soften hard butter? | Grate it or leave it near a warm oven. | Put it in the freezer for an hour. | 0
    How do I untangle a necklace? | Pull both ends as hard as possible. | Add a drop of oil and tease knots apart with a pin. | 1
""")

OBQA_DOCS = [
    ("The sun is a source of", ["ice", "light", "sound", "rock"], "B"),
    ("A plant needs water and", ["darkness", "plastic", "sunlight", "noise"], "C"),
    ("Metal is a good conductor of", ["heat", "wood", "paper", "silence"], "A"),
    ("Frozen water is called", ["steam", "ice", "sand", "air"], "B"),
    ("An animal that can fly is a", ["fish", "worm", "bird", "snail"], "C"),
    ("The moon orbits the", ["earth", "sun only", "mars", "comet"], "A"),
    ("A magnet attracts", ["glass", "iron", "wood", "water"], "B"),
    ("Rain falls from", ["rocks", "trees", "clouds", "soil"], "C"),
    ("Boiling water turns into", ["steam", "ice", "salt", "metal"], "A"),
    ("Seeds grow into", ["stones", "plants", "clouds", "shells"], "B"),
]

WINOGRANDE_DOCS = [
    ("The cup fell off the table because _ was too close to the edge.", "the cup", "the table", "1"),
    ("Anna lent Maria a pen because _ had forgotten her own.", "Anna", "Maria", "2"),
    ("The ice melted in the sun because _ was warm.", "the ice", "the sun", "2"),
    ("Tom gave the book to Sam because _ had finished reading it.", "Tom", "Sam", "1"),
    ("The bag was heavier than the box because _ was full of stones.", "the bag", "the box", "1"),
    ("The dog chased the cat until _ climbed a tree to escape.", "the dog", "the cat", "2"),
    ("Lisa asked Kate for help because _ knew the answer.", "Lisa", "Kate", "2"),
    ("The road was closed because _ was flooded after the storm.", "the road", "the bridge", "1"),
]


def piqa_rows() -> list[dict]:
    """``PIQA_DOCS`` in PIQA's hub schema.

    >>> rows = piqa_rows()
    >>> len(rows), rows[0]["goal"], rows[0]["label"]
    (12, 'How do I keep bread fresh?', 0)
    """
    return [{"goal": g, "sol1": a, "sol2": b, "label": y} for g, a, b, y in PIQA_DOCS]


def openbookqa_rows() -> list[dict]:
    """``OBQA_DOCS`` in OpenBookQA's hub schema.

    >>> row = openbookqa_rows()[0]
    >>> row["question_stem"], row["choices"]["label"], row["answerKey"]
    ('The sun is a source of', ['A', 'B', 'C', 'D'], 'B')
    """
    labels = ["A", "B", "C", "D"]
    return [
        {"id": f"ex-{i}", "question_stem": stem, "choices": {"text": texts, "label": labels}, "answerKey": key}
        for i, (stem, texts, key) in enumerate(OBQA_DOCS)
    ]


def winogrande_rows() -> list[dict]:
    """``WINOGRANDE_DOCS`` in WinoGrande's hub schema.

    >>> row = winogrande_rows()[1]
    >>> row["option2"], row["answer"]
    ('Maria', '2')
    """
    return [{"sentence": s, "option1": a, "option2": b, "answer": y} for s, a, b, y in WINOGRANDE_DOCS]


def gold_texts() -> list[str]:
    """The gold sequences the erank tasks feed (the training text of the example model): the
    PIQA, then the OpenBookQA, then the WinoGrande documents.

    >>> texts = gold_texts()
    >>> len(texts), texts[len(PIQA_DOCS)], texts[-1]
    (30, 'The sun is a source of light', 'The road was closed because the road was flooded after the storm.')
    """
    texts = [f"Question: {g}\nAnswer: {(a, b)[y]}" for g, a, b, y in PIQA_DOCS]
    texts += [f"{stem} {choices['text'][choices['label'].index(key)]}" for stem, choices, key in
              ((r["question_stem"], r["choices"], r["answerKey"]) for r in openbookqa_rows())]
    texts += [s.replace("_", (a, b)[int(y) - 1]) for s, a, b, y in WINOGRANDE_DOCS]
    return texts


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """``rows`` as JSON lines at ``path`` (its folder made); returns ``path``.

    >>> write_jsonl(tmp / "rows.jsonl", [{"text": "a b c"}]).read_text(encoding="utf-8").splitlines()
    ['{"text": "a b c"}']
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# Name of our task -> (base YAML under lm-eval's tasks dir, data rows, split lm-eval scores)
EXAMPLE_TASKS = {
    "piqa": ("piqa/piqa.yaml", piqa_rows, "validation"),
    "openbookqa": ("openbookqa/openbookqa.yaml", openbookqa_rows, "test"),
    "winogrande": ("winogrande/default.yaml", winogrande_rows, "validation"),
}


def write_local_tasks(directory: Path, prefix: str = "local", rows_override: dict | None = None) -> dict[str, str]:
    """Write local-data copies of the erank tasks and of the standard tasks into ``directory``.

    For each of piqa/openbookqa/winogrande: ``{prefix}_erank_<name>`` (the plugin's task on the
    local file) and ``{prefix}_<name>`` (lm-eval's standard task on the same file), plus a
    group ``{prefix}_erank``. Returns {name: task name} for the erank tasks.

    >>> write_local_tasks(tmp / "tasks", prefix="demo")["piqa"]
    'demo_erank_piqa'
    >>> sorted(path.name for path in (tmp / "tasks").glob("demo_*piqa.yaml"))
    ['demo_erank_piqa.yaml', 'demo_piqa.yaml']
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = {}
    for name, (base_yaml, rows, split) in EXAMPLE_TASKS.items():
        data = write_jsonl(directory / "data" / f"{name}.jsonl", (rows_override or {}).get(name, rows()))
        local_data = (
            "dataset_path: json\ndataset_name: null\ntraining_split: null\nvalidation_split: null\n"
            f"test_split: null\nfewshot_split: {split}\n{split}_split: {split}\n"
            f"dataset_kwargs:\n  data_files:\n    {split}: {data}\n"
        )
        erank_yaml = task_dir() / f"erank_{name}.yaml"
        (directory / f"{prefix}_erank_{name}.yaml").write_text(
            f"include: {erank_yaml}\ntask: {prefix}_erank_{name}\n{local_data}", encoding="utf-8"
        )
        (directory / f"{prefix}_{name}.yaml").write_text(
            f"include: {lm_eval_tasks_dir() / base_yaml}\ntask: {prefix}_{name}\n{local_data}", encoding="utf-8"
        )
        names[name] = f"{prefix}_erank_{name}"
    group = yaml.safe_load((task_dir() / "erank.yaml").read_text(encoding="utf-8"))
    group.update({"group": f"{prefix}_erank", "task": list(names.values())})
    (directory / f"{prefix}_erank_group.yaml").write_text(yaml.safe_dump(group, sort_keys=False), encoding="utf-8")
    return names


def write_local_lm_tasks(directory: Path, data: dict[str, tuple[list[dict] | list[Path], str]],
                         prefix: str = "local") -> dict[str, str]:
    """Local-data copies ``{prefix}_erank_<name>`` of the shipped representation-only tasks
    (``erank_<name>.yaml`` included, data set keys pointed at json files) and a group
    ``{prefix}_erank_lm`` with ``erank_lm``'s size-weighted metrics.

    ``data``: name (``wikitext``, ``openwebtext2``, ...) -> (rows in the hub schema, or existing
    json/jsonl files; the split the shipped task scores). Returns {name: task name}.

    >>> write_local_lm_tasks(tmp / "lm_tasks", {"wikitext": ([{"page": "A page of text."}], "test")}, prefix="demo")
    {'wikitext': 'demo_erank_wikitext'}
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = {}
    for name, (rows, split) in data.items():
        if rows and isinstance(rows[0], Path):
            files = [str(p) for p in rows]
        else:
            files = [str(write_jsonl(directory / "data" / f"{name}.jsonl", rows))]
        override = {
            "include": str(task_dir() / f"erank_{name}.yaml"),
            "task": f"{prefix}_erank_{name}",
            "dataset_path": "json", "dataset_name": None,
            "training_split": None, "validation_split": None, "test_split": split,
            "dataset_kwargs": {"data_files": {split: files}},
        }
        (directory / f"{prefix}_erank_{name}.yaml").write_text(yaml.safe_dump(override, sort_keys=False), encoding="utf-8")
        names[name] = f"{prefix}_erank_{name}"
    group = yaml.safe_load((task_dir() / "erank_lm.yaml").read_text(encoding="utf-8"))
    group.update({"group": f"{prefix}_erank_lm", "task": list(names.values())})
    (directory / f"{prefix}_erank_lm.yaml").write_text(yaml.safe_dump(group, sort_keys=False), encoding="utf-8")
    return names


# ---- tiny tokenizer and models ------------------------------------------------------------

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


def train_tokenizer(texts: list[str], directory: Path, add_bos: bool, vocab_size: int = 400):
    """A byte-level BPE tokenizer trained on ``texts``, saved to ``directory``.

    ``add_bos=True`` makes it prepend ``<s>`` by default (Llama/OPT style); otherwise it adds
    no special tokens (GPT-2 style). Returns the loaded ``PreTrainedTokenizerFast``.

    >>> tok = train_tokenizer(gold_texts(), tmp / "tokenizer", add_bos=True)
    >>> tok.convert_ids_to_tokens(tok("Rain falls")["input_ids"])[0], tok.pad_token
    ('<s>', '<pad>')
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
    directory = Path(directory)
    fast.save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory)


def tiny_config(arch: str, tokenizer, hidden: int = 48, layers: int = 2, max_positions: int = 512, **overrides):
    """A tiny GPT-2-, Llama- or OPT-shaped config sized to ``tokenizer``.

    ``overrides`` are config fields in the architecture's own names (``n_head``, ``ffn_dim``,
    ``vocab_size``, ...), set over the tiny defaults: a preset of a larger shape gives them all.

    >>> tiny_config("llama", tokenizer, hidden=64).hidden_size, tiny_config("gpt2", tokenizer, n_head=2).n_head
    (64, 2)
    """
    from transformers import GPT2Config, LlamaConfig, OPTConfig

    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if arch == "gpt2":
        return GPT2Config(**{"n_embd": hidden, "n_layer": layers, "n_head": 4, "n_positions": max_positions, **ids,
                             **overrides})
    if arch == "llama":
        return LlamaConfig(**{
            "hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": layers,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": max_positions, **ids,
            **overrides})
    if arch == "opt":
        return OPTConfig(**{
            "hidden_size": hidden, "ffn_dim": 2 * hidden, "num_hidden_layers": layers, "num_attention_heads": 4,
            "max_position_embeddings": max_positions, "word_embed_proj_dim": hidden, **ids, **overrides})
    raise ValueError(f"unknown architecture {arch!r} (gpt2, llama, opt)")


def build_tiny_model(arch: str, tokenizer, directory: Path | None, seed: int = 0, train_texts: list[str] | None = None,
                     steps: int = 0, dtype=None, **config_kwargs):
    """Build a causal LM from ``tiny_config(arch, tokenizer, **config_kwargs)`` (seeded; in
    ``dtype``, default transformers' own), optionally train it briefly on ``train_texts``, and
    save it (with ``tokenizer``) to ``directory`` for ``pretrained=<directory>`` (None: not saved).

    >>> model = build_tiny_model("opt", tokenizer, tmp / "opt", seed=0)
    >>> type(model).__name__, model.training, (tmp / "opt" / "config.json").is_file()
    ('OPTForCausalLM', False, True)
    """
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    in_dtype = {} if dtype is None else {"dtype": dtype}
    model = AutoModelForCausalLM.from_config(tiny_config(arch, tokenizer, **config_kwargs), **in_dtype)
    if train_texts and steps:
        train_briefly(model, tokenizer, train_texts, steps)
    model.eval()
    if directory is not None:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    return model


def train_briefly(model, tokenizer, texts: list[str], steps: int, batch_size: int = 16, lr: float = 3e-3) -> float:
    """A few AdamW steps of next-token training on ``texts`` (seeded); returns the last loss
    and leaves ``model`` in eval mode.

    >>> model = build_tiny_model("gpt2", tokenizer, None)
    >>> loss = train_briefly(model, tokenizer, gold_texts()[:4], steps=3)
    >>> 0.0 < loss < 10.0, model.training
    (True, False)
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        rows = torch.randint(0, len(texts), (min(batch_size, len(texts)),), generator=generator)
        out = model(input_ids=encoded["input_ids"][rows], attention_mask=encoded["attention_mask"][rows], labels=labels[rows])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        loss = out.loss.detach()
    model.eval()
    return float(loss)
