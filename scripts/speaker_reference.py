#!/usr/bin/env python3
"""Reference speaker embeddings from resemblyzer 0.1.4 itself, for the burn port's parity
test (`cargo test -p emomon-models --test parity speaker_real`).

Needs a Python with `resemblyzer==0.1.4` (and so torch, librosa, webrtcvad); never run in
CI. Each clip is read as 16-bit PCM scaled by 1/32768 (what the Rust test reads), cut to
`samples`, volume-normalised as `resemblyzer.preprocess_wav` does (-30 dBFS, increase
only; the silence trimming is left out because emomon's utterances are already cut by a
VAD) and embedded with `VoiceEncoder.embed_utterance` (rate 1.3, min coverage 0.75).

Usage: python scripts/speaker_reference.py SHARED_DATA models/fixtures/speaker-encoder-ref.json
"""

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from resemblyzer import VoiceEncoder, audio
from resemblyzer.hparams import audio_norm_target_dBFS

# (file under ../shared/data, samples to keep or None for all): a cut shorter than one
# 1.6 s partial, 2 s EmoDB clips of three speakers (one cut to 1.56 s) and a 6.8 s clip with
# several partials.
CLIPS = [
    ("pyaudioanalysis/00.wav", 12800),
    ("emodb/08a01Ab.wav", None),
    ("emodb/10a01Wa.wav", None),
    ("emodb/13a01Ac.wav", 25000),
    ("pyaudioanalysis/28.wav", None),
]


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    encoder = VoiceEncoder("cpu", verbose=False)
    clips = []
    for name, keep in CLIPS:
        pcm, sr = sf.read(data / name, dtype="int16")
        assert sr == 16000 and pcm.ndim == 1, name
        wav = pcm.astype(np.float32) / 32768.0
        if keep is not None:
            wav = wav[:keep]
        wav = audio.normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)
        embed, partials, _ = encoder.embed_utterance(wav, return_partials=True)
        clip = {
            "file": name,
            "samples": len(wav),
            "partials": len(partials),
            "embedding": [float(x) for x in embed],
        }
        if not clips:
            mel = audio.wav_to_mel_spectrogram(wav)
            clip["mel_frames"] = len(mel)
            clip["mel_head"] = [[float(x) for x in row] for row in mel[:4]]
        clips.append(clip)
        print(f"{name}: {len(wav)} samples, {len(partials)} partials")
    out.write_text(json.dumps({"source": "resemblyzer==0.1.4", "clips": clips}, indent=1) + "\n")


if __name__ == "__main__":
    main()
