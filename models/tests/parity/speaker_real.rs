//! The burn GE2E speaker encoder vs resemblyzer 0.1.4 itself (`VoiceEncoder.embed_utterance`
//! after `normalise_volume`) on real clips from `../shared/data`: cosine ≥ 0.9999 per
//! utterance, and the front end's power mel against librosa's.
//!
//! The reference (`fixtures/speaker-encoder-ref.json`) comes from
//! `scripts/speaker_reference.py`. The weights (17 MB, converted by `emomon setup`) are not
//! committed: the test runs when `EMOMON_SPEAKER_ENCODER` or the setup directory holds
//! them, and otherwise skips with a notice.

use crate::common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use emomon_models::speaker::{PowerMel, SpeakerEncoder, WEIGHTS_FILE, cosine, default_dir};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    clips: Vec<Clip>,
}

#[derive(Deserialize)]
struct Clip {
    file: String,
    samples: usize,
    partials: usize,
    embedding: Vec<f32>,
    #[serde(default)]
    mel_head: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let path = common::fixture("speaker-encoder-ref.json");
    let text = std::fs::read_to_string(&path).expect("reference json");
    serde_json::from_str(&text).expect("reference format")
}

fn weights() -> Option<PathBuf> {
    let dir = std::env::var_os("EMOMON_SPEAKER_ENCODER")
        .map(PathBuf::from)
        .unwrap_or_else(default_dir);
    if dir.join(WEIGHTS_FILE).is_file() || dir.is_file() {
        Some(dir)
    } else {
        common::skip(
            "speaker_real",
            format_args!(
                "no {WEIGHTS_FILE} in {} (run `emomon setup` or set EMOMON_SPEAKER_ENCODER)",
                dir.display()
            ),
        );
        None
    }
}

fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if dir.join("manifest.csv").is_file() {
        Some(dir)
    } else {
        common::skip("speaker_real", format_args!("{} not found", dir.display()));
        None
    }
}

/// 16-bit PCM scaled by 1/32768, as the reference script reads it with soundfile.
fn read_clip(path: &Path, keep: usize) -> Vec<f32> {
    let mut reader =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(reader.spec().sample_rate, 16_000);
    reader
        .samples::<i16>()
        .take(keep)
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect()
}

#[test]
fn power_mel_matches_librosa() {
    let Some(data) = shared_data() else { return };
    let reference = reference();
    let clip = &reference.clips[0];
    let wav =
        emomon_models::speaker::normalise_volume(&read_clip(&data.join(&clip.file), clip.samples))
            .expect("not silent");
    let mel = PowerMel::new().compute(&wav);
    assert!(!clip.mel_head.is_empty());
    for (t, want) in clip.mel_head.iter().enumerate() {
        for (m, (&got, &want)) in mel[t].iter().zip(want).enumerate() {
            let tol = 1e-4 * want.abs().max(1e-6);
            assert!(
                (got - want).abs() <= tol,
                "frame {t} band {m}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn embeddings_match_resemblyzer() {
    let (Some(dir), Some(data)) = (weights(), shared_data()) else {
        return;
    };
    let encoder = SpeakerEncoder::load(&dir, &Device::flex()).expect("load speaker encoder");
    let reference = reference();
    assert!(reference.clips.len() >= 4);
    let mut worst = 1.0f32;
    for clip in &reference.clips {
        let wav = read_clip(&data.join(&clip.file), clip.samples);
        assert_eq!(wav.len(), clip.samples, "{}", clip.file);
        let partials = encoder.embed_partials(&wav).expect("embed");
        assert_eq!(
            partials.len(),
            clip.partials,
            "{}: partial windows",
            clip.file
        );
        let got = encoder.embed(&wav).expect("embed");
        let cos = cosine(&got, &clip.embedding);
        println!("{}: {} partials, cosine {cos:.7}", clip.file, clip.partials);
        worst = worst.min(cos);
    }
    assert!(worst >= 0.9999, "worst cosine {worst}");
    // Different speakers really are told apart (the test would pass for a constant
    // encoder otherwise): EmoDB 08 (f) vs 10 (m).
    let a = encoder
        .embed(&read_clip(&data.join(&reference.clips[1].file), 32_000))
        .unwrap();
    let b = encoder
        .embed(&read_clip(&data.join(&reference.clips[2].file), 32_000))
        .unwrap();
    assert!(
        cosine(&a, &b) < 0.9,
        "two speakers: cosine {}",
        cosine(&a, &b)
    );
}
