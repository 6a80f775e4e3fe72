#!/usr/bin/env python3
"""Why `--speakers 2` and `--enroll` miss their targets: the study behind README "Who is
speaking", replayed from `emomon bench speakers --dump FILE` (every embedding, with times,
truth and emotion; no audio). Needs only numpy; never run in CI.

Usage: python scripts/speaker_study.py DUMP.jsonl [DUMP.jsonl ...]

Prints, per group (dataset x same/mixed gender):
* cosine of two utterances of the same speaker vs of the two speakers (5/25/50/75/95 %);
* utterance vs the leave-one-out centroids of both true speakers: how often its own is
  nearer (the ceiling of any nearest-centroid rule), by utterance length too;
* how far emotion moves a voice: an utterance vs its speaker's neutral (or calm)
  utterances, by emotion, beside the other speaker's;
* the tracker replayed (threshold 0.75; opening from 0 s as before, from 1.2 s, and
  joining by the mean similarity as now): accuracy, how often the second speaker is
  opened by the first (a "false open", opening from 1.2 s) and what it costs, and the
  accuracy if the second speaker were opened exactly when they first speak.
"""

import itertools
import json
import sys
from collections import defaultdict

import numpy as np


def unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def group(c):
    return f"{c['dataset']} {'mixed' if c['mixed'] else 'same-gender'}"


def accuracy(labels, truth):
    """Right under the best one-to-one mapping of labels to speakers."""
    names = sorted(set(labels))
    best = 0
    for perm in itertools.permutations([0, 1] + [None] * len(names), len(names)):
        used = [p for p in perm if p is not None]
        if len(set(used)) != len(used):
            continue
        m = dict(zip(names, perm))
        best = max(best, sum(m[l] == t for l, t in zip(labels, truth)))
    return best


def track(emb, secs, truth, threshold=0.75, opens_from_s=1.2, oracle=False, by_mean=True):
    """The tracker of src/speaker/track.rs (max 2): opens by the cosine to the centroids,
    joins by the mean cosine to the members (`by_mean`, else the centroid's); `oracle`
    opens S2 at the true change."""
    sums, counts, labels = [], [], []
    for i, (e, d) in enumerate(zip(emb, secs)):
        sims = [e @ unit(s) for s in sums]
        if oracle:
            opens = len(sums) < 2 and (not sums or truth[i] != truth[0])
        else:
            opens = not sums or (max(sims) < threshold and len(sums) < 2 and d >= opens_from_s)
        if opens:
            sums.append(e.copy())
            counts.append(1)
            labels.append(len(sums) - 1)
        else:
            join = [e @ s / n for s, n in zip(sums, counts)] if by_mean else sims
            b = int(np.argmax(join))
            sums[b] = sums[b] + e
            counts[b] += 1
            labels.append(b)
    return labels


def pct(a):
    return " ".join(f"{x:.2f}" for x in np.percentile(a, [5, 25, 50, 75, 95]))


def main():
    convs = [json.loads(line) for path in sys.argv[1:] for line in open(path)]
    per = defaultdict(lambda: defaultdict(list))
    by_len = defaultdict(list)
    emotion_shift = defaultdict(list)
    replay = defaultdict(lambda: defaultdict(int))
    for c in convs:
        g = per[group(c)]
        utts = c["utterances"]
        emb = [unit(u["embedding"]) for u in utts]
        truth = [u["truth"] for u in utts]
        secs = [u["end_s"] - u["start_s"] for u in utts]
        emo = [u.get("emotion", "?") for u in utts]
        for i, j in itertools.combinations(range(len(utts)), 2):
            g["same" if truth[i] == truth[j] else "diff"].append(emb[i] @ emb[j])
        for i, e in enumerate(emb):
            cents = {}
            for k in (0, 1):
                members = [x for j, x in enumerate(emb) if truth[j] == k and j != i]
                if members:
                    cents[k] = e @ unit(np.sum(members, 0))
            if len(cents) == 2:
                ok = cents[truth[i]] > cents[1 - truth[i]]
                g["loo"].append(ok)
                by_len[min(int(secs[i] / 0.6), 8)].append(ok)
            neutral = [
                emb[j] for j in range(len(utts))
                if j != i and truth[j] == truth[i] and emo[j] in ("neutral", "calm")
            ]
            if neutral and emo[i] != "?":
                emotion_shift[emo[i]].append(e @ unit(np.sum(neutral, 0)))
            other = [
                emb[j] for j in range(len(utts))
                if truth[j] != truth[i] and emo[j] in ("neutral", "calm")
            ]
            if other:
                g["other_neutral"].append(e @ unit(np.sum(other, 0)))
        r = replay[group(c)]
        r["n"] += len(utts)
        for name, kw in [
            ("before", dict(opens_from_s=0.0, by_mean=False)),
            ("opening", dict(by_mean=False)),
            ("now", {}),
            ("oracle", dict(oracle=True, by_mean=False)),
        ]:
            labels = track(emb, secs, truth, **kw)
            r[name] += accuracy(labels, truth)
            if name == "opening" and 1 in labels:
                if truth[labels.index(1)] == truth[0]:
                    r["false_opens"] += 1
                    r["lost_false"] += len(utts) - accuracy(labels, truth)
        r["conv"] += 1
    print("cosine, same speaker vs the other speaker (p5 p25 p50 p75 p95); leave-one-out centroid right")
    for name, g in sorted(per.items()):
        print(f"  {name:20} same {pct(g['same'])} | other {pct(g['diff'])} | centroid {100 * np.mean(g['loo']):.1f} %")
    print("leave-one-out centroid right, by utterance length")
    for k, v in sorted(by_len.items()):
        span = f"{0.6 * k:.1f}-{0.6 * (k + 1):.1f} s" if k < 8 else f">= {0.6 * k:.1f} s"
        print(f"  {span:10} {100 * np.mean(v):5.1f} % of {len(v)}")
    print("utterance vs its speaker's neutral/calm centroid, by its emotion (mean cosine)")
    for k, v in sorted(emotion_shift.items(), key=lambda kv: -np.mean(kv[1])):
        print(f"  {k:10} {np.mean(v):.3f} (n={len(v)})")
    print("  for comparison, an utterance vs the other speaker's neutral/calm centroid:")
    for name, g in sorted(per.items()):
        print(f"    {name:20} {np.mean(g['other_neutral']):.3f}")
    print(
        "tracker replayed: before (open from 0 s) / open from 1.2 s / and join by mean "
        "similarity (now) / S2 opened at the true change (centroids)"
    )
    for name, r in sorted(replay.items()):
        print(
            f"  {name:20} {100 * r['before'] / r['n']:.1f} / {100 * r['opening'] / r['n']:.1f} / "
            f"{100 * r['now'] / r['n']:.1f} / "
            f"{100 * r['oracle'] / r['n']:.1f} %; false opens {r['false_opens']} of {r['conv']} "
            f"conversations, costing {r['lost_false']} of {r['n']} utterances"
        )


if __name__ == "__main__":
    main()
