//! `--device wgpu` through the binary. Built with `--features wgpu` (as `.ci/run` does,
//! where wgpu runs on lavapipe, Mesa's CPU Vulkan), `emomon score` and `emomon run` on
//! the GPU path must give the CPU path's numbers; built without it, asking for the GPU
//! must fail with a message that says how to get it.

mod common;

use common::{emomon, repo};

fn model(name: &str) -> String {
    common::fixture_model(name)
}

#[cfg(not(feature = "wgpu"))]
#[test]
fn without_the_feature_wgpu_is_refused_with_the_rebuild_hint() {
    let input = repo().join("tests/fixtures/audio/03.wav");
    let out = emomon(&[
        "score",
        "--model",
        &model("tiny-whisper"),
        "--input",
        input.to_str().expect("utf-8"),
        "--device",
        "wgpu",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features wgpu"), "{err}");
}

#[cfg(feature = "wgpu")]
mod gpu {
    use super::*;

    /// One JSON record per utterance.
    fn records(args: &[&str]) -> Vec<serde_json::Value> {
        let out = emomon(args);
        assert!(
            out.status.success(),
            "emomon {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    fn floats(v: &serde_json::Value) -> Vec<f64> {
        serde_json::from_value(v.clone()).expect("numbers")
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// `emomon score` on `device` for a fixture model, per-utterance records.
    fn score(fixture: &str, method: &str, device: &str) -> Vec<serde_json::Value> {
        let input = repo().join("tests/fixtures/audio/12.wav");
        records(&[
            "score",
            "--model",
            &model(fixture),
            "--input",
            input.to_str().expect("utf-8"),
            "--method",
            method,
            "--max-new-tokens",
            "4",
            "--labels",
            "neutral,happy,sad,angry",
            "--device",
            device,
            "--format",
            "jsonl",
        ])
    }

    /// Each fixture architecture gives the CPU's logits (≤ 1e-3, the parity bound of
    /// the model tests) and the same greedy answer on the GPU path.
    #[test]
    fn score_on_wgpu_equals_cpu_for_each_architecture() {
        for (fixture, method) in [
            ("tiny-whisper", "first-token"),
            ("tiny-qwen2-audio", "token-average"),
            ("tiny-voxtral", "first-token"),
        ] {
            let cpu = score(fixture, method, "cpu");
            let gpu = score(fixture, method, "wgpu");
            assert!(!cpu.is_empty(), "{fixture}: no utterances");
            assert_eq!(cpu.len(), gpu.len(), "{fixture}: utterance count");
            for (c, g) in cpu.iter().zip(&gpu) {
                assert_eq!(c["start_s"], g["start_s"]);
                assert_eq!(c["generated"], g["generated"], "{fixture}: greedy answer");
                let d = max_abs_diff(&floats(&c["logits"]), &floats(&g["logits"]));
                println!("{fixture} {method}: wgpu vs cpu label logits max |Δ| = {d:.2e}");
                assert!(d <= 1e-3, "{fixture}: {d}\ncpu {c}\ngpu {g}");
                let p = max_abs_diff(&floats(&c["probs"]), &floats(&g["probs"]));
                assert!(p <= 1e-4, "{fixture}: probs {p}");
            }
        }
    }

    /// The live session loop scores on the GPU device too (headless, file input).
    #[test]
    fn run_headless_on_wgpu() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("session.jsonl");
        let input = repo().join("tests/fixtures/audio/demo.wav");
        let out = emomon(&[
            "run",
            "--headless",
            "--input",
            input.to_str().expect("utf-8"),
            "--model",
            &model("tiny-whisper"),
            "--device",
            "wgpu",
            "--session-log",
            log.to_str().expect("utf-8"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&log).expect("session log");
        let scored: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .filter(|r: &serde_json::Value| r.get("probs").is_some())
            .collect();
        assert_eq!(scored.len(), 3, "demo.wav holds three utterances:\n{text}");
        for r in &scored {
            let sum: f64 = floats(&r["probs"]).iter().sum();
            assert!((sum - 1.0).abs() < 1e-4, "{r}");
        }
        assert!(text.contains("\"wgpu\""), "device not logged:\n{text}");
    }
}
