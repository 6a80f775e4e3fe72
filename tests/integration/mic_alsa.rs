//! `MicSource` end to end through cpal and ALSA, on a virtual capture device:
//! ALSA's `file` plugin plays a recording as if a sound card captured it
//! (behind `plug`, which converts to whatever format cpal asks for). The
//! plugin delivers faster than real time and its clock is not the file's, so
//! this checks the live path finds the speech, not its timestamps (those are
//! covered by `live_input.rs`, which drives the same code behind the callback).

use crate::common;

use std::path::Path;
use std::process::Command;

use common::decode_16k;

/// A virtual capture device in `dir` that plays `frames` (16 kHz stereo, left and right)
/// as 48 kHz stereo S16, through `plug`; returns the `ALSA_CONFIG_PATH` that makes it
/// the default input, or `None` (with a skip notice for `test`) where there is no ALSA.
pub(crate) fn virtual_capture(test: &str, dir: &Path, frames: &[[f32; 2]]) -> Option<String> {
    let alsa_conf = Path::new("/usr/share/alsa/alsa.conf");
    if !cfg!(target_os = "linux") || !alsa_conf.is_file() {
        common::skip(test, "no ALSA configuration here");
        return None;
    }
    let raw: Vec<u8> = frames
        .iter()
        .flat_map(|frame| {
            let [l, r] = frame.map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
            [l, r, l, r, l, r].concat() // 3× the rate (sample-and-hold)
        })
        .collect();
    let infile = dir.join("capture.raw");
    std::fs::write(&infile, raw).unwrap();
    let conf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            r#"pcm.!default {{
    type plug
    slave {{ pcm "emomon_file" format S16_LE rate 48000 channels 2 }}
}}
pcm.emomon_file {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{}"
    format "raw"
}}
"#,
            infile.display()
        ),
    )
    .unwrap();
    Some(format!("{}:{}", alsa_conf.display(), conf.display()))
}

#[test]
fn microphone_path_segments_a_virtual_alsa_device() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    // 1 s silence, clip, 1.5 s silence, clip, 1.5 s silence, on both channels.
    let mut mono = vec![0.0f32; 16_000];
    for clip in ["03.wav", "07.wav"] {
        mono.extend(decode_16k(&fixtures.join(clip)));
        mono.extend(vec![0.0; 24_000]);
    }
    let frames: Vec<[f32; 2]> = mono.iter().map(|&s| [s, s]).collect();
    let Some(alsa_config) = virtual_capture(
        "microphone_path_segments_a_virtual_alsa_device",
        dir.path(),
        &frames,
    ) else {
        return;
    };

    let out = Command::new(env!("CARGO_BIN_EXE_emomon"))
        .args(["segment", "--mic", "--seconds", "4", "--format", "jsonl"])
        .env("ALSA_CONFIG_PATH", alsa_config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stderr}", out.status);
    assert!(stderr.contains("Listening on \"default\""), "{stderr}");
    let utterances: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        utterances.len(),
        2,
        "one utterance per clip:\n{stdout}\n{stderr}"
    );
    for u in &utterances {
        let duration = u["end_s"].as_f64().unwrap() - u["start_s"].as_f64().unwrap();
        assert!(duration > 0.5, "{u}");
    }
}
