"""How much the random twin's draw moves eRank(M0) and Diff-eRank, against the number of texts.

For each model shape (built from its config: gpt2-small, opt-125m, and a wide one, opt-1.3b,
d = 2048), the M0 side is computed for K twins (seeds 0..K-1) on the first N real PIQA gold
texts (``Question: {goal}\\nAnswer: {gold solution}``, from ../shared/data), and for each N it
reports, per twin, eRank(M0) = exp(mean H) and Diff-eRank, their spread between twins (sd,
ddof 1), the text-bootstrap stderr of one twin's value (what a single-twin run reports), and the
K-twin value's stderr over texts and twins (lm_eval_erank.core.aggregation.twin_stderr) with its text
and twin parts.

M1 is another random initialisation of the same config (seed 999), not a trained model: the
twins' spread of Diff-eRank = eRank(M0) - eRank(M1) is exactly the spread of eRank(M0) whatever
M1 is (M1 is shared by the twins), but Diff-eRank's value and text stderr here are those of
an untrained M1 (indicative only). The tokenizer is a byte-level BPE (8192 tokens) trained on
Tiny Shakespeare, as in scripts/bench.py. Forwards run in float32 without token losses; M0's
per-text results go to an M0 cache (--cache), so a rerun with more twins or texts only computes
what is new.

    python scripts/twin_spread.py          # default: 3 twins, 100 texts at d = 768, 10 at opt-1.3b (minutes)
    python scripts/twin_spread.py --shapes gpt2-small --texts 100,400,all --twins 4
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from studies import environment, shapes  # noqa: E402  (the offline set-up, the shapes)

environment.go_offline()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lm_eval_erank.core import aggregation as agg  # noqa: E402
from lm_eval_erank.api import TwinProvider, encode_texts  # noqa: E402
from lm_eval_erank.core.representations import num_layers, text_statistics  # noqa: E402
from studies.texts import PIQA_FILE, piqa_gold_texts  # noqa: E402

M1_SEED = 999
WIDE = "opt-1.3b"


def build_m1(shape: str, directory: Path):
    """(M1 from the shape's config with seed M1_SEED, its tokenizer)."""
    model, tokenizer, _, _ = shapes.build_shape(shape, directory, M1_SEED, torch.float32)
    return model, tokenizer


def spread(e0: np.ndarray, e1: np.ndarray, iters: int) -> dict:
    """Figures for per-text eRanks e0 (n, K) of the twins and e1 (n,) of M1."""
    k = e0.shape[1]
    paired = np.concatenate([e0, e1[:, None]], axis=1).tolist()
    m0 = agg.twin_values(e0.tolist(), "geometric_mean")
    diff = agg.twin_values(paired, "difference")
    out = {
        "texts": len(e1),
        "erank_m0_per_twin": [round(float(x), 4) for x in m0],
        "diff_erank_per_twin": [round(float(x), 4) for x in diff],
        "twin_sd": float(m0.std(ddof=1)) if k > 1 else None,  # the same for eRank(M0) and Diff-eRank
        "text_stderr_one_twin_erank_m0": agg.geometric_mean_stderr(e0[:, 0].tolist(), iters),
        "text_stderr_one_twin_diff_erank": agg.difference_of_geometric_means_stderr(
            np.stack([e0[:, 0], e1], axis=1).tolist(), iters),
    }
    if k > 1:
        text_var, twin_var = agg.twin_variance_parts(paired, "difference", iters)
        out.update({"k_twin_diff_erank": float(diff.mean()), "k_twin_stderr": math.sqrt(text_var + twin_var),
                    "k_twin_stderr_text_part": math.sqrt(text_var), "k_twin_stderr_twin_part": math.sqrt(twin_var),
                    "k_twin_95_halfwidth": agg.twin_interval_halfwidth(text_var, twin_var, k),
                    "k_twin_stderr_erank_m0": agg.twin_stderr(e0.tolist(), "geometric_mean", iters)})
    return out


def run_shape(shape: str, twins: int, counts: list[int | str], texts: list[str], args) -> dict:
    n_max = max(len(texts) if c == "all" else c for c in counts)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        m1, tokenizer = build_m1(shape, Path(tmp))
    ids, _ = encode_texts(tokenizer, texts[:n_max], 2048, add_bos_token=False)
    pad = tokenizer.pad_token_id or 0
    last = num_layers(m1)
    h1 = text_statistics(m1, ids, args.batch_size, pad, "M1", None, [last], losses=False).entropy
    h0 = []
    for k in range(twins):
        twin = TwinProvider(m1, k, cache_dir=args.cache)
        h0.append(twin.statistics(ids, args.batch_size, pad, [last], losses=False).entropy)
        twin.release()
        print(f"  {shape}: twin {k + 1}/{twins} done ({time.perf_counter() - started:.0f} s)", flush=True)
    del m1
    gc.collect()
    e1 = torch.exp(h1).numpy()
    e0 = torch.exp(torch.stack(h0, dim=1)).numpy()
    keep = np.isfinite(e1) & np.isfinite(e0).all(axis=1)
    rows = []
    for count in counts:
        n = n_max if count == "all" else count
        mask = keep[:n]
        rows.append(spread(e0[:n][mask], e1[:n][mask], args.bootstrap_iters))
    mean_tokens = float(np.mean([len(t) for t in ids]))
    return {"shape": shape, "config": shapes.SHAPES[shape][1], "twins": twins, "seeds": list(range(twins)),
            "m1": f"random init, seed {M1_SEED}", "mean_tokens": mean_tokens, "rows": rows,
            "seconds": round(time.perf_counter() - started, 1)}


def parse_counts(text: str) -> list[int | str]:
    return [part if part == "all" else int(part) for part in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=f"gpt2-small,opt-125m,{WIDE}")
    parser.add_argument("--twins", type=int, default=3, help="twins of the d = 768 shapes")
    parser.add_argument("--texts", type=parse_counts, default=[100],
                        help="text counts of the d = 768 shapes, e.g. 100,400,all (the first N PIQA docs)")
    parser.add_argument("--wide-twins", type=int, default=3)
    parser.add_argument("--wide-texts", type=parse_counts, default=[10], help="text counts of opt-1.3b")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--bootstrap-iters", type=int, default=2000)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "erank-twin-spread-cache"),
                        help="M0 results cache directory (reruns reuse it)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="twin_spread.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not PIQA_FILE.is_file():
        raise SystemExit(f"needs the real PIQA data at {PIQA_FILE} (../shared/data)")
    texts = piqa_gold_texts(PIQA_FILE)
    report = {"piqa_texts_available": len(texts), "torch_threads": torch.get_num_threads(), "shapes": []}
    for shape in args.shapes.split(","):
        wide = shape == WIDE
        result = run_shape(shape, args.wide_twins if wide else args.twins, args.wide_texts if wide else args.texts,
                           texts, args)
        report["shapes"].append(result)
        Path(args.out).write_text(json.dumps(report, indent=2))
        print_rows(result)
    return 0


def print_rows(result: dict) -> None:
    print(f"\n{result['shape']} ({result['twins']} twins, M1 {result['m1']}, {result['mean_tokens']:.1f} tokens/text, "
          f"{result['seconds']} s)")
    print("| texts | eRank(M0) per twin | twin sd | text stderr, 1 twin (M0 / Diff) | K-twin stderr (text, twin part) |")
    print("|---|---|---:|---:|---:|")
    for r in result["rows"]:
        combined = (f"{r['k_twin_stderr']:.3f} ({r['k_twin_stderr_text_part']:.3f}, {r['k_twin_stderr_twin_part']:.3f})"
                    if r["twin_sd"] is not None else "")
        print(f"| {r['texts']} | {', '.join(f'{x:.2f}' for x in r['erank_m0_per_twin'])} | {r['twin_sd']:.3f} | "
              f"{r['text_stderr_one_twin_erank_m0']:.3f} / {r['text_stderr_one_twin_diff_erank']:.3f} | {combined} |")


if __name__ == "__main__":
    raise SystemExit(main())
