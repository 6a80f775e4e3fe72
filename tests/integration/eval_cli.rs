//! `emomon eval` end to end: the binary on a small manifest of the repository's
//! licence-clear clips (tests/fixtures/audio) plus generated tones, scored by the tiny
//! random Whisper fixture; then the default model on a few ../shared/data clips
//! (skipped with a NOTICE when the data or the base weights are missing).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{emomon, repo};

use serde_json::Value;

const LABELS: [&str; 4] = ["neutral", "happy", "sad", "angry"];

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "emomon failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tiny_whisper() -> String {
    repo()
        .join("models/fixtures/tiny-whisper")
        .to_string_lossy()
        .into_owned()
}

/// `emomon eval` of `manifest` into `out` with the tiny Whisper over [`LABELS`],
/// plus `extra` flags; asserts success.
fn eval_tiny(manifest: &Path, out: &Path, extra: &[&str]) -> Output {
    let (model, labels) = (tiny_whisper(), LABELS.join(","));
    let mut args = vec![
        "eval",
        "--manifest",
        manifest.to_str().unwrap(),
        "--model",
        &model,
        "--labels",
        &labels,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = emomon(&args);
    ok(&output);
    output
}

/// A 1 s 16 kHz tone with a little deterministic noise (distinct bytes per `freq`).
fn write_tone(path: &Path, freq: f32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut seed = 12345u32;
    for i in 0..16_000 {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = (seed >> 16) as f32 / 65_536.0 - 0.5;
        let s = 0.3 * (i as f32 * freq * std::f32::consts::TAU / 16_000.0).sin() + 0.05 * noise;
        w.write_sample((s * 32_767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// Data root with the fixture clips and three tones, and its manifest: dataset
/// `acted` (single labels; `anger` needs the built-in rename, `calm` matches no
/// model label, one file is missing) and `crowd` (vote distributions, one with a
/// vote for a label the model lacks).
fn make_manifest(dir: &Path) -> PathBuf {
    let audio = dir.join("audio");
    std::fs::create_dir_all(&audio).unwrap();
    for clip in ["03", "07", "12"] {
        std::fs::copy(
            repo().join(format!("tests/fixtures/audio/{clip}.wav")),
            audio.join(format!("{clip}.wav")),
        )
        .unwrap();
    }
    write_tone(&audio.join("tone220.wav"), 220.0);
    write_tone(&audio.join("tone330.wav"), 330.0);
    write_tone(&audio.join("tone440.wav"), 440.0);
    let manifest = dir.join("manifest.csv");
    std::fs::write(
        &manifest,
        "path,dataset,speaker,label,duration_s,extra,license\n\
         audio/03.wav,acted,s1,anger,2.4,,Apache-2.0\n\
         audio/07.wav,acted,s1,happy,2.3,,Apache-2.0\n\
         audio/12.wav,acted,s2,sad,1.9,,Apache-2.0\n\
         audio/tone220.wav,acted,s2,calm,1.0,,generated\n\
         audio/missing.wav,acted,s3,sad,1.0,,none\n\
         audio/tone330.wav,crowd,c1,angry=3;sad=1,1.0,,generated\n\
         audio/tone440.wav,crowd,c2,happy=1;neutral=2;surprise=1,1.0,arousal=0.2;valence=0.1,generated\n",
    )
    .unwrap();
    manifest
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).expect("numbers")
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).expect("strings")
}

fn argmax(p: &[f64]) -> usize {
    (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b })
}

/// The reference class of a prediction among its labels: the single label, or
/// the unique top of the vote distribution (`None` otherwise or if unmapped).
fn reference_class(p: &Value) -> Option<usize> {
    let labels = strings(&p["labels"]);
    if let Some(l) = p["label"].as_str() {
        return labels.iter().position(|x| x == l);
    }
    let r = floats(p.get("reference")?);
    let top = argmax(&r);
    (r.iter().filter(|&&x| x == r[top]).count() == 1).then_some(top)
}

/// Accuracy recomputed from predictions: fraction of clips with a reference
/// class whose argmax equals it.
fn accuracy_of(preds: &[&Value]) -> f64 {
    let (mut hits, mut n) = (0, 0);
    for p in preds {
        let (Some(c), Some(probs)) = (reference_class(p), p.get("probs").filter(|v| !v.is_null()))
        else {
            continue;
        };
        n += 1;
        hits += usize::from(argmax(&floats(probs)) == c);
    }
    hits as f64 / n as f64
}

/// Jensen–Shannon divergence (nats) of the two distributions, each normalised first.
fn js(p: &[f64], q: &[f64]) -> f64 {
    let norm = |v: &[f64]| -> Vec<f64> {
        let t: f64 = v.iter().sum();
        v.iter().map(|x| x / t).collect()
    };
    let (p, q) = (&norm(p)[..], &norm(q)[..]);
    let kl = |a: &[f64], m: &[f64]| {
        a.iter()
            .zip(m)
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, y)| x * (x / y).ln())
            .sum::<f64>()
    };
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| (a + b) / 2.0).collect();
    0.5 * kl(p, &m) + 0.5 * kl(q, &m)
}

#[test]
fn eval_writes_consistent_outputs_and_resumes_from_cache() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = make_manifest(dir.path());
    let out_dir = dir.path().join("out");
    let model = tiny_whisper();
    let out = eval_tiny(&manifest, &out_dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("calm (1)"),
        "unmapped label not reported: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("overall"));

    let preds = read_jsonl(&out_dir.join("predictions.jsonl"));
    assert_eq!(preds.len(), 7, "one prediction per manifest row");
    let paths: Vec<&str> = preds.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(paths[0], "audio/03.wav");
    assert_eq!(paths[6], "audio/tone440.wav");
    for p in &preds {
        assert_eq!(p["model"], model.as_str());
        assert_eq!(p["method"], "first-token");
        assert_eq!(strings(&p["labels"]), LABELS);
        if p["path"] == "audio/missing.wav" {
            assert!(p["probs"].is_null());
            let err = p["error"].as_str().unwrap();
            assert!(
                err.contains("missing.wav") && err.contains("line 6"),
                "{err}"
            );
            continue;
        }
        let probs = floats(&p["probs"]);
        assert_eq!(probs.len(), 4);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{p}");
        assert_eq!(p["top"], LABELS[argmax(&probs)]);
        assert_eq!(p["audio_sha256"].as_str().unwrap().len(), 64);
        assert_eq!(p["cached"], false);
    }
    assert_eq!(preds[0]["label"], "angry");
    assert_eq!(preds[0]["label_raw"], "anger");
    // Votes for surprise (not a model label) are dropped, the rest renormalised.
    let r = floats(&preds[6]["reference"]);
    let want = [2.0 / 3.0, 1.0 / 3.0, 0.0, 0.0];
    assert!(
        r.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12),
        "{r:?}"
    );
    assert_eq!(preds[6]["valence"], 0.1);

    let summary = read_json(&out_dir.join("summary.json"));
    assert_eq!(summary["n_items"], 7);
    assert_eq!(summary["scored"], 6);
    assert_eq!(summary["cache_hits"], 0);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["label_renames"]["anger"], "angry");
    assert_eq!(summary["unmapped_labels"]["acted"]["calm"], 1);
    assert_eq!(summary["unmapped_labels"]["crowd"]["surprise"], 1);
    let by = |d: &str| -> Vec<&Value> { preds.iter().filter(|p| p["dataset"] == d).collect() };
    let acted = &summary["datasets"]["acted"];
    assert_eq!(acted["n_categorical"], 3);
    assert_eq!(acted["n_unmapped"], 1);
    assert_eq!(acted["n_failed"], 1);
    let acc = acted["accuracy"].as_f64().unwrap();
    assert!((acc - accuracy_of(&by("acted"))).abs() < 1e-12, "{acc}");
    let all: Vec<&Value> = preds.iter().collect();
    let overall = &summary["overall"];
    assert_eq!(overall["n_categorical"], 5);
    assert!((overall["accuracy"].as_f64().unwrap() - accuracy_of(&all)).abs() < 1e-12);
    for key in ["macro_f1", "uar", "ece"] {
        let v = overall[key].as_f64().unwrap_or_else(|| panic!("{key}"));
        assert!((0.0..=1.0).contains(&v), "{key} {v}");
    }
    let cm: Vec<Vec<u64>> = serde_json::from_value(overall["confusion"].clone()).unwrap();
    assert_eq!(cm.iter().flatten().sum::<u64>(), 5);
    let crowd = &summary["datasets"]["crowd"];
    assert_eq!(crowd["n_distribution"], 2);
    assert!(crowd["accuracy"].is_number());
    let mean_js = by("crowd")
        .iter()
        .map(|p| js(&floats(&p["reference"]), &floats(&p["probs"])))
        .sum::<f64>()
        / 2.0;
    let got = crowd["distribution"]["js_divergence"].as_f64().unwrap();
    assert!((got - mean_js).abs() < 1e-12, "{got} vs {mean_js}");
    assert!(acted["distribution"].is_null());

    let md = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(md.contains("| acted | 5 | 3 |"), "{md}");
    assert!(
        md.contains("| crowd | 2 | 2 |") && md.contains("**overall**"),
        "{md}"
    );
    assert!(md.contains("reference \\ predicted") && md.contains("anger → angry"));
    assert!(md.contains("calm (1)"));
    for svg in [
        "confusion_overall.svg",
        "reliability_overall.svg",
        "confusion_acted.svg",
        "confusion_crowd.svg",
    ] {
        let text = std::fs::read_to_string(out_dir.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") && text.ends_with("</svg>\n"),
            "{svg}"
        );
    }
    let cache_lines = std::fs::read_to_string(out_dir.join("cache.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(cache_lines, 6, "one cache entry per scored clip");

    // Second run: every readable clip comes from the cache, with the same scores.
    eval_tiny(&manifest, &out_dir, &[]);
    let summary = read_json(&out_dir.join("summary.json"));
    assert_eq!(summary["cache_hits"], 6);
    assert_eq!(summary["scored"], 0);
    let again = read_jsonl(&out_dir.join("predictions.jsonl"));
    for (a, b) in preds.iter().zip(&again) {
        assert_eq!(a["probs"], b["probs"]);
        assert_eq!(b["cached"], !b["probs"].is_null());
    }

    // Per-dataset labels, from the same cache: acted is evaluated over the labels
    // its references use (angry, happy, sad; calm is no model label), crowd over
    // angry, sad, happy, neutral; probabilities renormalised over them.
    let per_dir = dir.path().join("per");
    let cache = out_dir.join("cache.jsonl");
    eval_tiny(
        &manifest,
        &per_dir,
        &["--per-dataset-labels", "--cache", cache.to_str().unwrap()],
    );
    let summary = read_json(&per_dir.join("summary.json"));
    assert_eq!(summary["cache_hits"], 6);
    assert!(!per_dir.join("cache.jsonl").exists());
    let restricted = read_jsonl(&per_dir.join("predictions.jsonl"));
    for (full, r) in preds.iter().zip(&restricted) {
        if full["probs"].is_null() {
            continue;
        }
        let want_labels: &[&str] = if r["dataset"] == "acted" {
            &["happy", "sad", "angry"]
        } else {
            &LABELS
        };
        assert_eq!(strings(&r["labels"]), want_labels);
        let model_probs = floats(&full["probs"]);
        if r["dataset"] == "acted" {
            assert_eq!(floats(&r["model_probs"]), model_probs);
        } else {
            assert!(r.get("model_probs").is_none(), "not restricted: {r}");
        }
        if r["dataset"] != "acted" {
            assert_eq!(floats(&r["probs"]), model_probs, "unrestricted: unchanged");
            continue;
        }
        let sub: Vec<f64> = want_labels
            .iter()
            .map(|l| model_probs[LABELS.iter().position(|x| x == l).unwrap()])
            .collect();
        let total: f64 = sub.iter().sum();
        for (got, want) in floats(&r["probs"]).iter().zip(&sub) {
            assert!((got - want / total).abs() < 1e-12, "{r}");
        }
    }
    let acted_acc = summary["datasets"]["acted"]["accuracy"].as_f64().unwrap();
    let acted: Vec<&Value> = restricted
        .iter()
        .filter(|p| p["dataset"] == "acted")
        .collect();
    assert!((acted_acc - accuracy_of(&acted)).abs() < 1e-12);
    assert_eq!(
        strings(&summary["datasets"]["acted"]["labels"]),
        ["happy", "sad", "angry"]
    );
}

#[test]
fn limit_stride_and_datasets_select_clips() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = make_manifest(dir.path());
    let out_dir = dir.path().join("out");
    eval_tiny(
        &manifest,
        &out_dir,
        &["--datasets", "acted", "--stride", "2", "--limit", "2"],
    );
    let preds = read_jsonl(&out_dir.join("predictions.jsonl"));
    let paths: Vec<&str> = preds.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["audio/03.wav", "audio/12.wav"]);
}

#[test]
fn bad_input_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("bad.csv");
    std::fs::write(
        &manifest,
        "path,dataset,label\na.wav,x,happy\nb.wav,x,happy=lots\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--manifest",
            manifest.to_str().unwrap(),
            "--model",
            "/nonexistent/model",
            "-o",
            out_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = emomon(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    let err = run(&[]);
    assert!(
        err.contains("bad.csv") && err.contains("line 3") && err.contains("`label`"),
        "{err}"
    );
    std::fs::write(&manifest, "path,dataset,label\na.wav,x,happy\n").unwrap();
    let err = run(&["--datasets", "y"]);
    assert!(err.contains("\"y\"") && err.contains("it has: x"), "{err}");
    let err = run(&["--label-map", "joy"]);
    assert!(err.contains("--label-map") && err.contains("joy"), "{err}");
    std::fs::write(&manifest, "file,dataset,label\na.wav,x,happy\n").unwrap();
    let err = run(&[]);
    assert!(err.contains("`path`") && err.contains("bad.csv"), "{err}");
}

/// `../shared/data` when it and the default model are set up; else skips `test`.
fn shared_clips_and_default_model(test: &str) -> Option<PathBuf> {
    let data = repo().join("../shared/data");
    if !data.join("manifest.csv").is_file() {
        common::skip(test, format_args!("{} not found", data.display()));
        return None;
    }
    if let Err(e) = emomon_models::default_model::resolve() {
        common::skip(test, e);
        return None;
    }
    Some(data)
}

/// The default model on a spread sample of the shared clips, each dataset over its
/// own labels (how the default model was evaluated).
#[test]
fn default_model_on_shared_clips() {
    let Some(data) = shared_clips_and_default_model("default_model_on_shared_clips") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = emomon(&[
        "eval",
        "--manifest",
        data.join("manifest.csv").to_str().unwrap(),
        "--datasets",
        "urdu,emodb",
        "--stride",
        "160",
        "--per-dataset-labels",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    ok(&out);
    let preds = read_jsonl(&out_dir.join("predictions.jsonl"));
    assert_eq!(preds.len(), 815usize.div_ceil(160));
    for p in &preds {
        let labels = strings(&p["labels"]);
        let want: &[&str] = match p["dataset"].as_str().unwrap() {
            "urdu" => &["neutral", "happy", "sad", "angry"],
            _ => &[
                "neutral", "happy", "sad", "angry", "fear", "disgust", "boredom",
            ],
        };
        assert_eq!(labels, want);
        let probs = floats(&p["probs"]);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        assert_eq!(floats(&p["model_probs"]).len(), 9);
    }
    let summary = read_json(&out_dir.join("summary.json"));
    assert_eq!(summary["failed"], 0);
    assert!(summary["overall"]["accuracy"].is_number());
    assert!(out_dir.join("summary.md").is_file());
    assert!(out_dir.join("confusion_urdu.svg").is_file());
}

/// A CREMA-D vote table (tabulatedVotes layout) over copies of the fixture clips:
/// voice-only rows become vote-distribution references; the face-only row is left out.
#[test]
fn crema_vote_table_gives_distribution_references() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("AudioWAV");
    std::fs::create_dir_all(&audio).unwrap();
    for (clip, name) in [("03", "1001_IEO_NEU_XX"), ("07", "1001_IEO_ANG_MD")] {
        std::fs::copy(
            repo().join(format!("tests/fixtures/audio/{clip}.wav")),
            audio.join(format!("{name}.wav")),
        )
        .unwrap();
    }
    let table = dir.path().join("tabulatedVotes.csv");
    std::fs::write(
        &table,
        "\"\",\"A\",\"D\",\"F\",\"H\",\"N\",\"S\",\"fileName\",\"numResponses\"\n\
         \"100001\",0,0,0,1,10,0,\"1001_IEO_NEU_XX\",11\n\
         \"200001\",0,0,0,0,9,0,\"1001_IEO_NEU_XX\",9\n\
         \"100009\",5,5,0,0,1,1,\"1001_IEO_ANG_MD\",12\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = emomon(&[
        "eval",
        "--crema-votes",
        table.to_str().unwrap(),
        "--crema-audio",
        audio.to_str().unwrap(),
        "--model",
        &tiny_whisper(),
        "--labels",
        "neutral,happy,sad,angry,fear,disgust",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    ok(&out);
    let preds = read_jsonl(&out_dir.join("predictions.jsonl"));
    assert_eq!(preds.len(), 2, "face-only votes are not evaluated");
    // Labels neutral, happy, sad, angry, fear, disgust; votes A D F H N S.
    let close = |got: Vec<f64>, want: [f64; 6]| {
        assert!(
            got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12),
            "{got:?} vs {want:?}"
        )
    };
    close(
        floats(&preds[0]["reference"]),
        [10.0 / 11.0, 1.0 / 11.0, 0.0, 0.0, 0.0, 0.0],
    );
    close(
        floats(&preds[1]["reference"]),
        [1.0 / 12.0, 0.0, 1.0 / 12.0, 5.0 / 12.0, 0.0, 5.0 / 12.0],
    );
    assert_eq!(preds[1]["dataset"], "crema-d");
    assert_eq!(preds[1]["speaker"], "1001");
    let summary = read_json(&out_dir.join("summary.json"));
    let crema = &summary["datasets"]["crema-d"];
    assert_eq!(crema["n_distribution"], 2);
    assert_eq!(
        crema["n_tied"], 1,
        "angry and disgust tie in the second clip"
    );
    assert_eq!(crema["n_categorical"], 1);
    let mean_js = preds
        .iter()
        .map(|p| js(&floats(&p["reference"]), &floats(&p["probs"])))
        .sum::<f64>()
        / 2.0;
    let got = crema["distribution"]["js_divergence"].as_f64().unwrap();
    assert!((got - mean_js).abs() < 1e-12, "{got} vs {mean_js}");
}

// ---- Test-time scaling (docs/test-time-scaling.md) ----

/// Whisper answer prefixes of the two-prompt ensemble.
const PROMPT_A: &str = " The speaker sounds";
const PROMPT_B: &str = " The voice is";

/// Per clip path: the prediction record.
fn by_path(out: &Path) -> std::collections::BTreeMap<String, Value> {
    read_jsonl(&out.join("predictions.jsonl"))
        .into_iter()
        .map(|p| (p["path"].as_str().unwrap().to_string(), p))
        .collect()
}

/// Readable member distributions of a prediction.
fn member_probs(p: &Value) -> Vec<Vec<f64>> {
    p["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| !m["probs"].is_null())
        .map(|m| floats(&m["probs"]))
        .collect()
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{what}: {a:?} vs {b:?}");
    }
}

#[test]
fn two_prompt_ensemble_is_the_mean_of_the_single_prompt_runs() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = make_manifest(dir.path());
    let prompts = dir.path().join("prompts.txt");
    // A comment, a blank line and the first prompt; the second comes from --prompt.
    std::fs::write(&prompts, format!("# Whisper prefixes\n\n{PROMPT_A}\n")).unwrap();
    for method in ["first-token", "token-average"] {
        let out = |name: &str| dir.path().join(format!("{method}-{name}"));
        eval_tiny(
            &manifest,
            &out("both"),
            &[
                "--method",
                method,
                "--prompts",
                prompts.to_str().unwrap(),
                "--prompt",
                PROMPT_B,
            ],
        );
        eval_tiny(
            &manifest,
            &out("a"),
            &["--method", method, "--prompt", PROMPT_A],
        );
        eval_tiny(
            &manifest,
            &out("b"),
            &["--method", method, "--prompt", PROMPT_B],
        );
        let (both, a, b) = (
            by_path(&out("both")),
            by_path(&out("a")),
            by_path(&out("b")),
        );
        let mut checked = 0;
        for (path, p) in &both {
            let Some(probs) = p.get("probs").filter(|v| !v.is_null()) else {
                assert!(a[path]["probs"].is_null(), "{path}");
                continue;
            };
            let (pa, pb) = (floats(&a[path]["probs"]), floats(&b[path]["probs"]));
            let mean: Vec<f64> = pa.iter().zip(&pb).map(|(x, y)| (x + y) / 2.0).collect();
            // The single runs score first-token in batches, the ensemble one clip at a
            // time: equal up to float rounding.
            assert_close(&floats(probs), &mean, 1e-5, &format!("{method} {path}"));
            let members = p["members"].as_array().unwrap();
            assert_eq!(members.len(), 2);
            assert_eq!(members[0]["prompt"], 0);
            assert_eq!(members[1]["prompt"], 1);
            assert_close(&floats(&members[0]["probs"]), &pa, 1e-5, "member A");
            assert_close(&floats(&members[1]["probs"]), &pb, 1e-5, "member B");
            assert_eq!(p["aggregate"], "mean");
            checked += 1;
        }
        assert_eq!(checked, 6, "every readable clip compared");
        // The two prompts really differ (else the test would prove nothing).
        assert!(
            a.iter()
                .any(|(k, p)| !p["probs"].is_null() && p["probs"] != b[k]["probs"])
        );
    }
}

#[test]
fn seeded_samples_reproduce_and_best_of_n_and_majority_follow_their_members() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = make_manifest(dir.path());
    let run = |name: &str, seed: &str, aggregate: &str| {
        let out = dir.path().join(name);
        eval_tiny(
            &manifest,
            &out,
            &[
                "--method",
                "token-average",
                "--samples",
                "4",
                "--sample-temperature",
                "1.5",
                "--seed",
                seed,
                "--aggregate",
                aggregate,
            ],
        );
        out
    };
    let first = run("seed7", "7", "best-of-n,majority");
    let again = run("seed7-again", "7", "best-of-n,majority");
    let other = run("seed8", "8", "best-of-n");
    let members = |out: &Path| -> Vec<Vec<Vec<f64>>> {
        by_path(&out.join("best-of-n"))
            .values()
            .filter(|p| p.get("members").is_some())
            .map(member_probs)
            .collect()
    };
    let (m7, m7b) = (members(&first), members(&again));
    assert_eq!(m7.len(), 6);
    assert!(m7.iter().all(|m| m.len() == 4), "4 samples per clip");
    assert_eq!(m7, m7b, "the same seed reproduces every sample exactly");
    let m8: Vec<Vec<Vec<f64>>> = by_path(&other)
        .values()
        .filter(|p| p.get("members").is_some())
        .map(member_probs)
        .collect();
    assert_ne!(m7, m8, "another seed samples other answers");
    assert!(
        m7.iter().any(|m| m.iter().any(|s| s != &m[0])),
        "samples of a clip differ"
    );

    let conf = |p: &[f64]| p.iter().copied().fold(0.0, f64::max);
    for p in by_path(&first.join("best-of-n")).values() {
        let Some(probs) = p.get("probs").filter(|v| !v.is_null()) else {
            continue;
        };
        let m = member_probs(p);
        let best = (0..m.len()).fold(0, |b, i| if conf(&m[i]) > conf(&m[b]) { i } else { b });
        assert_close(&floats(probs), &m[best], 1e-6, "best-of-n");
    }
    for p in by_path(&first.join("majority")).values() {
        let Some(probs) = p.get("probs").filter(|v| !v.is_null()) else {
            continue;
        };
        let m = member_probs(p);
        let mut votes = vec![0.0; LABELS.len()];
        for s in &m {
            votes[argmax(s)] += 1.0 / m.len() as f64;
        }
        assert_close(&floats(probs), &votes, 1e-6, "majority");
    }
}

#[test]
fn cache_keys_differ_across_strategies_and_answers_are_reused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = make_manifest(dir.path());
    let out = dir.path().join("out");
    let args = |agg: &'static str, seed: &'static str| {
        vec![
            "--method",
            "first-token",
            "--prompt",
            PROMPT_A,
            "--prompt",
            PROMPT_B,
            "--samples",
            "3",
            "--seed",
            seed,
            "--aggregate",
            agg,
        ]
    };
    eval_tiny(&manifest, &out, &args("mean,confidence", "1"));
    let cache = read_jsonl(&out.join("cache.jsonl"));
    assert_eq!(cache.len(), 12, "6 readable clips × 2 aggregations");
    let keys: std::collections::BTreeSet<&str> =
        cache.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 12, "one key per clip and aggregation");
    // A new aggregation of the same answers comes from the cache, re-aggregated.
    let again = eval_tiny(&manifest, &out, &args("majority", "1"));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("6 from the cache, 0 scored"), "{err}");
    assert_eq!(read_jsonl(&out.join("cache.jsonl")).len(), 18);
    // Another seed is another identity: scored again.
    let other = eval_tiny(&manifest, &out, &args("mean", "2"));
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(err.contains("0 from the cache, 6 scored"), "{err}");
    // A plain run keys as before ensembles: no ensemble entries are mistaken for it.
    let plain = eval_tiny(&manifest, &out, &["--method", "first-token"]);
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(err.contains("0 from the cache, 6 scored"), "{err}");
}

#[test]
fn methods_comparison_has_a_row_per_method() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = make_manifest(dir.path());
    let out = dir.path().join("out");
    eval_tiny(
        &manifest,
        &out,
        &["--methods", "first-token,token-average,text"],
    );
    let c = read_json(&out.join("comparison.json"));
    let rows = c["rows"].as_array().unwrap();
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["first-token", "token-average", "text"]);
    for r in &rows[..2] {
        let method = r["method"].as_str().unwrap();
        let summary = read_json(&out.join(method).join("summary.json"));
        assert_eq!(r["overall"]["accuracy"], summary["overall"]["accuracy"]);
        assert_eq!(r["overall"]["uar"], summary["overall"]["uar"]);
        assert_eq!(
            r["overall"]["js_divergence"],
            summary["overall"]["distribution"]["js_divergence"]
        );
        assert_eq!(r["answers"], 6);
        assert_eq!(r["unparseable"], 0);
        assert!(r["mean_latency_ms"].as_f64().unwrap() > 0.0);
        assert!(out.join(method).join("predictions.jsonl").is_file());
    }
    // The random tiny model cannot write percentages: every text answer is counted
    // as unparseable and the row says why instead of failing the run.
    let text = &rows[2];
    assert_eq!(text["unparseable"], text["answers"]);
    assert!(
        text["not_run"]
            .as_str()
            .unwrap()
            .contains("could not be read")
    );
    let md = std::fs::read_to_string(out.join("comparison.md")).unwrap();
    for m in methods {
        assert!(md.contains(&format!("| {m} |")), "{md}");
    }
    // Rerunning reuses the cache for every method.
    let again = eval_tiny(&manifest, &out, &["--methods", "first-token,token-average"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        err.matches("6 from the cache, 0 scored").count(),
        2,
        "{err}"
    );
}

/// The default model runs first-token only: asked for token-average too, the
/// comparison gets a row saying why rather than failing.
#[test]
fn default_model_comparison_reports_unsupported_methods() {
    if let Err(e) = emomon_models::default_model::resolve() {
        common::skip("default_model_comparison_reports_unsupported_methods", e);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = make_manifest(dir.path());
    let out = dir.path().join("out");
    let output = emomon(&[
        "eval",
        "--manifest",
        manifest.to_str().unwrap(),
        "--labels",
        &LABELS.join(","),
        "--methods",
        "first-token,token-average",
        "-o",
        out.to_str().unwrap(),
    ]);
    ok(&output);
    let c = read_json(&out.join("comparison.json"));
    let rows = c["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0]["overall"]["accuracy"].is_number());
    assert!(rows[0].get("not_run").is_none());
    let why = rows[1]["not_run"].as_str().unwrap();
    assert!(why.contains("first-token only"), "{why}");
    assert!(rows[1]["overall"].is_null());
}

/// A chat model (tiny Qwen2-Audio) through the same flags: every clip gets
/// questions × samples answers, recorded in order, for every method.
#[test]
fn chat_model_ensemble_records_every_answer_for_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = make_manifest(dir.path());
    let out = dir.path().join("out");
    let model = repo().join("models/fixtures/tiny-qwen2-audio");
    let output = emomon(&[
        "eval",
        "--manifest",
        manifest.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--labels",
        &LABELS.join(","),
        "--max-new-tokens",
        "4",
        "--prompt",
        "Which emotion?",
        "--prompt",
        "How does the speaker feel?",
        "--samples",
        "2",
        "--methods",
        "first-token,token-average,text",
        "-o",
        out.to_str().unwrap(),
    ]);
    ok(&output);
    let c = read_json(&out.join("comparison.json"));
    let rows = c["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert_eq!(
            r["answers"],
            6 * 4,
            "6 readable clips × 2 questions × 2 samples"
        );
    }
    for method in ["first-token", "token-average"] {
        for p in by_path(&out.join(method)).values() {
            if p["probs"].is_null() {
                continue;
            }
            let order: Vec<(u64, u64)> = p["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["prompt"].as_u64().unwrap(), m["sample"].as_u64().unwrap()))
                .collect();
            assert_eq!(order, [(0, 0), (0, 1), (1, 0), (1, 1)]);
            let mean: Vec<f64> = (0..LABELS.len())
                .map(|k| member_probs(p).iter().map(|m| m[k]).sum::<f64>() / 4.0)
                .collect();
            assert_close(&floats(&p["probs"]), &mean, 1e-6, method);
        }
    }
}

/// `--folds DIR`: each clip is scored by the adapter of the fold that held it out and
/// the folds are pooled. Fold 1's adapter is the shipped one at another temperature,
/// so its clips must carry exactly that adapter's scores (`emomon score --adapter`),
/// and fold 0's the shipped adapter's; a clip in no fold is reported and left out.
/// Fold 1 also has a temperature of its own for the label set happy/sad/angry: with
/// `--per-dataset-labels` that dataset's clips are scored at it, as `emomon score
/// --labels` over that set scores them.
#[test]
fn folds_score_each_clip_with_its_own_folds_adapter() {
    if let Err(e) = emomon_models::default_model::resolve() {
        common::skip("folds_score_each_clip_with_its_own_folds_adapter", e);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let audio = repo().join("tests/fixtures/audio");
    let manifest = dir.path().join("manifest.csv");
    std::fs::write(
        &manifest,
        "path,dataset,speaker,label\n03.wav,acted,a,happy\n07.wav,acted,b,sad\n\
         12.wav,acted,c,angry\n",
    )
    .unwrap();
    let folds = dir.path().join("folds");
    let shipped = repo().join("models/default");
    for (k, held_out, temperature) in [(0, "03.wav", None), (1, "07.wav", Some(3.0))] {
        let fold = folds.join(format!("fold-{k}"));
        std::fs::create_dir_all(&fold).unwrap();
        std::fs::copy(
            shipped.join("adapter.safetensors"),
            fold.join("adapter.safetensors"),
        )
        .unwrap();
        let mut meta: Value =
            serde_json::from_slice(&std::fs::read(shipped.join("adapter.json")).unwrap()).unwrap();
        if let Some(t) = temperature {
            meta["temperature"] = serde_json::json!(t);
            meta["label_set_temperatures"] = serde_json::json!([
                {"dataset": "acted", "labels": ["sad", "angry", "happy"], "temperature": 0.7}
            ]);
        }
        std::fs::write(fold.join("adapter.json"), meta.to_string()).unwrap();
        std::fs::write(
            fold.join("heldout.csv"),
            format!("path,dataset,speaker,label\n{held_out},acted,x,happy\n"),
        )
        .unwrap();
    }
    let eval_folds = |out_dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--manifest",
            manifest.to_str().unwrap(),
            "--data-root",
            audio.to_str().unwrap(),
            "--folds",
            folds.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
        ];
        args.extend(extra);
        let out = emomon(&args);
        ok(&out);
        out
    };
    // `emomon score` of one clip with a fold's adapter: its labels and probabilities.
    let score_with_fold = |fold: usize, clip: &str, extra: &[&str]| {
        let fold_dir = folds.join(format!("fold-{fold}"));
        let clip_path = audio.join(clip);
        let mut args = vec![
            "score",
            "--whole",
            "--format",
            "jsonl",
            "--adapter",
            fold_dir.to_str().unwrap(),
            "--input",
            clip_path.to_str().unwrap(),
        ];
        args.extend(extra);
        let scored = emomon(&args);
        ok(&scored);
        let v: Value = serde_json::from_slice(&scored.stdout).unwrap();
        (strings(&v["labels"]), floats(&v["probs"]))
    };
    let out_dir = dir.path().join("out");
    let out = eval_folds(&out_dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 selected clip(s) are in no fold"),
        "{stderr}"
    );
    let preds = by_path(&out_dir);
    assert_eq!(preds.len(), 2, "{preds:?}");
    for (clip, fold) in [("03.wav", 0), ("07.wav", 1)] {
        let (labels, want) = score_with_fold(fold, clip, &[]);
        let got = &preds[clip];
        assert_eq!(strings(&got["labels"]), labels);
        assert_close(&floats(&got["probs"]), &want, 1e-6, clip);
    }
    let summary = read_json(&out_dir.join("summary.json"));
    assert_eq!(summary["n_items"], 2);
    assert!(
        summary["model"]
            .as_str()
            .unwrap()
            .contains("speaker-independent 2-fold CV"),
        "{summary}"
    );

    let own_dir = dir.path().join("own-labels");
    eval_folds(&own_dir, &["--per-dataset-labels"]);
    let preds = by_path(&own_dir);
    let over_set = ["--labels", "happy,sad,angry"];
    for (clip, fold) in [("03.wav", 0), ("07.wav", 1)] {
        let got = &preds[clip];
        let (labels, want) = score_with_fold(fold, clip, &over_set);
        // The eval lists the set in the model's order, `score` in the asked order.
        let got_labels = strings(&got["labels"]);
        let got_probs = floats(&got["probs"]);
        let reordered: Vec<f64> = labels
            .iter()
            .map(|l| got_probs[got_labels.iter().position(|g| g == l).unwrap()])
            .collect();
        assert_close(&reordered, &want, 1e-6, clip);
    }
    // Without the set's temperature (fold 1's general 3.0) the scores would differ.
    let (_, general) = score_with_fold(
        1,
        "07.wav",
        &[&over_set[..], &["--temperature", "3.0"]].concat(),
    );
    let (_, own) = score_with_fold(1, "07.wav", &over_set);
    let moved = general
        .iter()
        .zip(&own)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(moved > 0.01, "{general:?} vs {own:?}");

    // A clip held out by two folds is refused by name.
    std::fs::write(
        folds.join("fold-1/heldout.csv"),
        "path,dataset,speaker,label\n03.wav,acted,x,happy\n",
    )
    .unwrap();
    let out = emomon(&[
        "eval",
        "--manifest",
        manifest.to_str().unwrap(),
        "--folds",
        folds.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("03.wav is held out by both fold-0 and fold-1"),
        "{err}"
    );
}

/// What an eval wrote that must not depend on the number of workers: predictions
/// without model time, the summary, the printed table, and the cache's scores.
fn worker_independent(out: &Path, stdout: &[u8]) -> (Vec<Value>, Value, String, Vec<Value>) {
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("latency_ms");
        v
    };
    let preds = read_jsonl(&out.join("predictions.jsonl"))
        .into_iter()
        .map(strip)
        .collect();
    let mut cache: Vec<Value> = read_jsonl(&out.join("cache.jsonl"))
        .into_iter()
        .map(strip)
        .collect();
    cache.sort_by_key(|v| v["key"].to_string());
    (
        preds,
        read_json(&out.join("summary.json")),
        String::from_utf8_lossy(stdout).into_owned(),
        cache,
    )
}

/// `--workers 2` scores the clips in parallel with exactly the numbers, outputs and
/// cache of one worker (the tiny Whisper on the fixture clips and tones).
#[test]
fn two_workers_give_the_outputs_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = make_manifest(dir.path());
    let (a, b) = (dir.path().join("one"), dir.path().join("two"));
    let one = eval_tiny(&manifest, &a, &["--workers", "1"]);
    let two = eval_tiny(&manifest, &b, &["--workers", "2"]);
    assert!(String::from_utf8_lossy(&two.stderr).contains("2 scoring workers"));
    let (one, two) = (
        worker_independent(&a, &one.stdout),
        worker_independent(&b, &two.stdout),
    );
    assert_eq!(one.0.len(), 7);
    assert_eq!(one.3.len(), 6, "every readable clip cached once");
    assert_eq!(one, two);
}

/// The same with the default model on real speech from the shared clips.
#[test]
fn default_model_two_workers_give_the_outputs_of_one() {
    let test = "default_model_two_workers_give_the_outputs_of_one";
    let Some(data) = shared_clips_and_default_model(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |workers: &str| {
        let out_dir = dir.path().join(workers);
        let out = emomon(&[
            "eval",
            "--manifest",
            data.join("manifest.csv").to_str().unwrap(),
            "--datasets",
            "urdu,emodb",
            "--stride",
            "160",
            "--limit",
            "4",
            "--workers",
            workers,
            "-o",
            out_dir.to_str().unwrap(),
        ]);
        ok(&out);
        worker_independent(&out_dir, &out.stdout)
    };
    let (one, two) = (run("1"), run("2"));
    assert_eq!(one.0.len(), 4);
    assert_eq!(one, two);
}
