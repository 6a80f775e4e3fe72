#!/usr/bin/env python3
"""Paired comparison of two `emomon eval` runs over the same clips.

For each dataset: accuracy of run A and run B, the clips right for only one of them, and
the exact McNemar test on those (a two-sided binomial test of B-only vs A-only). Two
models' accuracies on the same clips differ by a few clips by chance; this says whether a
difference is more than that (docs/default-model.md, section 11).

    python scripts/compare_evals.py EVAL_DIR_A EVAL_DIR_B

Needs scipy (the reference venv); reads each directory's predictions.jsonl.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from scipy.stats import binomtest


def correct_by_clip(eval_dir: Path) -> dict[str, tuple[str, bool]]:
    """path -> (dataset, top label == reference label)."""
    out = {}
    with open(eval_dir / "predictions.jsonl") as f:
        for line in f:
            r = json.loads(line)
            out[r["path"]] = (r["dataset"], r["top"] == r["label"])
    return out


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = (correct_by_clip(Path(d)) for d in sys.argv[1:])
    shared = [k for k in a if k in b]
    if not shared:
        sys.exit("the two runs share no clip (compare runs over the same manifest)")
    print(f"{'dataset':10} {'clips':>5} {'A':>6} {'B':>6} {'B only':>7} {'A only':>7} {'McNemar p':>10}")
    for ds in sorted({a[k][0] for k in shared}):
        keys = [k for k in shared if a[k][0] == ds]
        b_only = sum(1 for k in keys if b[k][1] and not a[k][1])
        a_only = sum(1 for k in keys if a[k][1] and not b[k][1])
        p = binomtest(b_only, b_only + a_only).pvalue if b_only + a_only else 1.0
        acc_a = sum(a[k][1] for k in keys) / len(keys)
        acc_b = sum(b[k][1] for k in keys) / len(keys)
        print(f"{ds:10} {len(keys):5d} {acc_a:6.3f} {acc_b:6.3f} {b_only:7d} {a_only:7d} {p:10.3f}")


if __name__ == "__main__":
    main()
