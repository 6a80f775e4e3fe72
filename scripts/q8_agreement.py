#!/usr/bin/env python3
"""How far `--quant q8` moves label logits from f32, clip by clip: reads the score
caches of two `emomon eval` runs over the same clips (one with `--quant q8`) and prints
the top-label agreement and the distribution of each clip's largest |Δ label logit|
(issue 15's guard: within 0.25, the same top label on ≥ 98 % of the shared clips).

    emomon eval --manifest ../shared/data/manifest.csv --stride 15 --model DIR \\
        -o /tmp/q8m/f32 --cache /tmp/q8m/f32.jsonl
    emomon eval ... --quant q8 -o /tmp/q8m/q8 --cache /tmp/q8m/q8.jsonl
    python3 scripts/q8_agreement.py /tmp/q8m/f32.jsonl /tmp/q8m/q8.jsonl

Standard library only; a measurement, not a test.
"""

from __future__ import annotations

import json
import sys


def load(path: str) -> dict[str, dict]:
    """Cached scores by audio hash (the last line wins, as in emomon's cache)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            entry = json.loads(line)
            if entry.get("logits"):
                out[entry["audio_sha256"]] = entry
    return out


def top(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    f32, q8 = load(sys.argv[1]), load(sys.argv[2])
    common = sorted(set(f32) & set(q8), key=lambda k: f32[k]["path"])
    if not common:
        print("no clip is in both caches", file=sys.stderr)
        return 1
    deltas, agree, worst = [], 0, []
    for key in common:
        a, b = f32[key], q8[key]
        if a["labels"] != b["labels"]:
            print(f"{a['path']}: different labels {a['labels']} / {b['labels']}", file=sys.stderr)
            return 1
        d = max(abs(x - y) for x, y in zip(a["logits"], b["logits"]))
        deltas.append(d)
        same = top(a["logits"]) == top(b["logits"])
        agree += same
        worst.append((d, a["path"], a["labels"][top(a["logits"])], b["labels"][top(b["logits"])]))
    deltas.sort()
    n = len(deltas)
    p90 = deltas[min(n - 1, int(0.9 * n))]
    print(f"{n} clips in both caches")
    print(f"top label agreement {agree}/{n} = {100 * agree / n:.1f} %")
    print(f"max |Δ label logit| per clip: max {deltas[-1]:.3f} mean {sum(deltas) / n:.3f} "
          f"p90 {p90:.3f}; over 0.25: {sum(d > 0.25 for d in deltas)}")
    for d, path, ta, tb in sorted(worst, reverse=True)[:5]:
        print(f"  {d:.3f} {path} top {ta} / {tb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
