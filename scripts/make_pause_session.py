#!/usr/bin/env python3
"""Builds a few minutes of speech with pauses from the shared clips, for
`emomon run --headless --realtime --input FILE` latency runs (speculative scoring).

Clips (sorted, the first N of each dataset directory) are converted to 16 kHz mono
with sox and joined by pauses of room tone (white noise at about -70 dBFS) that
alternate short ones (0.2-0.35 s, under the 400 ms hangover: speech resumes) and
long ones (0.8-2.0 s), from a fixed seed. Needs `sox` on PATH; nothing is downloaded.

    scripts/make_pause_session.py ../shared/data OUT.wav [--per-dataset 12]
"""
import argparse
import random
import subprocess
import tempfile
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-dataset", type=int, default=12)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    clips = []
    for dataset in ["ravdess", "emodb", "crema-d", "urdu"]:
        files = sorted(
            p for p in (args.data / dataset).rglob("*") if p.suffix in {".wav", ".flac"}
        )
        clips += files[: args.per_dataset]
    rng.shuffle(clips)
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for i, clip in enumerate(clips):
            wav = Path(tmp) / f"c{i:03}.wav"
            subprocess.run(
                ["sox", str(clip), "-r", "16000", "-c", "1", "-b", "16", str(wav), "norm", "-3"],
                check=True,
            )
            pause = rng.uniform(0.2, 0.35) if i % 2 == 0 else rng.uniform(0.8, 2.0)
            gap = Path(tmp) / f"g{i:03}.wav"
            subprocess.run(
                ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(gap),
                 "synth", f"{pause:.3f}", "whitenoise", "vol", "0.0003"],
                check=True,
            )
            parts += [str(wav), str(gap)]
        subprocess.run(["sox", *parts, str(args.out)], check=True)
    seconds = subprocess.run(
        ["soxi", "-D", str(args.out)], check=True, capture_output=True, text=True
    ).stdout.strip()
    print(f"{args.out}: {len(clips)} clips, {float(seconds):.1f} s")


if __name__ == "__main__":
    main()
