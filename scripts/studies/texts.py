"""Texts read from the local data: PIQA's gold answers and passages of the Gutenberg books."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .environment import DATA, HF_SCHEMA_FILES

PIQA_FILE = DATA / "hf_schema" / HF_SCHEMA_FILES["piqa"]


def piqa_gold_texts(path: Path = PIQA_FILE, n: int | None = None) -> list[str]:
    """The first ``n`` (default all) PIQA rows of a hub-schema JSONL file as gold texts,
    ``Question: {goal}\\nAnswer: {the labelled solution}``.

    >>> import tempfile
    >>> row = {"goal": "Dry a phone", "sol1": "Rice.", "sol2": "Water.", "label": 0}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "piqa.jsonl"
    ...     _ = path.write_text(json.dumps(row) + "\\n", encoding="utf-8")
    ...     piqa_gold_texts(path)
    ['Question: Dry a phone\\nAnswer: Rice.']
    """
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0 or None, got {n}")
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [json.loads(line) for line in lines[:n]]
    return [f"Question: {r['goal']}\nAnswer: {r['sol1'] if int(r['label']) == 0 else r['sol2']}" for r in rows]


def gutenberg_paragraphs(path: Path) -> list[str]:
    """The book's body (between the START/END markers) as paragraphs of at least 200 characters."""
    text = path.read_text(encoding="utf-8", errors="replace")
    start, end = text.find("*** START OF"), text.find("*** END OF")
    body = text[text.find("\n", start) + 1 if start >= 0 else 0: end if end >= 0 else len(text)]
    paragraphs = (" ".join(p.split()) for p in body.replace("\r\n", "\n").split("\n\n"))
    return [p for p in paragraphs if len(p) >= 200]


def gutenberg_books(data: Path = DATA) -> list[Path]:
    """The books under ``data / "gutenberg"`` (their licence files left out), sorted."""
    return sorted(p for p in (data / "gutenberg").glob("*.txt") if "LICENSE" not in p.name)


def prose_passages(books: list[Path], n: int, tokenizer, tokens: int) -> list[str]:
    """``n`` passages spread evenly over ``books``: consecutive paragraphs from evenly spaced
    starts until ``tokens`` tokens (a caller cuts them to ``tokens`` when encoding)."""
    if not books:
        raise ValueError("prose_passages needs at least one book")
    passages = []
    for j in range(n):
        paragraphs = gutenberg_paragraphs(books[j % len(books)])
        per_book = math.ceil(n / len(books))
        i = (j // len(books) + 1) * len(paragraphs) // (per_book + 1)
        passage = paragraphs[i]
        while len(tokenizer(passage)["input_ids"]) < tokens and i + 1 < len(paragraphs):
            i += 1
            passage += "\n\n" + paragraphs[i]
        passages.append(passage)
    return passages
