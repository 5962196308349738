"""Local copies of the shipped tasks, pointed at data files on this machine."""

from __future__ import annotations

from pathlib import Path


def write_local_copy(directory: Path, shipped: str, task: str, split: str, files: list[Path],
                     split_key: str = "", **overrides) -> Path:
    """Write ``directory/<task>.yaml``: the shipped task ``shipped`` (its YAML included) renamed
    ``task``, reading ``split`` from the local JSON(L) ``files`` (``split_key``, default
    ``<split>_split``, names the split it scores); ``overrides`` replace its other keys.
    Returns the file written; ``FileNotFoundError`` names the files that are missing.

    >>> import tempfile, yaml
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     data = Path(tmp) / "piqa.jsonl"
    ...     _ = data.write_text("{}\\n")
    ...     path = write_local_copy(Path(tmp) / "tasks", "erank_piqa", "my_piqa", "validation", [data])
    ...     config = yaml.safe_load(path.read_text())
    >>> config["task"], config["validation_split"], config["test_split"]
    ('my_piqa', 'validation', None)
    """
    from importlib.resources import files as package_files

    import yaml

    missing = [str(p) for p in files if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(", ".join(missing))
    shipped_dir = Path(str(package_files("lm_eval_erank.task_configs")))
    config = {"include": str(shipped_dir / f"{shipped}.yaml"), "task": task, "dataset_path": "json",
              "dataset_name": None, "training_split": None, "validation_split": None, "test_split": None,
              split_key or f"{split}_split": split, "dataset_kwargs": {"data_files": {split: [str(p) for p in files]}},
              **overrides}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{task}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
