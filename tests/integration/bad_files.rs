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
