//! `emomon manifest`: IEMOCAP, MSP-Podcast and CREMA-D annotation files →
//! the eval manifest. Hand-written fixtures in the corpora's layouts
//! (tests/fixtures/iemocap, tests/fixtures/msp-podcast; no corpus content)
//! give per-clip distributions checked against hand-computed ones, read back
//! through the manifest reader `emomon eval` uses; bad files fail naming the
//! file and line; and one IEMOCAP manifest goes through `emomon eval` with the
//! tiny Whisper fixture.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{emomon, repo};
use emomon::eval::manifest::{ManifestItem, Reference, read_manifest};

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "emomon failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn failed_with(out: &Output) -> String {
    assert!(!out.status.success(), "emomon should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fixtures(corpus: &str) -> PathBuf {
    repo().join("tests/fixtures").join(corpus)
}

/// Runs `emomon manifest <args> -o <dir>/m.csv`, asserts success and reads the
/// manifest back with eval's own reader.
fn manifest(dir: &Path, args: &[&str]) -> (Vec<ManifestItem>, String) {
    let out_path = dir.join("m.csv");
    let mut all = vec!["manifest"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", out_path.to_str().unwrap()]);
    let out = emomon(&all);
    ok(&out);
    let items = read_manifest(&out_path, None).expect("the written manifest reads back");
    (items, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts `item` has exactly `want` votes (any order), within 1e-12.
fn assert_votes(item: &ManifestItem, want: &[(&str, f64)]) {
    let Reference::Votes(got) = &item.reference else {
        panic!("{}: votes expected, got {:?}", item.path, item.reference)
    };
    assert_eq!(got.len(), want.len(), "{}: {got:?} vs {want:?}", item.path);
    for (label, w) in want {
        let g = got
            .iter()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("{}: no vote for {label} in {got:?}", item.path));
        assert!(
            (g.1 - w).abs() < 1e-12,
            "{}: {label} {} vs {w}",
            item.path,
            g.1
        );
    }
}

fn assert_close(got: Option<f64>, want: f64, what: &str) {
    let g = got.unwrap_or_else(|| panic!("{what}: missing"));
    assert!((g - want).abs() < 1e-12, "{what}: {g} vs {want}");
}

#[test]
fn iemocap_turns_become_vote_distributions() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixtures("iemocap");
    let (items, stderr) = manifest(dir.path(), &["iemocap", "--root", root.to_str().unwrap()]);
    assert_eq!(items.len(), 4, "the Categorical/ subfolder is not read");
    assert!(
        stderr.contains("wrote 4 clip(s)") && stderr.contains("1 without"),
        "{stderr}"
    );
    assert!(stderr.contains("4 audio file(s) not found"), "{stderr}");

    // Ses01F_impro01_F000: E2 Neutral state; E3 Neutral state + Frustration
    // (½ each); E4 Neutral; F1 (self) Sadness. [V, A, D] = 2.5 → (2.5−3)/2.
    let t = &items[0];
    assert_eq!(
        t.audio,
        root.join("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
    );
    assert_eq!(
        (t.dataset.as_str(), t.speaker.as_str()),
        ("iemocap", "Ses01F")
    );
    assert_votes(t, &[("neutral", 2.5), ("frustration", 0.5), ("sad", 1.0)]);
    assert_close(t.valence, -0.25, "F000 valence");
    assert_close(t.arousal, -0.25, "F000 arousal");
    // Ses01F_impro01_M000: Anger, Anger + Frustration, Anger, (self) Frustration.
    let t = &items[1];
    assert_eq!(t.speaker, "Ses01M");
    assert_votes(t, &[("angry", 2.5), ("frustration", 1.5)]);
    assert_close(t.valence, (1.5 - 3.0) / 2.0, "M000 valence");
    assert_close(t.arousal, (4.0 - 3.0) / 2.0, "M000 arousal");
    // Ses02M_script01_1_F002: E5 ticked three labels (⅓ each), one `Other:…`.
    let t = &items[2];
    assert_eq!(
        t.audio,
        root.join("Session2/sentences/wav/Ses02M_script01_1/Ses02M_script01_1_F002.wav")
    );
    assert_eq!(t.speaker, "Ses02F");
    assert_votes(
        t,
        &[
            ("happy", 2.0 + 1.0 / 3.0),
            ("excited", 1.0),
            ("surprise", 1.0 / 3.0),
            ("other", 1.0 / 3.0),
        ],
    );
    assert_close(t.valence, 0.25, "F002 valence");
    // Ses02M_script01_1_M003: dimensional ratings only.
    let t = &items[3];
    assert_eq!(t.reference, Reference::None);
    assert_close(t.valence, -0.5, "M003 valence");
    assert_close(t.arousal, -0.5, "M003 arousal");

    // Without the actors' self-evaluations.
    let (items, _) = manifest(
        dir.path(),
        &[
            "iemocap",
            "--root",
            root.to_str().unwrap(),
            "--no-self-evaluation",
        ],
    );
    assert_votes(&items[0], &[("neutral", 2.5), ("frustration", 0.5)]);
    assert_votes(&items[1], &[("angry", 2.5), ("frustration", 0.5)]);
}

#[test]
fn iemocap_bad_files_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let eval_dir = dir.path().join("Session3/dialog/EmoEvaluation");
    std::fs::create_dir_all(&eval_dir).unwrap();
    let file = eval_dir.join("Ses03F_impro02.txt");
    std::fs::write(
        &file,
        "% header\n\n[1.0 - 2.0]\tSes03F_impro02_F000\tneu\t[3, 3, 3]\nC-E1:\tBliss;\t()\n",
    )
    .unwrap();
    let out_path = dir.path().join("m.csv");
    let run = || {
        emomon(&[
            "manifest",
            "iemocap",
            "--root",
            dir.path().to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
        ])
    };
    let err = failed_with(&run());
    assert!(
        err.contains(&format!(
            "{}:4: unknown IEMOCAP label \"Bliss\"",
            file.display()
        )),
        "{err}"
    );
    std::fs::write(&file, "[1.0 - 2.0]\tSes03F_impro02_F000\tneu\n").unwrap();
    let err = failed_with(&run());
    assert!(
        err.contains(&format!("{}:1: turn header has 3", file.display())),
        "{err}"
    );
    assert!(!out_path.exists(), "no manifest is written from a bad file");
    // Not an IEMOCAP root at all.
    let err = failed_with(&emomon(&[
        "manifest",
        "iemocap",
        "--root",
        eval_dir.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]));
    assert!(
        err.contains("no Session*/dialog/EmoEvaluation/*.txt"),
        "{err}"
    );
}

#[test]
fn msp_podcast_per_annotator_and_consensus() {
    let dir = tempfile::tempdir().unwrap();
    let labels = fixtures("msp-podcast/Labels");
    let detailed = labels.join("labels_detailed.csv");
    let consensus = labels.join("labels_consensus.csv");
    let audio = dir.path().join("Audios");
    let (d, c) = (detailed.to_str().unwrap(), consensus.to_str().unwrap());
    let a = audio.to_str().unwrap();

    // Per-annotator rows: one vote each; dimensions the annotators' mean,
    // rescaled from 1–7 by (x − 4)/3.
    let (items, stderr) = manifest(dir.path(), &["msp-podcast", "--labels", d, "--audio", a]);
    assert!(stderr.contains("from 9 annotator row(s)"), "{stderr}");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].audio, audio.join("MSP-PODCAST_9001_0001.wav"));
    assert_eq!(items[0].dataset, "msp-podcast");
    assert_votes(
        &items[0],
        &[("angry", 2.0), ("contempt", 1.0), ("other", 1.0)],
    );
    assert_close(items[0].arousal, (5.0 - 4.0) / 3.0, "0001 arousal");
    assert_close(items[0].valence, (2.5 - 4.0) / 3.0, "0001 valence");
    assert_votes(&items[1], &[("neutral", 2.0), ("happy", 1.0)]);
    assert_close(items[1].valence, (5.0 - 4.0) / 3.0, "0002 valence");
    assert_votes(&items[2], &[("sad", 2.0)]);
    assert_close(items[2].arousal, (2.5 - 4.0) / 3.0, "9002 arousal");
    assert!(items.iter().all(|i| i.speaker.is_empty()));

    // Completed from the consensus file: speakers and its released values.
    let (items, _) = manifest(
        dir.path(),
        &["msp-podcast", "--labels", d, "--consensus", c, "--audio", a],
    );
    assert_eq!(
        items.iter().map(|i| i.speaker.as_str()).collect::<Vec<_>>(),
        ["1001", "1001", "1002"]
    );
    assert_votes(
        &items[0],
        &[("angry", 2.0), ("contempt", 1.0), ("other", 1.0)],
    );
    assert_close(
        items[2].valence,
        (1.0 - 4.0) / 3.0,
        "9002 consensus valence",
    );

    // Consensus only: one label per clip; `X` (no agreement) keeps only its
    // dimensions; --split filters.
    let (items, _) = manifest(dir.path(), &["msp-podcast", "--labels", c, "--audio", a]);
    assert_eq!(items.len(), 4);
    assert_eq!(items[0].reference, Reference::Label("angry".into()));
    assert_eq!(items[3].reference, Reference::None);
    assert_close(items[3].valence, (3.7 - 4.0) / 3.0, "X valence");
    let (items, _) = manifest(
        dir.path(),
        &[
            "msp-podcast",
            "--labels",
            c,
            "--audio",
            a,
            "--split",
            "Test1",
        ],
    );
    let labels: Vec<&Reference> = items.iter().map(|i| &i.reference).collect();
    assert_eq!(
        labels,
        [
            &Reference::Label("neutral".into()),
            &Reference::Label("sad".into())
        ]
    );
}

#[test]
fn msp_podcast_bad_files_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("labels.csv");
    let out = dir.path().join("m.csv");
    let run = || {
        emomon(&[
            "manifest",
            "msp-podcast",
            "--labels",
            bad.to_str().unwrap(),
            "--audio",
            dir.path().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
    };
    std::fs::write(&bad, "FileName,EmoAct,EmoVal\na.wav,3,4\n").unwrap();
    let err = failed_with(&run());
    assert!(
        err.contains(&format!("{}:1: no `EmoClass_Major`", bad.display()))
            && err.contains("found: FileName,EmoAct,EmoVal"),
        "{err}"
    );
    std::fs::write(
        &bad,
        "FileName,WorkerID,EmoClass_Major,EmoVal\na.wav,W1,Angry,3\na.wav,W2,Grumpy,3\n",
    )
    .unwrap();
    let err = failed_with(&run());
    assert!(
        err.contains(&format!(
            "{}:3: column `EmoClass_Major`: \"Grumpy\"",
            bad.display()
        )),
        "{err}"
    );
    std::fs::write(&bad, "FileName,EmoClass,EmoVal\na.wav,A,very\n").unwrap();
    let err = failed_with(&run());
    assert!(
        err.contains(&format!("{}:2: column `EmoVal`", bad.display())),
        "{err}"
    );
}

#[test]
fn crema_d_votes_become_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let table = repo().join("tests/fixtures/metrics/crema_tabulatedVotes_excerpt.csv");
    let audio = dir.path().join("AudioWAV");
    let (items, _) = manifest(
        dir.path(),
        &[
            "crema-d",
            "--votes",
            table.to_str().unwrap(),
            "--audio",
            audio.to_str().unwrap(),
        ],
    );
    let votes = emomon::eval::crema::read_votes(&table).unwrap();
    let voice: Vec<_> = votes
        .iter()
        .filter(|v| v.modality == emomon::eval::crema::Modality::Voice)
        .collect();
    assert_eq!(items.len(), voice.len());
    assert!(!items.is_empty());
    for (item, v) in items.iter().zip(voice) {
        assert_eq!(item.audio, audio.join(format!("{}.wav", v.clip)));
        assert_eq!(item.dataset, "crema-d");
        let want: Vec<(&str, f64)> = emomon::eval::crema::CREMA_LABELS
            .iter()
            .zip(v.counts)
            .map(|((_, l), c)| (*l, f64::from(c)))
            .collect();
        assert_votes(item, &want);
    }
}

/// The IEMOCAP manifest through `emomon eval` (tiny Whisper fixture): the two
/// turns given audio are scored and measured against their vote
/// distributions and valence/arousal; the two without audio are reported as
/// failed clips, not fatal.
#[test]
fn iemocap_manifest_feeds_eval() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("IEMOCAP");
    for rel in [
        "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt",
        "Session2/dialog/EmoEvaluation/Ses02M_script01_1.txt",
    ] {
        let to = root.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(fixtures("iemocap").join(rel), to).unwrap();
    }
    let wav = root.join("Session1/sentences/wav/Ses01F_impro01");
    std::fs::create_dir_all(&wav).unwrap();
    let clips = repo().join("tests/fixtures/audio");
    std::fs::copy(clips.join("03.wav"), wav.join("Ses01F_impro01_F000.wav")).unwrap();
    std::fs::copy(clips.join("07.wav"), wav.join("Ses01F_impro01_M000.wav")).unwrap();
    let (_, stderr) = manifest(dir.path(), &["iemocap", "--root", root.to_str().unwrap()]);
    assert!(stderr.contains("2 audio file(s) not found"), "{stderr}");

    let model = repo().join("models/fixtures/tiny-whisper");
    let out_dir = dir.path().join("eval");
    let out = emomon(&[
        "eval",
        "--manifest",
        dir.path().join("m.csv").to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--labels",
        "neutral,happy,sad,angry",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    ok(&out);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let g = &summary["datasets"]["iemocap"];
    assert_eq!(g["n_items"], 4);
    assert_eq!(g["n_failed"], 2);
    assert_eq!(g["n_distribution"], 2);
    assert!(g["distribution"]["js_divergence"].as_f64().is_some(), "{g}");
    let d = &g["dimensional"];
    assert_eq!(d["n_items"], 2);
    assert_eq!(d["valence"]["n_items"], 2);
    assert!(d["valence"]["pearson"].is_number(), "{d}");
    assert!(d["arousal"]["ccc"].is_number(), "{d}");
    let md = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(
        md.contains("## Valence / arousal") && md.contains("| iemocap | 2 |"),
        "{md}"
    );
}
