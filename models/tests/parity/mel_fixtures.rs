//! Log-mel front end vs transformers' `WhisperFeatureExtractor` on real clips.

use crate::common;

use common::{Reference, max_abs_diff};
use emomon_models::mel::{MelConfig, MelExtractor, Padding};

const TOL: f32 = 1e-4;

fn check(bins: usize, key: &str, padding: Padding, clips: &[usize]) {
    let reference = Reference::load();
    let ex = MelExtractor::new(MelConfig::whisper(bins)).expect("config");
    for &i in clips {
        let (_, audio) = reference.f32(&format!("audio.{i}"));
        let (shape, want) = reference.f32(&format!("{key}.{i}"));
        let mel = ex.compute(&audio, padding).expect("mel");
        assert_eq!(
            [mel.n_mels, mel.n_frames],
            [shape[0], shape[1]],
            "{key}.{i} shape"
        );
        let d = max_abs_diff(&mel.data, &want);
        println!("{key}.{i}: {} frames, max |Δ| = {d:.3e}", mel.n_frames);
        assert!(d <= TOL, "{key}.{i}: max |Δ| = {d} > {TOL}");
    }
}

#[test]
fn mel80_unpadded_matches_transformers() {
    check(80, "mel80", Padding::None, &[0, 1, 2]);
}

#[test]
fn mel128_unpadded_matches_transformers() {
    check(128, "mel128", Padding::None, &[0, 1, 2]);
}

#[test]
fn mel80_padded_30s_matches_transformers() {
    check(80, "mel80_padded", Padding::Chunk, &[0]);
}

#[test]
fn preprocessor_config_is_read() {
    let cfg = MelConfig::from_file(&common::fixture("tiny-whisper/preprocessor_config.json"))
        .expect("preprocessor_config.json");
    assert_eq!(cfg, MelConfig::whisper(80));
}
