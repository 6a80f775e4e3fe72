#!/usr/bin/env python3
"""Writes a long synthetic session log (schema 1) for benchmarking export, report and
replay: N utterances of 0.5-6 s with 0.3-2 s gaps, distributions drifting between
labels, deterministic (seeded), no audio and no model.

    scripts/make_long_log.py --utterances 140000 -o /tmp/long.jsonl
    time target/release/emomon export /tmp/long.jsonl --csv -o /tmp/long.csv
    time target/release/emomon report /tmp/long.jsonl -o /tmp/long.html

140,000 utterances is about an eight-hour day of speech (issue 18).
"""
import argparse
import json
import math
import random

LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--utterances", type=int, default=140_000)
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with open(args.output, "w") as out:
        def write(t_s, record):
            out.write(json.dumps({"schema": 1, "t_s": round(t_s, 3), **record}, separators=(",", ":")) + "\n")

        write(0.0, {"type": "session_start", "started_unix_s": 1795442400.0, "emomon_version": "0.1.0",
                    "source": "synthetic: scripts/make_long_log.py", "model": "synthetic", "device": "cpu",
                    "method": "first-token", "labels": LABELS,
                    "config": {"aggregation": {"half_life_s": 20.0, "windows_s": [30.0, 120.0], "switch_margin": 0.1}}})
        t = 0.5
        for i in range(1, args.utterances + 1):
            start = t + rng.uniform(0.3, 2.0)
            end = start + rng.uniform(0.5, 6.0)
            t = end
            phase = (i // 400) % len(LABELS)
            logits = [rng.gauss(0.0, 0.8) + (2.0 if k == phase else 0.0) for k in range(len(LABELS))]
            m = max(logits)
            e = [math.exp(z - m) for z in logits]
            s = sum(e)
            probs = [round(x / s, 4) for x in e]
            latency = rng.uniform(150, 600)
            write(end + latency / 1000, {"type": "utterance", "id": i, "start_s": round(start, 3),
                                         "end_s": round(end, 3), "labels": LABELS, "probs": probs,
                                         "logits": [round(z, 3) for z in logits], "method": "first-token",
                                         "model": "synthetic", "latency_ms": round(latency, 1),
                                         "level_db": round(rng.uniform(-35, -15), 1)})
            if i % 5000 == 0:
                write(end + 1.0, {"type": "marker", "note": f"marker {i // 5000}"})
        write(t + 1.0, {"type": "session_end", "utterances": args.utterances, "dropped_samples": 0,
                        "skipped_utterances": 0, "reason": "end of input"})


if __name__ == "__main__":
    main()
