//! Prosody descriptors against synthetic signals with known answers, and a
//! sanity check on real speech from `../shared/data` (skipped when absent).

use std::f32::consts::PI;
use std::path::PathBuf;

use emomon::prosody::{Prosody, ProsodyAnalyzer, ProsodyConfig, analyze};

const SR: u32 = 16_000;

fn tone(freq: f32, amp: f32, seconds: f32) -> Vec<f32> {
    let n = (seconds * SR as f32) as usize;
    (0..n)
        .map(|i| amp * (2.0 * PI * freq * i as f32 / SR as f32).sin())
        .collect()
}

/// Deterministic white noise in [-amp, amp] (xorshift32; no rand dependency).
fn noise(amp: f32, n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            amp * ((s as f32 / u32::MAX as f32) * 2.0 - 1.0)
        })
        .collect()
}

/// `bursts` copies of (`on_s` of signal, `off_s` of silence), ending with a burst.
fn gated(
    mut signal: impl FnMut(usize) -> Vec<f32>,
    bursts: usize,
    on_s: f32,
    off_s: f32,
) -> Vec<f32> {
    let on = (on_s * SR as f32) as usize;
    let off = (off_s * SR as f32) as usize;
    let mut out = Vec::new();
    for b in 0..bursts {
        out.extend(signal(on));
        if b + 1 < bursts {
            out.extend(std::iter::repeat_n(0.0, off));
        }
    }
    out
}

fn run(samples: &[f32]) -> Prosody {
    analyze(samples, SR).expect("default config is valid")
}

#[test]
fn pure_tones_give_their_frequency() {
    for &f in &[80.0f32, 110.0, 150.0, 220.0, 300.0, 440.0] {
        let p = run(&tone(f, 0.5, 1.0));
        let median = p.f0_median_hz.expect("tone is voiced");
        let rel = (median - f).abs() / f;
        assert!(
            rel < 0.01,
            "{f} Hz tone: median F0 {median} ({:.3}% off)",
            rel * 100.0
        );
        let range = p.f0_range_hz.expect("tone is voiced");
        assert!(range < 0.01 * f, "{f} Hz tone: F0 range {range} Hz");
        assert!(
            p.voiced_fraction > 0.95,
            "{f} Hz: voiced {}",
            p.voiced_fraction
        );
        // A steady 0.5-amplitude sine has power 0.125 → −9.03 dBFS on every frame.
        let e = p.energy_db_mean.expect("tone is active");
        assert!((e - (-9.03)).abs() < 0.1, "{f} Hz energy {e}");
        assert!(p.energy_db_var.expect("active") < 0.05);
        assert_eq!(p.pause_ratio, Some(0.0));
    }
}

#[test]
fn harmonic_and_noisy_tones_keep_their_fundamental() {
    // Harmonics 1..=8 with a fundamental weaker than its overtones (as in many
    // voices): YIN must report the period, not an overtone.
    let f0 = 120.0f32;
    let n = SR as usize;
    let rich: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / SR as f32;
            (1..=8)
                .map(|h| {
                    let amp = if h == 1 { 0.3 } else { 1.0 / h as f32 };
                    amp * (2.0 * PI * f0 * h as f32 * t).sin()
                })
                .sum::<f32>()
                * 0.2
        })
        .collect();
    let got = run(&rich).f0_median_hz.expect("voiced");
    assert!((got - f0).abs() / f0 < 0.01, "harmonic tone: {got}");

    // 200 Hz tone at 10 dB SNR in white noise.
    let noisy: Vec<f32> = tone(200.0, 0.5, 1.0)
        .iter()
        .zip(noise(0.5 * (3.0f32 / 20.0).sqrt(), n, 9))
        .map(|(a, b)| a + b)
        .collect();
    let p = run(&noisy);
    let got = p.f0_median_hz.expect("voiced");
    assert!((got - 200.0).abs() / 200.0 < 0.02, "noisy tone: {got}");
    assert!(
        p.voiced_fraction > 0.8,
        "noisy tone voiced {}",
        p.voiced_fraction
    );
}

#[test]
fn frequency_sweep_range_matches_percentiles() {
    // Linear glide 100 → 200 Hz over 2 s: per-frame F0 is uniform on [100, 200],
    // so the 5th–95th percentile range is ≈ 90 Hz and the median ≈ 150 Hz.
    let seconds = 2.0f32;
    let n = (seconds * SR as f32) as usize;
    let (f_start, f_end) = (100.0f32, 200.0f32);
    let k = (f_end - f_start) / seconds;
    let samples: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / SR as f32;
            0.5 * (2.0 * PI * (f_start * t + 0.5 * k * t * t)).sin()
        })
        .collect();
    let p = run(&samples);
    let median = p.f0_median_hz.expect("voiced");
    let range = p.f0_range_hz.expect("voiced");
    assert!((median - 150.0).abs() < 3.0, "median {median}");
    assert!((range - 90.0).abs() < 5.0, "range {range}");
}

#[test]
fn silence_has_no_f0() {
    for samples in [vec![0.0f32; 16_000], noise(1e-5, 16_000, 7)] {
        let p = run(&samples);
        assert_eq!(p.f0_median_hz, None);
        assert_eq!(p.f0_range_hz, None);
        assert_eq!(p.voiced_fraction, 0.0);
        assert_eq!(p.energy_db_mean, None);
        assert_eq!(p.speaking_rate_syll_s, None);
    }
}

#[test]
fn white_noise_is_unvoiced_but_active() {
    let p = run(&noise(0.3, 32_000, 42));
    assert!(p.voiced_fraction < 0.05, "voiced {}", p.voiced_fraction);
    assert!(p.energy_db_mean.is_some());
    assert_eq!(p.pause_ratio, Some(0.0));
}

#[test]
fn gated_noise_pause_ratio_is_gap_fraction() {
    // 6 bursts of 300 ms with 200 ms gaps: span 2.8 s, gaps 1.0 s → 0.357.
    let mut seed = 1u32;
    let samples = gated(
        |n| {
            seed += 1;
            noise(0.3, n, seed)
        },
        6,
        0.3,
        0.2,
    );
    let p = run(&samples);
    let expected = 1.0 / 2.8;
    let got = p.pause_ratio.expect("active");
    assert!(
        (got - expected).abs() < 0.03,
        "pause ratio {got}, expected {expected}"
    );
    // Noise is unvoiced, so there are no syllable nuclei.
    assert_eq!(p.speaking_rate_syll_s, Some(0.0));
}

#[test]
fn gated_tone_rate_and_pauses() {
    // 8 voiced bursts of 200 ms separated by 250 ms pauses: 8 nuclei in 1.6 s of
    // phonation = 5 syllables/s; pause ratio 1.75 / 3.35.
    let samples = gated(|n| tone(180.0, 0.4, n as f32 / SR as f32), 8, 0.2, 0.25);
    let p = run(&samples);
    let rate = p.speaking_rate_syll_s.expect("phonation");
    assert!((rate - 5.0).abs() < 0.5, "rate {rate}");
    let pause = p.pause_ratio.expect("active");
    let expected = 1.75 / 3.35;
    assert!(
        (pause - expected).abs() < 0.03,
        "pause {pause} vs {expected}"
    );
    let f0 = p.f0_median_hz.expect("voiced");
    assert!((f0 - 180.0).abs() < 1.8, "f0 {f0}");
}

#[test]
fn amplitude_modulated_tone_rate_is_modulation_rate() {
    // Carrier 200 Hz, envelope 0.55 + 0.45·sin(2π f_m t): troughs 20 dB below the
    // peaks (still active, no pauses), one envelope peak per modulation cycle.
    for &fm in &[3.0f32, 4.0, 6.0] {
        let seconds = 4.0;
        let samples: Vec<f32> = tone(200.0, 1.0, seconds)
            .into_iter()
            .enumerate()
            .map(|(i, x)| {
                let t = i as f32 / SR as f32;
                x * 0.5 * (0.55 + 0.45 * (2.0 * PI * fm * t).sin())
            })
            .collect();
        let p = run(&samples);
        assert_eq!(p.pause_ratio, Some(0.0), "fm {fm}");
        let rate = p.speaking_rate_syll_s.expect("phonation");
        assert!((rate - fm).abs() / fm < 0.1, "fm {fm}: rate {rate}");
    }
}

#[test]
fn custom_config_is_honoured() {
    let cfg = ProsodyConfig {
        sample_rate: 8_000,
        f0_max_hz: 400.0,
        ..ProsodyConfig::default()
    };
    let analyzer = ProsodyAnalyzer::new(cfg).expect("valid");
    let samples: Vec<f32> = (0..8_000)
        .map(|i| 0.5 * (2.0 * PI * 125.0 * i as f32 / 8_000.0).sin())
        .collect();
    let p = analyzer.analyze(&samples);
    let f0 = p.f0_median_hz.expect("voiced");
    assert!((f0 - 125.0).abs() < 1.25, "f0 {f0}");
}

#[test]
fn serde_round_trip() {
    let p = run(&tone(150.0, 0.5, 0.5));
    let json = serde_json::to_string(&p).expect("serialize");
    let back: Prosody = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(p, back);
}

fn shared_data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIPPED: {} not found; real-speech prosody check not run",
            dir.display()
        );
        None
    }
}

fn read_wav(path: &PathBuf) -> (Vec<f32>, u32) {
    let mut reader =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(spec.channels, 1, "{}: expected mono", path.display());
    let samples = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u32 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<Vec<_>, _>>()
        }
        hound::SampleFormat::Float => reader.samples::<f32>().collect(),
    }
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (samples, spec.sample_rate)
}

#[test]
fn real_speech_is_plausible() {
    let Some(dir) = shared_data() else { return };
    // Neutral EmoDB sentences: speakers 08, 09, 13 are female; 10, 11, 12 male.
    let female = ["08a01Na", "08a02Na", "09a01Nb", "09a04Nb", "13a01Nb"];
    let male = ["10a01Nb", "10a02Na", "11a01Nd", "11a02Nc", "12a01Nb"];
    let mut medians = [Vec::new(), Vec::new()];
    for (g, names) in [female, male].iter().enumerate() {
        for name in names {
            let path = dir.join(format!("emodb/{name}.wav"));
            if !path.exists() {
                println!("SKIPPED clip {}: missing", path.display());
                continue;
            }
            let (samples, sr) = read_wav(&path);
            let p = analyze(&samples, sr).expect("valid config");
            println!("{name}: {p:?}");
            let f0 = p.f0_median_hz.expect("speech has voiced frames");
            assert!((70.0..=300.0).contains(&f0), "{name}: median F0 {f0}");
            assert!(
                (0.15..=0.95).contains(&p.voiced_fraction),
                "{name}: voiced fraction {}",
                p.voiced_fraction
            );
            let rate = p.speaking_rate_syll_s.expect("phonation");
            assert!((1.0..=10.0).contains(&rate), "{name}: rate {rate}");
            let pause = p.pause_ratio.expect("active");
            assert!((0.0..0.6).contains(&pause), "{name}: pause {pause}");
            medians[g].push(f0);
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    if !medians[0].is_empty() && !medians[1].is_empty() {
        let (f, m) = (mean(&medians[0]), mean(&medians[1]));
        println!("mean median F0: female {f:.1} Hz, male {m:.1} Hz");
        assert!(f > 1.3 * m, "female {f} vs male {m}");
    }
}
