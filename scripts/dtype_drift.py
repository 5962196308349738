"""How much the forward dtype moves per-text entropies and dataset eRanks.

    python scripts/dtype_drift.py [--arch gpt2|llama|opt] [--hidden 256] [--layers 4] [--device cpu|cuda]

Builds a model from a config (briefly trained on the example texts), runs the same texts
through it in float32, bfloat16 and float16 (same weights, cast), and prints the largest and
mean absolute difference in per-text entropy (nats) and the dataset eRank exp(mean H) per dtype,
for M1 and for its random twin M0. Texts: the PIQA validation goals+solutions from
../shared/data when present, else the example's gold texts.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
from pathlib import Path

from studies import environment

environment.go_offline()

import torch  # noqa: E402

from lm_eval_erank.testing import tiny  # noqa: E402
from lm_eval_erank.core.representations import text_statistics  # noqa: E402
from lm_eval_erank.core.twin import build_random_twin  # noqa: E402
from studies.texts import PIQA_FILE, piqa_gold_texts  # noqa: E402



def load_texts(limit: int) -> list[str]:
    if PIQA_FILE.is_file():
        return piqa_gold_texts(PIQA_FILE, limit)
    return tiny.gold_texts()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="llama", choices=["gpt2", "llama", "opt"])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    texts = load_texts(args.texts)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = tiny.train_tokenizer(texts + tiny.gold_texts(), Path(tmp) / "tok", add_bos=args.arch != "gpt2")
        m1 = tiny.build_tiny_model(args.arch, tokenizer, Path(tmp) / "m", train_texts=texts, steps=100,
                                      hidden=args.hidden, layers=args.layers)
    m1 = m1.to(args.device)
    m0 = build_random_twin(m1, 1234)
    ids = [tokenizer(t)["input_ids"] for t in texts]
    rows = []
    for name, model in (("M1", m1), ("M0", m0)):
        reference = None
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            cast = copy.deepcopy(model).to(dtype)
            entropy = text_statistics(cast, ids, batch_size=16, pad_id=tokenizer.pad_token_id).entropy
            if reference is None:
                reference = entropy
            diff = (entropy - reference).abs()
            rows.append({
                "model": name, "dtype": str(dtype).replace("torch.", ""),
                "dataset_erank": math.exp(float(entropy.mean())),
                "max_abs_entropy_diff": float(diff.max()), "mean_abs_entropy_diff": float(diff.mean()),
            })
    print(f"{args.arch} d={args.hidden} layers={args.layers}, {len(texts)} texts, device {args.device}")
    print(f"{'model':5} {'dtype':9} {'eRank exp(mean H)':>18} {'max |dH| vs fp32':>17} {'mean |dH|':>10}")
    for r in rows:
        print(f"{r['model']:5} {r['dtype']:9} {r['dataset_erank']:18.4f} {r['max_abs_entropy_diff']:17.2e} {r['mean_abs_entropy_diff']:10.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
