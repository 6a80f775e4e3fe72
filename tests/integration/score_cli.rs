//! `emomon score` end to end: the binary on audio files with the tiny fixture models
//! (models/fixtures), output fields, parity of `--whole` with the transformers
//! reference, and clear errors for bad model directories.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{emomon, repo};

use emomon_models::safetensors_load::TensorStore;

fn jsonl(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "emomon failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn model(name: &str) -> String {
    common::fixture_model(name)
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).expect("numbers")
}

#[test]
fn scores_each_utterance_as_json_lines() {
    let input = repo().join("tests/fixtures/audio/12.wav");
    let out = emomon(&[
        "score",
        "--model",
        &model("tiny-qwen2-audio"),
        "--input",
        input.to_str().expect("utf-8"),
        "--labels",
        "neutral,happy,sad,angry",
        "--format",
        "jsonl",
    ]);
    let records = jsonl(&out);
    assert!(!records.is_empty(), "no utterances");
    let mut last_end = 0.0;
    for r in &records {
        let (start, end) = (
            r["start_s"].as_f64().expect("start"),
            r["end_s"].as_f64().expect("end"),
        );
        assert!(start >= last_end && end > start, "{r}");
        last_end = end;
        assert_eq!(
            r["labels"],
            serde_json::json!(["neutral", "happy", "sad", "angry"])
        );
        let probs = floats(&r["probs"]);
        assert_eq!(probs.len(), 4);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{r}");
        assert_eq!(floats(&r["logits"]).len(), 4);
        assert_eq!(r["method"], "first-token");
        assert_eq!(r["model"], model("tiny-qwen2-audio"));
    }
}

/// Writes 16 kHz mono f32 samples as a WAV file.
fn write_wav(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    for &s in samples {
        w.write_sample(s).expect("sample");
    }
    w.finalize().expect("finalize");
}

#[test]
fn whole_file_matches_the_transformers_reference() {
    let fixtures = repo().join("models/fixtures");
    let mut store =
        TensorStore::from_files(&[fixtures.join("tiny-whisper-ref.safetensors")]).expect("ref");
    let audio = store.take_vec("audio.0", &[32000]).expect("audio.0");
    let want = store.take_vec("label_probs.0.t0", &[7]).expect("probs");
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("clip0.wav");
    write_wav(&wav, &audio);
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("tiny-whisper-ref.json")).expect("meta"),
    )
    .expect("json");
    let labels: Vec<String> = serde_json::from_value(meta["scorer"]["labels"].clone()).expect("l");
    let out = emomon(&[
        "score",
        "--model",
        &model("tiny-whisper"),
        "--input",
        wav.to_str().expect("utf-8"),
        "--whole",
        "--labels",
        &labels.join(","),
        "--format",
        "jsonl",
    ]);
    let records = jsonl(&out);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["start_s"].as_f64(), Some(0.0));
    assert!(
        (r["end_s"].as_f64().expect("end") - 2.0).abs() < 1e-3,
        "{r}"
    );
    let got = floats(&r["probs"]);
    let d = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("emomon score --whole vs transformers: probs max |Δ| = {d:.2e}");
    assert!(d <= 1e-4, "{d}: {got:?} vs {want:?}");
}

#[test]
fn table_output_and_token_average() {
    let input = repo().join("tests/fixtures/audio/03.wav");
    let out = emomon(&[
        "score",
        "--model",
        &model("tiny-whisper"),
        "--input",
        input.to_str().expect("utf-8"),
        "--method",
        "token-average",
        "--max-new-tokens",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert!(lines.next().expect("header").contains("entropy"));
    let row = lines.next().expect("a row");
    assert!(row.contains("neutral") && row.contains("surprise"), "{row}");
}

#[test]
fn bad_models_are_named_in_the_error() {
    let input = repo().join("tests/fixtures/audio/03.wav");
    let input = input.to_str().expect("utf-8");
    let out = emomon(&[
        "score",
        "--model",
        "/nonexistent/model-dir",
        "--input",
        input,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model-dir"), "{err}");

    let out = emomon(&["score", "--model", &model("tiny-qwen2"), "--input", input]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Qwen2ForCausalLM") && err.contains("not supported"),
        "{err}"
    );

    let out = emomon(&[
        "score",
        "--model",
        &model("tiny-whisper"),
        "--input",
        input,
        "--labels",
        "happy,happy",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("appears twice"));
}

/// Issue 18 item 1: a truncated file printed nothing and exited 1, although the
/// message says the audio before the cut was used. Its utterances are scored and
/// printed first now, then the error, exit 1, as `segment` does.
#[test]
fn a_truncated_file_is_scored_up_to_the_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = std::fs::read(repo().join("tests/fixtures/audio/demo.wav")).expect("demo");
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &demo[..demo.len() * 7 / 10]).expect("write");
    let cut = cut.to_str().expect("utf-8");
    let segmented = emomon(&["segment", "--format", "jsonl", cut]);
    let expected = String::from_utf8_lossy(&segmented.stdout).lines().count();
    assert!(expected >= 2, "the demo has speech before the cut");
    let tiny = model("tiny-whisper");
    for whole in [false, true] {
        let mut args = vec![
            "score", "--model", &tiny, "--format", "jsonl", "--input", cut,
        ];
        if whole {
            args.push("--whole");
        }
        let out = emomon(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("truncated") && err.contains("cut.wav"),
            "{err}"
        );
        let printed = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(printed, if whole { 1 } else { expected }, "{err}");
    }
}

/// The records of `emomon score --format jsonl` without the timing field.
fn without_latency(out: &Output) -> Vec<serde_json::Value> {
    jsonl(out)
        .into_iter()
        .map(|mut r| {
            r.as_object_mut().expect("record").remove("latency_ms");
            r
        })
        .collect()
}

/// Two workers sharing the model print exactly what one prints, in utterance order,
/// and say how many workers run.
#[test]
fn two_workers_print_the_same_records_in_order() {
    let input = repo().join("tests/fixtures/audio/demo.wav");
    let run = |workers: &str| {
        emomon(&[
            "score",
            "--model",
            &model("tiny-qwen2-audio"),
            "--input",
            input.to_str().expect("utf-8"),
            "--labels",
            "neutral,happy,sad,angry",
            "--format",
            "jsonl",
            "--workers",
            workers,
        ])
    };
    let (one, two) = (run("1"), run("2"));
    assert!(
        String::from_utf8_lossy(&two.stderr).contains("2 scoring workers × 1 CPU thread"),
        "{}",
        String::from_utf8_lossy(&two.stderr)
    );
    let (one, two) = (without_latency(&one), without_latency(&two));
    assert!(one.len() >= 3, "demo.wav should have several utterances");
    assert_eq!(one, two);
    let ids: Vec<u64> = two.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}
