"""Offline example: a tiny model trained briefly on local text, evaluated by the plugin.

``python -m lm_eval_erank.example --out DIR`` needs no network:

1. writes a small PIQA-, OpenBookQA- and WinoGrande-shaped data set (in the hub schemas) and
   task YAMLs that point the ``erank_*`` tasks at those files;
2. trains a byte-level BPE tokenizer and a 2-layer GPT-2-shaped model for a few hundred
   steps on the gold texts of those documents (so M1 has learned something M0 has not);
3. runs ``lm-eval-erank --model hf-erank ... --tasks <the three local tasks>``, as a user would
   on their own model (``pretrained=<dir>``).

The numbers show the plumbing, not a real model: Diff-eRank and reduced loss come out
positive because M1 was trained on exactly these texts. The documents, the tokenizer and the
tiny model come from :mod:`lm_eval_erank.testing.tiny`, which the test suite builds on too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .testing.tiny import build_tiny_model, gold_texts, train_tokenizer, write_local_tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="example_run", help="working directory (model, data, results)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the tiny model")
    parser.add_argument("--arch", default="gpt2", choices=["gpt2", "llama", "opt"])
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()

    # 1. The data: the documents as local json files, and tasks reading them (group example_erank).
    write_local_tasks(out / "tasks", prefix="example")
    # 2. The model: a tokenizer and a tiny model trained on the documents' gold texts, saved to out/model.
    texts = gold_texts()
    tokenizer = train_tokenizer(texts, out / "tokenizer", add_bos=args.arch != "gpt2")
    build_tiny_model(args.arch, tokenizer, out / "model", train_texts=texts, steps=args.steps)
    # 3. The evaluation: the plugin's command line, as a user runs it.
    command = [
        sys.executable, "-m", "lm_eval_erank",
        "--model", "hf-erank",
        "--model_args", f"pretrained={out / 'model'},dtype=float32",
        "--device", "cpu",
        "--include_path", str(out / "tasks"),
        "--tasks", "example_erank",  # the group: the three tasks and their size-weighted means
        "--batch_size", "8",
        "--output_path", str(out / "results"),
        "--log_samples",
    ]
    print("running:", " ".join(command), flush=True)
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
