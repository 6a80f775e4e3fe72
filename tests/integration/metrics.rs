//! Metric implementations against scikit-learn/SciPy reference values
//! (`scripts/make_metric_fixtures.py` → `tests/fixtures/metrics/reference.json`),
//! and the CREMA-D vote-table parser on a committed excerpt.

use std::path::PathBuf;

use emomon::eval::crema::{self, CREMA_LABELS, Modality};
use emomon::eval::metrics::*;
use serde_json::Value;

const TOL: f64 = 1e-6;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics")
}

fn reference() -> Value {
    let path = fixtures().join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn opt(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn vec_f(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(f).collect()
}

fn vec_usize(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().expect("array").iter().map(vec_f).collect()
}

fn assert_close(name: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOL,
        "{name}: got {got}, reference {want} (diff {})",
        (got - want).abs()
    );
}

fn assert_close_opt(name: &str, got: Option<f64>, want: Option<f64>) {
    match (got, want) {
        (Some(g), Some(w)) => assert_close(name, g, w),
        (None, None) => {}
        _ => panic!("{name}: got {got:?}, reference {want:?}"),
    }
}

#[test]
fn categorical_metrics_match_sklearn() {
    let r = reference();
    let c = &r["categorical"];
    let k = c["n_classes"].as_u64().expect("n_classes") as usize;
    let (t, p) = (vec_usize(&c["y_true"]), vec_usize(&c["y_pred"]));
    assert_close("accuracy", accuracy(&t, &p).expect("ok"), f(&c["accuracy"]));
    assert_close(
        "uar",
        unweighted_average_recall(&t, &p, k).expect("ok"),
        f(&c["uar"]),
    );
    assert_close(
        "macro_f1",
        macro_f1(&t, &p, k).expect("ok"),
        f(&c["macro_f1"]),
    );
    let cm = confusion_matrix(&t, &p, k).expect("ok");
    let want: Vec<Vec<u64>> = c["confusion_matrix"]
        .as_array()
        .expect("array")
        .iter()
        .map(|row| vec_usize(row).into_iter().map(|x| x as u64).collect())
        .collect();
    assert_eq!(cm, want);
    let all = categorical_metrics(&t, &p, k).expect("ok");
    assert_close("summary accuracy", all.accuracy, f(&c["accuracy"]));
    assert_close("summary uar", all.uar, f(&c["uar"]));
    assert_close("summary macro_f1", all.macro_f1, f(&c["macro_f1"]));
    assert_eq!(all.confusion, want);
    assert_eq!(all.n_items, t.len());
    let scores = per_class_scores(&t, &p, k).expect("ok");
    for (i, s) in scores.iter().enumerate() {
        assert_close_opt(
            &format!("precision[{i}]"),
            s.precision,
            opt(&c["precision"][i]),
        );
        assert_close_opt(&format!("recall[{i}]"), s.recall, opt(&c["recall"][i]));
        assert_close_opt(&format!("f1[{i}]"), s.f1, opt(&c["f1"][i]));
        assert_eq!(s.support, c["support"][i].as_u64().expect("support"));
    }
}

#[test]
fn distribution_metrics_match_scipy() {
    let r = reference();
    let d = &r["distributions"];
    assert_close("kl_epsilon", KL_EPSILON, f(&r["kl_epsilon"]));
    let human = matrix(&d["human"]);
    let model = matrix(&d["model"]);
    let raw = matrix(&d["model_unnormalised"]);
    for (i, (h, q)) in human.iter().zip(&raw).enumerate() {
        assert_close(
            &format!("js[{i}]"),
            js_divergence(h, q).expect("ok"),
            f(&d["js_divergence"][i]),
        );
        assert_close(
            &format!("kl[{i}]"),
            kl_divergence(h, q, KL_EPSILON).expect("ok"),
            f(&d["kl_divergence"][i]),
        );
        assert_close(
            &format!("bc[{i}]"),
            bhattacharyya_coefficient(h, q).expect("ok"),
            f(&d["bhattacharyya"][i]),
        );
    }
    let m = distribution_metrics(&human, &raw).expect("ok");
    assert_close("mean js", m.js_divergence, f(&d["mean_js_divergence"]));
    assert_close("mean kl", m.kl_divergence, f(&d["mean_kl_divergence"]));
    assert_close("mean bc", m.bhattacharyya, f(&d["mean_bhattacharyya"]));
    let want_r2 = f(&d["r2_variance_weighted"]);
    assert_close("r2", r2_distributions(&human, &model).expect("ok"), want_r2);
    assert_close("r2 (unnormalised input)", m.r2.expect("defined"), want_r2);
}

#[test]
fn calibration_matches_reference() {
    let r = reference();
    let c = &r["calibration"];
    let n_bins = c["n_bins"].as_u64().expect("n_bins") as usize;
    assert_eq!(n_bins, DEFAULT_ECE_BINS);
    let cal = calibration(&matrix(&c["probs"]), &vec_usize(&c["y_true"]), n_bins).expect("ok");
    assert_close("ece", cal.ece, f(&c["ece"]));
    let bins = c["bins"].as_array().expect("bins");
    assert_eq!(cal.bins.len(), bins.len());
    for (i, (got, want)) in cal.bins.iter().zip(bins).enumerate() {
        assert_eq!(
            got.count as u64,
            want["count"].as_u64().expect("count"),
            "bin {i}"
        );
        assert_close(&format!("bin {i} lower"), got.lower, f(&want["lower"]));
        assert_close(&format!("bin {i} upper"), got.upper, f(&want["upper"]));
        assert_close_opt(
            &format!("bin {i} confidence"),
            got.mean_confidence,
            opt(&want["mean_confidence"]),
        );
        assert_close_opt(
            &format!("bin {i} accuracy"),
            got.accuracy,
            opt(&want["accuracy"]),
        );
    }
}

#[test]
fn correlations_match_scipy() {
    let r = reference();
    let c = &r["correlation"];
    let (x, y) = (vec_f(&c["x"]), vec_f(&c["y"]));
    assert_close("pearson", pearson(&x, &y).expect("ok"), f(&c["pearson"]));
    assert_close("spearman", spearman(&x, &y).expect("ok"), f(&c["spearman"]));
}

#[test]
fn crema_excerpt_parses_to_hand_computed_distributions() {
    let rows = crema::read_votes(&fixtures().join("crema_tabulatedVotes_excerpt.csv"))
        .expect("excerpt parses");
    assert_eq!(rows.len(), 5);
    let labels: Vec<String> = CREMA_LABELS.iter().map(|(_, l)| l.to_string()).collect();
    assert_eq!(
        labels,
        ["angry", "disgust", "fear", "happy", "neutral", "sad"]
    );

    // "100001",0,0,0,1,10,0,"1001_IEO_NEU_XX",11: 1 happy, 10 neutral of 11.
    let r = &rows[0];
    assert_eq!(
        (r.clip.as_str(), r.clip_num, r.modality),
        ("1001_IEO_NEU_XX", 1, Modality::Voice)
    );
    assert_eq!(r.counts, [0, 0, 0, 1, 10, 0]);
    let want = [0.0, 0.0, 0.0, 1.0 / 11.0, 10.0 / 11.0, 0.0];
    assert_eq!(r.distribution(), want);

    // "100009",5,5,0,0,1,1,"1001_IEO_ANG_MD",12 (tie A:D): 5/12 angry, 5/12 disgust.
    let r = &rows[1];
    assert_eq!(r.total(), 12);
    assert_eq!(r.intended(), Some("angry"));
    let d = r.distribution();
    assert_eq!(d[0], 5.0 / 12.0);
    assert_eq!(d[1], 5.0 / 12.0);
    assert_eq!(d[4], 1.0 / 12.0);
    assert_eq!(d[5], 1.0 / 12.0);

    // "100013",2,3,3,1,2,0 of 11, onto emomon's default label order (with
    // surprise, which CREMA-D lacks → 0).
    let emomon_labels: Vec<String> = [
        "neutral", "happy", "sad", "angry", "fear", "disgust", "surprise",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let m = rows[2].distribution_over(&emomon_labels);
    let want = [2.0, 1.0, 0.0, 2.0, 3.0, 3.0, 0.0].map(|v| v / 11.0);
    assert_eq!(m.probs, want);
    assert!(m.unmapped.is_empty());
    assert_eq!(m.mapped_votes, 11);

    // A label set without "sad": the 1 sad vote of row 300001 is reported.
    let no_sad: Vec<String> = ["neutral", "happy"].iter().map(|s| s.to_string()).collect();
    let m = rows[4].distribution_over(&no_sad);
    assert_eq!(m.unmapped, vec!["sad"]);
    assert_eq!(m.probs, vec![1.0, 0.0]);

    // Rows 200001 / 300001 are the face-only / audio-visual ratings of clip 1.
    assert_eq!((rows[3].modality, rows[3].clip_num), (Modality::Face, 1));
    assert_eq!(
        (rows[4].modality, rows[4].clip_num),
        (Modality::AudioVisual, 1)
    );
}

#[test]
fn crema_full_table_if_present() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/crema-d");
    let path = dir.join("tabulatedVotes.csv");
    if !path.exists() {
        println!(
            "SKIPPED: {} not found; full CREMA-D table not checked",
            path.display()
        );
        return;
    }
    let rows = crema::read_votes(&path).expect("full table parses");
    assert_eq!(rows.len(), 22_326);
    let voice = rows
        .iter()
        .filter(|r| r.modality == Modality::Voice)
        .count();
    assert_eq!(voice, 7_442);
    let voice_only = crema::read_votes(&dir.join("voice_only_votes.csv")).expect("parses");
    assert_eq!(voice_only.len(), 7_442);
    // The derived voice-only table agrees with the voice rows of the full one.
    for (a, b) in rows
        .iter()
        .filter(|r| r.modality == Modality::Voice)
        .zip(&voice_only)
    {
        assert_eq!(
            (a.clip.as_str(), a.clip_num, a.counts),
            (b.clip.as_str(), b.clip_num, b.counts)
        );
    }
}
