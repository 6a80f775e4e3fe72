#!/usr/bin/env python3
"""Write corrupted copies of a manifest's clips, one directory per corruption, for
`emomon eval` robustness tables (issue 14).

For every corruption (`kind:level`, see scripts/default_model/corruptions.py) this writes
OUT/<kind>_<level>/<path> (16 kHz mono: float WAV, or 24-bit FLAC for .flac paths) for every selected clip of the
manifest, and OUT/<kind>_<level>/manifest.csv: the same rows with the same `path`s, so
the cross-validation folds (`emomon eval --folds`, whose held-out lists name manifest
paths) apply unchanged. Babble is made from 4 clips of *other* speakers of the same
dataset. The audio goes to OUT only (a cache directory, never the repository), and the
same command writes the same bytes.

    python scripts/corrupt_manifest.py --manifest ../shared/data/manifest.csv \\
        --out ~/.cache/emomon/corrupt --datasets emodb,ravdess,urdu \\
        --corruption babble:10 --corruption white:10 --corruption reverb:0.5 --corruption band:1
    emomon eval --manifest ~/.cache/emomon/corrupt/babble_10/manifest.csv --datasets emodb,ravdess,urdu \\
        --per-dataset-labels --folds ~/.cache/emomon/folds -o eval-babble-10

Needs numpy, scipy, soundfile.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent / "default_model"))
import corruptions  # noqa: E402


def write_like(dest: Path, y: np.ndarray) -> None:
    """Writes `y` in the container `dest`'s extension names (the manifest's paths stay the
    same): WAV as float, FLAC as 24-bit PCM (FLAC has no float), clipped to full scale there
    as a recorder would."""
    if dest.suffix.lower() == ".flac":
        sf.write(dest, np.clip(y, -1.0, 1.0), corruptions.SR, subtype="PCM_24")
    else:
        sf.write(dest, y, corruptions.SR, subtype="FLOAT")


def read_16k(path: Path) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    if sr != corruptions.SR:
        raise SystemExit(f"{path}: {sr} Hz; this script expects the manifest's 16 kHz clips")
    return audio.mean(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="cache directory for the corrupted copies")
    ap.add_argument("--corruption", action="append", required=True, help="KIND:LEVEL, repeatable")
    ap.add_argument("--datasets", default="", help="comma list (default: every dataset)")
    ap.add_argument("--labelled-only", action="store_true", help="only rows with a label")
    args = ap.parse_args()
    try:
        specs = [(s, *corruptions.parse(s)) for s in args.corruption]
    except ValueError as e:
        raise SystemExit(str(e))
    if not args.manifest.is_file():
        raise SystemExit(f"{args.manifest}: no such manifest (point --manifest at ../shared/data/manifest.csv)")
    root = args.manifest.parent
    with open(args.manifest, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = list(reader)
    for need in ("path", "dataset", "speaker"):
        if need not in fields:
            raise SystemExit(f"{args.manifest}: no `{need}` column")
    keep = set(args.datasets.split(",")) if args.datasets else None
    rows = [r for r in rows if (keep is None or r["dataset"] in keep) and (r.get("label") or not args.labelled_only)]
    if not rows:
        raise SystemExit(f"{args.manifest}: no rows selected (check --datasets)")
    for r in rows:
        if Path(r["path"]).is_absolute() or ".." in Path(r["path"]).parts:
            # the copy is written to OUT/<corruption>/<path>: it must stay inside OUT
            raise SystemExit(f"{args.manifest}: path {r['path']!r} is not relative to the manifest's directory")
    audio = {r["path"]: read_16k(root / r["path"]) for r in rows}
    by_dataset: dict[str, list[dict]] = {}
    for r in rows:
        by_dataset.setdefault(r["dataset"], []).append(r)
    for spec, kind, level in specs:
        out = args.out / f"{kind}_{level:g}"
        for i, r in enumerate(rows):
            others = []
            if kind == "babble":
                others = [audio[o["path"]] for o in by_dataset[r["dataset"]] if o["speaker"] != r["speaker"]]
            y = corruptions.apply(audio[r["path"]], spec, r["path"], others)
            dest = out / r["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_like(dest, y)
            if (i + 1) % 500 == 0:
                print(f"{spec}: {i + 1}/{len(rows)}", flush=True)
        with open(out / "manifest.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {out}/manifest.csv ({len(rows)} clips, {spec})", flush=True)


if __name__ == "__main__":
    main()
