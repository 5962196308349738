"""The family study's text: WikiText documents, held-out paragraphs, the tokenizer and the
training blocks (every text in the format ``erank_wikitext`` feeds: lm-eval's detokenizer)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TOP_HEADING = re.compile(r"^ = [^=].* = $")



def split_documents(text: str) -> list[str]:
    """WikiText word-level text -> one string per article (a top-level `` = Title = `` line
    and the lines up to the next one), as ``EleutherAI/wikitext_document_level`` groups them."""
    docs, current = [], []
    for line in text.splitlines(keepends=True):
        if TOP_HEADING.match(line.rstrip("\n")) and any(x.strip() for x in current):
            docs.append("".join(current))
            current = []
        current.append(line)
    if any(x.strip() for x in current):
        docs.append("".join(current))
    return docs


def load_corpus(args) -> tuple[list[str], list[str], str]:
    """(training documents, held-out documents, a description of the source)."""
    if args.hf_dataset:
        import datasets

        data = datasets.load_dataset(args.hf_dataset, args.hf_config)
        train = "".join(row["text"] for row in data["train"])
        test = "".join(row["text"] for row in data["test"])
        source = f"hub data set {args.hf_dataset} ({args.hf_config}): train split for training, test split held out"
    else:
        directory = Path(args.data)
        train_file = directory / "train.txt" if (directory / "train.txt").is_file() else directory / "valid.txt"
        test_file = directory / "test.txt"
        for path in (train_file, test_file):
            if not path.is_file():
                raise SystemExit(f"train_family: {path} not found (--data names a WikiText directory with "
                                 "train.txt or valid.txt, and test.txt; or use --hf-dataset)")
        train, test = train_file.read_text(encoding="utf-8"), test_file.read_text(encoding="utf-8")
        source = f"{directory}: {train_file.name} for training, {test_file.name} held out"
    train_docs, heldout = split_documents(train), split_documents(test)
    if args.train_docs:
        train_docs = train_docs[:args.train_docs]
    if args.heldout_docs:
        heldout = heldout[:args.heldout_docs]
    if not train_docs or not heldout:
        raise SystemExit("train_family: no documents (no `` = Title = `` heading lines?)")
    return train_docs, heldout, source


def detokenize(text: str) -> str:
    """lm-eval's wikitext detokenizer (the text ``erank_wikitext`` feeds for a page)."""
    from lm_eval_erank.task_utils import wikitext_text

    return wikitext_text({"page": text})


def heldout_paragraphs(docs: list[str], count: int, min_words: int = 20) -> list[str]:
    """``count`` body paragraphs (no headings, >= ``min_words`` words) spread evenly over the
    held-out documents, detokenised; all of them when there are fewer."""
    lines = [line for doc in docs for line in doc.splitlines()
             if line.strip() and not line.strip().startswith("=") and len(line.split()) >= min_words]
    if count and len(lines) > count:
        lines = [lines[round(i * (len(lines) - 1) / (count - 1))] for i in range(count)] if count > 1 else lines[:1]
    return [detokenize(line).strip() for line in lines]


def token_blocks(tokenizer, texts: list[str], block: int):
    """Token ids of the texts joined by EOS, cut into (n, block) rows (the tail dropped)."""
    import torch

    ids: list[int] = []
    for encoded in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
        ids.append(tokenizer.eos_token_id)
    n = len(ids) // block
    if n == 0:
        raise SystemExit(f"train_family: {len(ids)} training tokens, fewer than one block of {block}")
    return torch.tensor(ids[:n * block]).view(n, block)


class Blocks:
    """A map-style data set of next-token examples over fixed token blocks."""

    def __init__(self, blocks):
        self.blocks = blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


@dataclass
class Corpus:
    """The text of a run: documents, held-out paragraphs, the tokenizer and the training blocks."""

    source: str
    train_docs: list[str]
    heldout_docs: list[str]
    paragraphs: list[str]
    callback_texts: list[str]
    tokenizer: object
    blocks: object  # torch.Tensor (n, block)


def prepare_corpus(args, out: Path) -> Corpus:
    """Documents, held-out paragraphs (and the callback's share of them), tokenizer, blocks."""
    from lm_eval_erank.testing import tiny

    print("data ...", flush=True)
    train_docs, heldout_docs, source = load_corpus(args)
    train_texts = [detokenize(doc) for doc in train_docs]
    paragraphs = heldout_paragraphs(heldout_docs, args.paragraphs)
    if len(paragraphs) < args.callback_texts:
        raise SystemExit(f"train_family: {len(paragraphs)} held-out paragraphs, fewer than --callback-texts")
    callback_texts = paragraphs[:: max(1, len(paragraphs) // args.callback_texts)][:args.callback_texts]
    tokenizer = tiny.train_tokenizer(train_texts, out / "tokenizer", add_bos=args.arch != "gpt2",
                                        vocab_size=args.vocab)
    blocks = token_blocks(tokenizer, train_texts, args.block)
    print(f"  {len(train_docs)} training documents ({blocks.numel():,} tokens in {len(blocks)} blocks of "
          f"{args.block}); held out: {len(heldout_docs)} documents, {len(paragraphs)} paragraphs", flush=True)
    return Corpus(source, train_docs, heldout_docs, paragraphs, callback_texts, tokenizer, blocks)
