"""Checks of the training side that need no encoder states (python -m unittest, from this
directory, in the training venv): the corruptions measure what they claim, the nested
folds never share a speaker, and reference.py's independent read-out equals readout.py's.

    cd scripts/default_model && python -m unittest test_training -v
"""
from __future__ import annotations

import csv
import unittest
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy import signal

import common as C
import corruptions
from encode_states import DATA
from readout import LayerASP, PooledLinear
from reference import readout_shift


def speech() -> np.ndarray | None:
    """A real clip of ../shared/data (EmoDB speaker 08), or None with a notice."""
    clips = sorted((DATA / "emodb").glob("08a*.wav"))
    if not clips:
        print(f"NOTICE: {DATA}/emodb is absent; the real-speech checks are skipped")
        return None
    return sf.read(clips[0], dtype="float32")[0]


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))


class Corruptions(unittest.TestCase):
    def setUp(self):
        self.x = speech()
        if self.x is None:
            self.skipTest("no shared data")
        self.others = [sf.read(p, dtype="float32")[0] for p in sorted((DATA / "emodb").glob("1*.wav"))[:6]]

    def test_additive_noise_lands_at_the_requested_snr(self):
        for spec in ("white:10", "pink:0", "pink:30", "babble:10", "babble:5"):
            y = corruptions.apply(self.x, spec, "p", self.others)
            self.assertEqual(len(y), len(self.x))
            self.assertAlmostEqual(snr_db(self.x, y), float(spec.split(":")[1]), delta=0.2, msg=spec)

    def test_the_same_clip_and_corruption_give_the_same_audio(self):
        a = corruptions.apply(self.x, "babble:10", "p", self.others)
        self.assertTrue(np.array_equal(a, corruptions.apply(self.x, "babble:10", "p", self.others)))
        self.assertFalse(np.array_equal(a, corruptions.apply(self.x, "babble:10", "q", self.others)))

    def test_opus_round_trip_keeps_the_clip_in_time_and_loses_detail(self):
        fine, coarse = (corruptions.apply(self.x, f"opus:{q}", "p") for q in (0.5, 1))
        self.assertEqual((len(fine), len(coarse)), (len(self.x), len(self.x)))
        # aligned (a codec delay would decorrelate them), and lossy: more at the lowest bitrate
        err_fine, err_coarse = (snr_db(self.x, y) for y in (fine, coarse))
        self.assertGreater(err_fine, err_coarse)
        self.assertGreater(err_coarse, 3.0)
        self.assertLess(err_coarse, 30.0)

    def test_gain_scales_by_the_decibels_given(self):
        y = corruptions.apply(self.x, "gain:-15", "p")
        self.assertAlmostEqual(10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(self.x.astype(np.float64) ** 2)),
                               -15.0, delta=0.01)

    def test_chained_corruptions_apply_in_order(self):
        both = corruptions.apply(self.x, "reverb:0.5+babble:10", "p", self.others)
        one = corruptions.apply(corruptions.apply(self.x, "reverb:0.5", "p", self.others), "babble:10", "p", self.others)
        np.testing.assert_array_equal(both, one)
        self.assertFalse(np.array_equal(both, corruptions.apply(self.x, "babble:10", "p", self.others)))

    def test_room_mix_draws_noise_every_time_within_the_ranges(self):
        rng = np.random.default_rng(0)
        specs = [corruptions.random_spec(rng, "room") for _ in range(300)]
        for spec in specs:
            parts = [corruptions.parse(p) for p in spec.split("+")]
            kinds = [k for k, _ in parts]
            noise = [lv for k, lv in parts if k in ("babble", "white", "pink")]
            self.assertEqual(len(noise), 1, spec)
            self.assertTrue(0 <= noise[0] <= 25, spec)
            self.assertTrue(all(0.2 <= lv <= 0.8 for k, lv in parts if k == "reverb"), spec)
            self.assertEqual(kinds, sorted(kinds, key=["reverb", "babble", "white", "pink", "gain"].index), spec)
        share = lambda kind: np.mean([kind in s for s in specs])
        self.assertAlmostEqual(share("reverb"), 0.5, delta=0.08)
        self.assertAlmostEqual(share("babble"), 0.6, delta=0.08)
        with self.assertRaisesRegex(ValueError, "single, room"):
            corruptions.random_spec(rng, "studio")


class Filters(unittest.TestCase):
    def test_band_limit_keeps_the_telephone_band_only(self):
        t = np.arange(16000) / 16000
        for hz, kept in ((100, False), (1000, True), (3000, True), (6000, False)):
            tone = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
            y = corruptions.apply(tone, "band:1", "p")[2000:-2000]
            ratio = np.sqrt(np.mean(y.astype(np.float64) ** 2) / np.mean(tone[2000:-2000].astype(np.float64) ** 2))
            self.assertGreater(ratio, 0.8, hz) if kept else self.assertLess(ratio, 0.15, hz)

    def test_reverberation_decays_60_db_in_rt60(self):
        for rt60 in (0.2, 0.8):
            h = corruptions.room_impulse(rt60, np.random.default_rng(0))
            edc = np.cumsum(h[::-1] ** 2)[::-1]  # Schroeder backward integration
            db = 10 * np.log10(edc / edc[0])
            # T20: the -5 to -25 dB slope, extrapolated to 60 dB
            t5, t25 = np.argmax(db < -5) / 16000, np.argmax(db < -25) / 16000
            self.assertAlmostEqual(3 * (t25 - t5), rt60, delta=0.1 * rt60, msg=rt60)

    def test_bad_specs_name_the_accepted_forms(self):
        for spec, words in (("hum:3", "KIND:LEVEL"), ("white:x", "not a number"), ("reverb:9", "RT60")):
            with self.assertRaises(ValueError) as e:
                corruptions.parse(spec)
            self.assertIn(words, str(e.exception))


class Folds(unittest.TestCase):
    def test_nested_folds_hold_out_whole_speakers(self):
        manifest = DATA / "manifest.csv"
        if not manifest.is_file():
            self.skipTest(f"NOTICE: {manifest} is absent")
        with open(manifest) as f:
            clips = [r for r in csv.DictReader(f) if r["label"]]
        key = lambda c: (c["dataset"], c["speaker"])
        outer = C.speaker_folds(clips, 4, 0)
        for k in range(4):
            train = [c for c, f in zip(clips, outer) if f != k]
            test_spk = {key(c) for c, f in zip(clips, outer) if f == k}
            self.assertFalse(test_spk & {key(c) for c in train})
            inner = C.speaker_folds(train, 3, 1)
            for j in range(3):
                val = {key(c) for c, f in zip(train, inner) if f == j}
                fit = {key(c) for c, f in zip(train, inner) if f != j}
                self.assertTrue(val and fit and not val & fit)
                # every dataset is in every inner validation fold
                self.assertEqual({d for d, _ in val}, {"emodb", "ravdess", "urdu"})


class Augmentation(unittest.TestCase):
    """Corrupted copies (train.py --augment) join the training side only: tied to their clean
    clip, outside the clean index range the folds are dealt over, and a split's copies are
    exactly the copies of its own clips."""

    def states(self, tmp: Path, name: str, clips: list[dict], copies: int) -> Path:
        out = tmp / name
        torch.save({"trim_db": 40.0, "corrupt_copies": copies, "clips": clips}, out)
        return out

    def test_copies_follow_their_clean_clip_into_training_only(self):
        import tempfile
        from train import load_states, with_copies
        clean = [{"path": f"emodb/{s}a{i}.wav", "dataset": "emodb", "speaker": s, "label": "angry"}
                 for s in ("03", "08", "09", "10", "11", "12") for i in range(3)]
        noisy = [c | {"corruption": spec} for c in clean for spec in ("babble:10.0", "reverb:0.40")]
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            data = load_states([self.states(d, "clean.pt", list(reversed(clean)), 0)],
                               [self.states(d, "aug.pt", noisy, 2)])
        n = data["n_clean"]
        self.assertEqual(n, len(clean))
        paths = [c["path"] for c in data["clips"]]
        self.assertEqual(paths[:n], sorted(paths[:n]))
        self.assertTrue(all("corruption" not in c for c in data["clips"][:n]))
        fold = C.speaker_folds(data["clips"][:n], 3, 0)
        for k in range(3):
            tr = np.where(fold != k)[0]
            got = with_copies(data["aug_of"], tr)
            self.assertEqual(list(got[: len(tr)]), list(tr))
            copies = got[len(tr):]
            self.assertEqual(len(copies), 2 * len(tr))
            self.assertTrue((copies >= n).all())
            train_speakers = {data["clips"][i]["speaker"] for i in tr}
            self.assertEqual({data["clips"][i]["speaker"] for i in copies}, train_speakers)
            self.assertEqual(sorted(data["clips"][i]["path"] for i in copies),
                             sorted(2 * [data["clips"][i]["path"] for i in tr]))

    def test_copies_without_a_clean_clip_are_refused(self):
        import tempfile
        from train import load_states
        clip = {"path": "emodb/03a01.wav", "dataset": "emodb", "speaker": "03", "label": "angry"}
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            clean = self.states(d, "clean.pt", [clip], 0)
            stray = self.states(d, "aug.pt", [clip | {"path": "emodb/09a01.wav", "corruption": "white:5.0"}], 1)
            with self.assertRaisesRegex(SystemExit, "no clean clip"):
                load_states([clean], [stray])
            with self.assertRaisesRegex(SystemExit, "holds clean states"):
                load_states([clean], [clean])


class Readouts(unittest.TestCase):
    def test_reference_readout_equals_the_trained_module(self):
        torch.manual_seed(1)
        mu, sd = torch.randn(7, 512), torch.rand(7, 512) + 0.5
        taps = [torch.randn(40, 512) * 3 + 1 for _ in range(7)]
        for mlp in (0, 256):
            ro = LayerASP(mu, sd, 512, mlp_hidden=mlp)
            for p in ro.parameters():
                torch.nn.init.normal_(p, std=0.05)
            with torch.no_grad():  # running statistics of the pooled batch-norm
                ro({"layers": torch.randn(8, 7, 40, 512) * 2, "frames": torch.ones(8, 40, dtype=torch.bool)})
            ro.eval()
            tensors, fields = ro.export()
            with torch.no_grad():
                a = ro({"layers": torch.stack(taps)[None], "frames": torch.ones(1, 40, dtype=torch.bool)})[0]
            self.assertLess(float((a - readout_shift(fields, tensors, taps)).abs().max()), 1e-4)
        pooled = torch.cat([torch.cat([taps[3].mean(0), taps[3].std(0)])])
        ro = PooledLinear([3], torch.randn(1024), torch.rand(1024) + 0.5, 512)
        torch.nn.init.normal_(ro.lin.weight, std=0.05)
        tensors, fields = ro.export()
        with torch.no_grad():
            a = ro({"pooled": pooled[None]})[0]
        self.assertLess(float((a - readout_shift(fields, tensors, taps)).abs().max()), 1e-3)

    def test_padding_frames_do_not_change_the_pooled_statistics(self):
        torch.manual_seed(2)
        ro = LayerASP(torch.zeros(7, 16), torch.ones(7, 16), 8).eval()
        torch.nn.init.normal_(ro.out.weight, std=0.1)
        x = torch.randn(1, 7, 10, 16)
        padded = torch.cat([x, torch.randn(1, 7, 5, 16) * 100], 2)
        mask = torch.cat([torch.ones(1, 10), torch.zeros(1, 5)], 1).bool()
        with torch.no_grad():
            a = ro({"layers": x, "frames": torch.ones(1, 10, dtype=torch.bool)})
            b = ro({"layers": padded, "frames": mask})
        self.assertLess(float((a - b).abs().max()), 1e-5)


if __name__ == "__main__":
    unittest.main()
