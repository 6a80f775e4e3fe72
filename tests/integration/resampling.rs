//! Resampling keeps time: a recording converted to 44.1 kHz or 8 kHz (by sox,
//! an independent resampler) segments like the 16 kHz original, within one frame.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{Noise, decode_16k, write_wav};
use emomon::capture::FrontEndConfig;

fn segment_file(path: &Path) -> Vec<(f64, f64)> {
    let mut source = emomon::audio::file::FileSource::open(path).unwrap();
    common::segment_source(&mut source, &FrontEndConfig::default())
        .iter()
        .map(|u| (u.start_s, u.end_s))
        .collect()
}

#[test]
fn other_rates_give_the_same_boundaries_within_one_frame() {
    if Command::new("sox").arg("--version").output().is_err() {
        crate::common::skip(
            "other_rates_give_the_same_boundaries_within_one_frame",
            "sox is not installed (apt-get install sox)",
        );
        return;
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    let mut signal = Noise::new(11).samples(12_000, -65.0);
    for clip in ["12.wav", "03.wav", "07.wav"] {
        signal.extend(decode_16k(&fixtures.join(clip)));
        signal.extend(Noise::new(13).samples(20_000, -65.0));
    }
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.wav");
    write_wav(&original, &signal, 16_000);
    let reference = segment_file(&original);
    assert!(reference.len() >= 3, "{reference:?}");

    let frame_s = f64::from(emomon::vad::VadConfig::default().frame_ms) / 1000.0;
    for rate in ["44100", "8000"] {
        let converted = dir.path().join(format!("at_{rate}.wav"));
        let status = Command::new("sox")
            .args([
                original.to_str().unwrap(),
                "-r",
                rate,
                converted.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let found = segment_file(&converted);
        assert_eq!(
            found.len(),
            reference.len(),
            "{rate} Hz: {found:?} vs {reference:?}"
        );
        for (f, r) in found.iter().zip(&reference) {
            assert!(
                (f.0 - r.0).abs() <= frame_s + 1e-9 && (f.1 - r.1).abs() <= frame_s + 1e-9,
                "{rate} Hz: {f:?} vs 16 kHz {r:?}"
            );
        }
    }
}
