//! Bad input files: a clear error naming the file, a non-zero exit, no panic.

use std::path::{Path, PathBuf};
use std::process::Command;

fn emomon(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_emomon"))
        .args(args)
        .output()
        .expect("run emomon");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wav_header(data_len: u32, rate: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(b"RIFF");
    h.extend((36 + data_len).to_le_bytes());
    h.extend(b"WAVEfmt ");
    h.extend(16u32.to_le_bytes());
    h.extend(1u16.to_le_bytes()); // PCM
    h.extend(1u16.to_le_bytes()); // mono
    h.extend(rate.to_le_bytes());
    h.extend((rate * 2).to_le_bytes());
    h.extend(2u16.to_le_bytes());
    h.extend(16u16.to_le_bytes());
    h.extend(b"data");
    h.extend(data_len.to_le_bytes());
    h
}

fn fixture(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn assert_clean_failure(path: &Path, expect: &str) {
    let (ok, _, stderr) = emomon(&["segment", path.to_str().unwrap()]);
    assert!(!ok, "{} should fail", path.display());
    assert!(
        !stderr.contains("panicked"),
        "panic on {}: {stderr}",
        path.display()
    );
    assert!(
        stderr.contains(path.to_str().unwrap()),
        "error must name the file: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains(expect),
        "expected '{expect}' in: {stderr}"
    );
}

#[test]
fn bad_files_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_clean_failure(&d.join("missing.wav"), "cannot open");
    assert_clean_failure(&fixture(d, "empty.wav", b""), "empty");
    assert_clean_failure(
        &fixture(d, "header.wav", &wav_header(32000, 16000)[..20]),
        "not a recognised audio file",
    );
    let noise: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_clean_failure(
        &fixture(d, "random.wav", &noise),
        "not a recognised audio file",
    );
    assert_clean_failure(
        &fixture(d, "random.bin", &noise),
        "not a recognised audio file",
    );
    assert_clean_failure(
        &fixture(d, "nodata.wav", &wav_header(0, 16000)),
        "no audio samples",
    );
    let mut truncated = wav_header(64_000, 16000);
    truncated.extend(vec![0u8; 10_000]);
    assert_clean_failure(&fixture(d, "truncated.wav", &truncated), "truncated");
}

#[test]
fn a_truncated_file_still_reports_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let clip =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/03.wav"))
            .unwrap();
    // Keep the header (which promises the whole clip) and only its first 80 %.
    let path = fixture(dir.path(), "cut.wav", &clip[..clip.len() * 4 / 5]);
    let (ok, stdout, stderr) = emomon(&["segment", "--format", "jsonl", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("truncated"), "{stderr}");
    assert!(
        stdout.lines().count() >= 1,
        "utterances before the cut are printed: {stdout} / {stderr}"
    );
}

#[test]
fn bad_settings_fail_clearly() {
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/03.wav");
    let (ok, _, stderr) = emomon(&["segment", clip.to_str().unwrap(), "--aggressiveness", "7"]);
    assert!(!ok && stderr.contains("aggressiveness"), "{stderr}");
    let (ok, _, stderr) = emomon(&["segment", clip.to_str().unwrap(), "--frame-ms", "25"]);
    assert!(!ok && stderr.contains("10, 20 or 30"), "{stderr}");
}

#[test]
fn segment_prints_jsonl_with_times() {
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/07.wav");
    let (ok, stdout, stderr) = emomon(&["segment", "--format", "jsonl", clip.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!records.is_empty());
    for r in &records {
        let (start, end) = (r["start_s"].as_f64().unwrap(), r["end_s"].as_f64().unwrap());
        assert!(0.0 <= start && start < end, "{r}");
    }
}

/// Issue 18 item 2: a crafted header panicked (0 Hz: "TimeBase cannot have 0
/// numerator", exit 101), exhausted memory (4,294,967,295 Hz, 2^31 Hz), burned CPU
/// (1 Hz) or silently found nothing (4 GHz). Every field is checked first now.
#[test]
fn implausible_headers_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut speech = wav_header(32_000, 16_000);
    speech.extend((0..16_000u32).flat_map(|i| (((i * 37) % 2000) as i16 - 1000).to_le_bytes()));
    for rate in [0u32, 1, 999, 384_001, 1 << 31, 4_000_000_000, u32::MAX] {
        let mut bytes = speech.clone();
        bytes[24..28].copy_from_slice(&rate.to_le_bytes());
        let path = fixture(dir.path(), &format!("rate-{rate}.wav"), &bytes);
        assert_clean_failure(
            &path,
            &format!("sample rate {rate} hz is outside 1000–384000 hz"),
        );
    }
    let mut many = speech.clone();
    many[22..24].copy_from_slice(&60_000u16.to_le_bytes());
    assert_clean_failure(
        &fixture(dir.path(), "channels.wav", &many),
        "60000 channels",
    );
    // The plausible extremes still decode.
    for rate in [8_000u32, 192_000] {
        let mut bytes = speech.clone();
        bytes[24..28].copy_from_slice(&rate.to_le_bytes());
        let path = fixture(dir.path(), &format!("ok-{rate}.wav"), &bytes);
        let (ok, _, stderr) = emomon(&["segment", path.to_str().unwrap()]);
        assert!(ok, "{rate} Hz: {stderr}");
    }
}

/// Issue 18 item 8: a directory, OS errors printed once, random bytes without a
/// screen of decoder warnings, a model path that does not exist.
#[test]
fn small_failures_read_well() {
    let dir = tempfile::tempdir().unwrap();
    assert_clean_failure(dir.path(), "is a directory");

    let missing = dir.path().join("missing.wav");
    let (_, _, stderr) = emomon(&["segment", missing.to_str().unwrap()]);
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );

    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut mp3ish = b"\xff\xfb\x90\x64".to_vec();
    mp3ish.extend(&noise);
    for (name, bytes) in [("random.wav", noise.clone()), ("random.mp3", mp3ish)] {
        let path = fixture(dir.path(), name, &bytes);
        let (_, _, stderr) = emomon(&["segment", path.to_str().unwrap()]);
        assert!(stderr.matches("WARN").count() <= 1, "{name}: {stderr}");
    }

    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/03.wav");
    let (ok, _, stderr) = emomon(&[
        "score",
        "--input",
        clip.to_str().unwrap(),
        "--model",
        "/nonexistent/model-dir",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("/nonexistent/model-dir does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("download"), "{stderr}");
}
