use super::*;

/// `(start_s, end_s, probs)` of one utterance.
type Utt = (f64, f64, Vec<f64>);

fn labels(k: usize) -> Vec<String> {
    ["neutral", "happy", "sad", "angry"][..k]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn session_and_windows_weight_by_duration_and_overlap() {
    let cfg = AggregatorConfig {
        half_life_s: 10.0,
        windows_s: vec![30.0],
        switch_margin: 0.1,
    };
    let mut agg = Aggregator::new(labels(2), cfg).expect("valid");
    // 0–4 s: [1, 0]; 40–42 s: [0, 1]; 50–52 s: [0.5, 0.5].
    agg.push(0.0, 4.0, &[1.0, 0.0]).expect("ok");
    agg.push(40.0, 42.0, &[0.0, 1.0]).expect("ok");
    let s = agg.push(50.0, 52.0, &[0.5, 0.5]).expect("ok");
    close(s.now_s, 52.0);
    // Session: weights 4, 2, 2 → p0 = (4 + 1) / 8 = 0.625.
    let sess = s.session.as_ref().expect("speech");
    close(sess.probs[0], 0.625);
    close(sess.probs[1], 0.375);
    close(sess.weight, 8.0);
    close(sess.top2_margin, 0.25);
    let h = -(0.625f64 * 0.625f64.ln() + 0.375 * 0.375f64.ln()) / 2f64.ln();
    close(sess.entropy_norm, h);
    // Window [22, 52]: first utterance out; p0 = (0 + 1) / 4 = 0.25.
    let w = s.windows[0].summary.as_ref().expect("speech");
    close(w.probs[0], 0.25);
    assert_eq!(w.n_utterances, 2);
    // Partial overlap: window [41, 52] → 1 s of the second utterance + 2 s of the
    // third: p0 = 1 / 3.
    let part = agg.window(52.0, 11.0).expect("speech");
    close(part.probs[0], 1.0 / 3.0);
    close(part.weight, 3.0);
    // Decayed at 52 with half-life 10: midpoints 2, 41, 51.
    let w1 = 4.0 * (-(50.0f64) / 10.0).exp2();
    let w2 = 2.0 * (-(11.0f64) / 10.0).exp2();
    let w3 = 2.0 * (-(1.0f64) / 10.0).exp2();
    let p0 = (w1 + 0.5 * w3) / (w1 + w2 + w3);
    let d = s.decayed.as_ref().expect("speech");
    close(d.probs[0], p0);
    close(d.weight, w1 + w2 + w3);
    // Nothing in a window long after the speech.
    assert!(agg.window(500.0, 30.0).is_none());
}

#[test]
fn decayed_weights_halve_per_half_life() {
    let cfg = AggregatorConfig {
        half_life_s: 5.0,
        ..AggregatorConfig::default()
    };
    let mut agg = Aggregator::new(labels(2), cfg).expect("valid");
    agg.push(0.0, 2.0, &[1.0, 0.0]).expect("ok"); // midpoint 1
    agg.push(4.0, 6.0, &[0.0, 1.0]).expect("ok"); // midpoint 5
    // At now = 6: weights 2·2^(−1) = 1 and 2·2^(−0.2).
    let w2 = 2.0 * (-0.2f64).exp2();
    let d = agg.decayed(6.0).expect("speech");
    close(d.probs[0], 1.0 / (1.0 + w2));
    close(d.weight, 1.0 + w2);
    // Ageing by one more half-life scales both weights by 1/2: same mix.
    let later = agg.decayed(11.0).expect("speech");
    close(later.probs[0], d.probs[0]);
    close(later.weight, d.weight / 2.0);
}

#[test]
fn dominant_switches_only_past_margin() {
    let cfg = AggregatorConfig {
        half_life_s: 1e9, // no decay: decayed = duration-weighted mean
        windows_s: vec![],
        switch_margin: 0.2,
    };
    let mut agg = Aggregator::new(labels(2), cfg).expect("valid");
    let s = agg.push(0.0, 1.0, &[0.6, 0.4]).expect("ok");
    assert_eq!(s.dominant, Some(0));
    // Mean becomes [0.45, 0.55]: label 1 leads by 0.1 < 0.2 → no switch.
    let s = agg.push(1.0, 2.0, &[0.3, 0.7]).expect("ok");
    assert_eq!(s.decayed.as_ref().map(|d| d.top), Some(1));
    assert_eq!(s.dominant, Some(0));
    // Mean becomes [0.3, 0.7] (weights 1,1,1: (0.6+0.3+0)/3 = 0.3): lead 0.4.
    let s = agg.push(2.0, 3.0, &[0.0, 1.0]).expect("ok");
    assert_eq!(s.dominant, Some(1));
    let changes = agg.changes();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].from, None);
    assert_eq!(changes[0].to, 0);
    assert!((changes[0].margin - 0.6).abs() < 1e-6);
    assert_eq!(changes[1].from, Some(0));
    assert_eq!(changes[1].to, 1);
    close(changes[1].at_s, 3.0);
    assert!((changes[1].margin - 0.4).abs() < 1e-6);
}

#[test]
fn probabilities_are_renormalised_and_validated() {
    let mut agg = Aggregator::new(labels(2), AggregatorConfig::default()).expect("valid");
    let s = agg.push(0.0, 1.0, &[2.0, 2.0]).expect("ok");
    close(s.session.expect("speech").probs[0], 0.5);
    assert_eq!(
        agg.push(0.0, 1.0, &[1.0]),
        Err(AggregateError::WrongLength {
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        agg.push(0.0, 1.0, &[0.0, 0.0]),
        Err(AggregateError::BadProbabilities)
    );
    assert_eq!(
        agg.push(0.0, 1.0, &[f32::NAN, 1.0]),
        Err(AggregateError::BadProbabilities)
    );
    assert!(matches!(
        agg.push(2.0, 1.0, &[0.5, 0.5]),
        Err(AggregateError::BadTimes { .. })
    ));
    assert!(Aggregator::new(vec![], AggregatorConfig::default()).is_err());
    let bad = AggregatorConfig {
        half_life_s: 0.0,
        ..AggregatorConfig::default()
    };
    let err = Aggregator::new(labels(2), bad).unwrap_err().to_string();
    assert!(err.contains("half_life_s"), "{err}");
}

#[test]
fn out_of_order_arrival_gives_same_summaries() {
    let mut a = Aggregator::new(labels(3), AggregatorConfig::default()).expect("valid");
    let mut b = Aggregator::new(labels(3), AggregatorConfig::default()).expect("valid");
    let utts = [
        (0.0, 2.0, [0.7f32, 0.2, 0.1]),
        (3.0, 4.5, [0.1, 0.8, 0.1]),
        (6.0, 9.0, [0.2, 0.2, 0.6]),
    ];
    for (s, e, p) in utts {
        a.push(s, e, &p).expect("ok");
    }
    for (s, e, p) in utts.iter().rev() {
        b.push(*s, *e, p).expect("ok");
    }
    let (sa, sb) = (a.snapshot(9.0), b.snapshot(9.0));
    let pairs = [
        (&sa.decayed, &sb.decayed),
        (&sa.session, &sb.session),
        (&sa.windows[0].summary, &sb.windows[0].summary),
    ];
    for (x, y) in pairs {
        let (x, y) = (x.as_ref().expect("speech"), y.as_ref().expect("speech"));
        for (p, q) in x.probs.iter().zip(&y.probs) {
            close(*p, *q);
        }
        close(x.weight, y.weight);
    }
}

/// The incremental sums against the definition computed over every utterance, on
/// a long pseudo-random session (deterministic LCG, no test-only crate needed).
#[test]
fn incremental_equals_the_definition_over_a_long_session() {
    let cfg = AggregatorConfig {
        half_life_s: 7.0,
        windows_s: vec![30.0, 120.0],
        switch_margin: 0.1,
    };
    let mut agg = Aggregator::new(labels(4), cfg.clone()).expect("valid");
    let mut seed = 12345u64;
    let mut rand = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut all: Vec<Utt> = Vec::new();
    let mut t = 0.0;
    for i in 0..3000 {
        let start = t + rand() * 2.0;
        // Every 50th utterance has zero length (it must still count).
        let end = if i % 50 == 0 {
            start
        } else {
            start + 0.3 + rand() * 6.0
        };
        t = end;
        let p: Vec<f32> = (0..4).map(|_| rand() as f32 + 0.01).collect();
        let s = agg.push(start, end, &p).expect("ok");
        let sum: f64 = p.iter().map(|&x| f64::from(x)).sum();
        all.push((start, end, p.iter().map(|&x| f64::from(x) / sum).collect()));
        if i % 500 == 499 {
            let now = s.now_s;
            let dur = |u: &Utt| (u.1 - u.0).max(MIN_DURATION_S);
            let decayed = |u: &Utt| dur(u) * (-(now - 0.5 * (u.0 + u.1)) / cfg.half_life_s).exp2();
            let brute = |w: &dyn Fn(&Utt) -> f64| {
                let total: f64 = all.iter().map(w).sum();
                (0..4)
                    .map(|k| all.iter().map(|u| w(u) * u.2[k]).sum::<f64>() / total)
                    .collect::<Vec<f64>>()
            };
            let d = s.decayed.as_ref().expect("speech");
            for (a, b) in d.probs.iter().zip(brute(&decayed)) {
                assert!((a - b).abs() < 1e-9, "decayed {a} vs {b}");
            }
            let sess = s.session.as_ref().expect("speech");
            for (a, b) in sess.probs.iter().zip(brute(&dur)) {
                assert!((a - b).abs() < 1e-9, "session {a} vs {b}");
            }
            for (ws, len) in s.windows.iter().zip(&cfg.windows_s) {
                let lo = now - len;
                let overlap = |u: &Utt| {
                    if u.1 == u.0 {
                        if lo < u.0 { MIN_DURATION_S } else { 0.0 }
                    } else {
                        (u.1.min(now) - u.0.max(lo)).max(0.0)
                    }
                };
                let got = ws.summary.as_ref().expect("speech");
                for (a, b) in got.probs.iter().zip(brute(&overlap)) {
                    assert!((a - b).abs() < 1e-9, "window {len}: {a} vs {b}");
                }
            }
        }
    }
    assert_eq!(agg.len(), 3000);
    // Only what the longest window can still see is kept.
    assert!(agg.recent.len() < 100, "{}", agg.recent.len());
}

/// Issue 18 item 5: a half-life far below an utterance's length made every
/// decayed weight round to zero, and export/report dropped the utterances.
#[test]
fn tiny_half_life_zero_length_and_huge_times_still_aggregate() {
    let cfg = AggregatorConfig {
        half_life_s: 0.0005,
        ..AggregatorConfig::default()
    };
    let mut agg = Aggregator::new(labels(2), cfg).expect("valid");
    for i in 0..19 {
        let s = agg
            .push(f64::from(i) * 3.0, f64::from(i) * 3.0 + 2.0, &[0.3, 0.7])
            .expect("ok");
        let d = s.decayed.expect("the newest utterance always has weight");
        assert!((d.probs[1] - 0.7).abs() < 1e-6, "{:?}", d.probs);
    }
    let mut agg = Aggregator::new(labels(2), AggregatorConfig::default()).expect("valid");
    let s = agg.push(5.0, 5.0, &[1.0, 0.0]).expect("zero length");
    assert!(s.decayed.is_some() && s.session.is_some());
    assert_eq!(
        s.windows[0].summary.as_ref().map(|w| w.n_utterances),
        Some(1)
    );
    let s = agg.push(1e300, 1e300, &[0.0, 1.0]).expect("huge time");
    let d = s.decayed.expect("speech");
    close(d.probs[1], 1.0);
    assert!(d.probs.iter().all(|p| p.is_finite()));
}

#[test]
fn consecutive_windows_are_overlap_weighted_and_sparse() {
    let u = [
        (10.0, 40.0, vec![1.0, 0.0]), // 20 s in window 0, 10 s in window 1
        (45.0, 55.0, vec![0.0, 1.0]),
        (3000.0, 3001.0, vec![0.5, 0.5]),
        (90.0, 90.0, vec![0.0, 1.0]), // zero length on a boundary: window 2 (60, 90]
        (1e300, 1e300, vec![1.0, 0.0]),
    ];
    let w = consecutive_windows(u.iter().map(|(s, e, p)| (*s, *e, &p[..])), 2, 30.0);
    let idx: Vec<u64> = w.windows.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, vec![0, 1, 2, 100]);
    assert_eq!(w.windows[2].1.n_utterances, 1);
    close(w.windows[1].1.probs[0], 0.5);
    close(w.windows[1].1.weight, 20.0);
    assert_eq!(w.out_of_range, 1);
}

#[test]
fn snapshot_serialises() {
    let mut agg = Aggregator::new(labels(2), AggregatorConfig::default()).expect("valid");
    let s = agg.push(0.0, 1.0, &[0.9, 0.1]).expect("ok");
    let json = serde_json::to_string(&s).expect("serialize");
    let back: Snapshot = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back.dominant, s.dominant);
    assert_eq!(back.windows.len(), 2);
    let (a, b) = (s.session.expect("speech"), back.session.expect("speech"));
    close(a.probs[0], b.probs[0]);
    assert!(json.contains("\"entropy_norm\""));
}
