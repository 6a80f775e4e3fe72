"""What a laptop microphone in a room does to speech, as deterministic functions of a clip.

Used twice: to pre-encode corrupted copies of the training clips (encode_states.py
--corrupt, data augmentation) and to write corrupted copies of the manifest's clips for
`emomon eval` (scripts/corrupt_manifest.py, the robustness table). A corruption is named
`kind:level`, e.g. `babble:10` (dB SNR), `white:20`, `pink:0`, `gain:-15` (dB),
`reverb:0.5` (RT60 seconds), `band:1` (300-3,400 Hz telephone band), `opus:1` (an Opus
round trip at libsndfile's compression level 0-1: 1 is its lowest bitrate, about 10 kbit/s
at 16 kHz, a poor internet call), and every random
draw comes from a generator seeded by the clip's path and the corruption's name, so the
same command writes the same audio.

Needs numpy, scipy and soundfile (libsndfile >= 1.1 for Opus).
"""
from __future__ import annotations

import io
import zlib

import numpy as np
import soundfile as sf
from scipy import signal

SR = 16000
KINDS = ("babble", "white", "pink", "gain", "reverb", "band", "opus")


def parse(spec: str) -> tuple[str, float]:
    """`kind:level` -> (kind, level), with a message naming the accepted forms."""
    kind, _, level = spec.partition(":")
    if kind not in KINDS or not level:
        raise ValueError(f"corruption {spec!r}: expected KIND:LEVEL with KIND one of {', '.join(KINDS)} "
                         "(e.g. babble:10 = babble at 10 dB SNR, reverb:0.5 = RT60 0.5 s, gain:-15 = -15 dB, "
                         "opus:1 = an Opus round trip at compression level 1)")
    try:
        value = float(level)
    except ValueError:
        raise ValueError(f"corruption {spec!r}: level {level!r} is not a number") from None
    if kind == "reverb" and not 0.05 <= value <= 3.0:
        raise ValueError(f"corruption {spec!r}: RT60 must be within 0.05-3 s")
    if kind == "opus" and not 0.0 <= value <= 1.0:
        raise ValueError(f"corruption {spec!r}: the Opus compression level must be within 0-1")
    return kind, value


def rng_for(path: str, spec: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{path}|{spec}".encode()))


def power(x: np.ndarray) -> float:
    return float(np.mean(x.astype(np.float64) ** 2)) + 1e-12


def mix_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """x + noise scaled so that power(x) / power(noise) is `snr_db` (over the whole clip)."""
    noise = noise[: len(x)]
    return x + noise * np.sqrt(power(x) / (power(noise) * 10 ** (snr_db / 10)))


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped by 1/sqrt(f) in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    return np.fft.irfft(spec, n)


def babble(n: int, others: list[np.ndarray], rng: np.random.Generator, voices: int = 4) -> np.ndarray:
    """The sum of `voices` other speakers' clips (each at equal power, looped and offset at
    random to length n)."""
    if not others:
        raise ValueError("babble needs clips of other speakers")
    out = np.zeros(n)
    for k in rng.choice(len(others), size=min(voices, len(others)), replace=False):
        v = others[k].astype(np.float64)
        v = np.tile(v, n // len(v) + 2)
        start = rng.integers(0, len(v) - n)
        seg = v[start : start + n]
        out += seg / np.sqrt(power(seg))
    return out


def room_impulse(rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Synthetic room: a direct path, then exponentially decaying Gaussian noise whose
    energy falls 60 dB in `rt60` seconds (from 2.5 ms on)."""
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    h = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60) * 0.3
    h[:40] = 0
    h[0] = 1.0
    return h / np.sqrt(np.sum(h ** 2))


def opus_round_trip(x: np.ndarray, level: float) -> np.ndarray:
    """`x` encoded to Ogg Opus in memory at libsndfile's compression `level` and decoded
    again (the lossy codec of a VoIP or messenger call), cut or padded to len(x)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), SR, format="OGG", subtype="OPUS", compression_level=level)
    buf.seek(0)
    y, sr = sf.read(buf, dtype="float64")
    if sr != SR:
        raise RuntimeError(f"the Opus round trip came back at {sr} Hz, not {SR}")
    return np.pad(y[: len(x)], (0, max(0, len(x) - len(y))))


def apply(x: np.ndarray, spec: str, path: str, others: list[np.ndarray] | None = None) -> np.ndarray:
    """`x` (16 kHz float) corrupted by `spec`; the result is clipped to [-1, 1] as a sound
    card would. `A+B` applies A, then B (e.g. `reverb:0.5+babble:10`: a reverberant room
    with other voices in it)."""
    if "+" in spec:
        for part in spec.split("+"):
            x = apply(x, part, path, others)
        return x
    kind, level = parse(spec)
    rng = rng_for(path, spec)
    x = x.astype(np.float64)
    if kind == "babble":
        y = mix_at_snr(x, babble(len(x), others or [], rng), level)
    elif kind == "white":
        y = mix_at_snr(x, rng.standard_normal(len(x)), level)
    elif kind == "pink":
        y = mix_at_snr(x, pink(len(x), rng), level)
    elif kind == "gain":
        y = x * 10 ** (level / 20)
    elif kind == "reverb":
        y = signal.fftconvolve(x, room_impulse(level, rng))[: len(x)]
        y *= np.sqrt(power(x) / power(y))
    elif kind == "opus":
        y = opus_round_trip(x, level)
    else:  # band
        sos = signal.butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")
        y = signal.sosfiltfilt(sos, x)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


MIXES = ("single", "room")


def random_spec(rng: np.random.Generator, mix: str = "single") -> str:
    """One training corruption drawn from the issue's ranges. `single`: one of noise 0-30 dB
    SNR (babble, white or pink), gain +-15 dB, RT60 0.2-0.8 s, or the telephone band.
    `room`: what a laptop in a room hears at once: reverberation (RT60 0.2-0.8 s) half the
    time, then noise at 0-25 dB SNR (babble 60 %, white or pink), then a gain of +-15 dB
    a third of the time."""
    if mix == "room":
        parts = []
        if rng.uniform() < 0.5:
            parts.append(f"reverb:{rng.uniform(0.2, 0.8):.2f}")
        noise = "babble" if rng.uniform() < 0.6 else rng.choice(["white", "pink"])
        parts.append(f"{noise}:{rng.uniform(0, 25):.1f}")
        if rng.uniform() < 1 / 3:
            parts.append(f"gain:{rng.uniform(-15, 15):.1f}")
        return "+".join(parts)
    if mix != "single":
        raise ValueError(f"augmentation mix {mix!r}: expected one of {', '.join(MIXES)}")
    kind = rng.choice(["babble", "babble", "white", "pink", "gain", "reverb", "band"])
    if kind in ("babble", "white", "pink"):
        return f"{kind}:{rng.uniform(0, 30):.1f}"
    if kind == "gain":
        return f"gain:{rng.uniform(-15, 15):.1f}"
    if kind == "reverb":
        return f"reverb:{rng.uniform(0.2, 0.8):.2f}"
    return "band:1"
