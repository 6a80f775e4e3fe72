//! Rolling aggregation of per-utterance emotion distributions over a session.
//!
//! One utterance's distribution is noisy; what a clinician watches is the
//! trend. The [`Aggregator`] keeps every scored utterance of a session (over a
//! fixed label set) and summarises them as:
//!
//! * a **time-decayed** distribution: utterance `i` has weight
//!   `wᵢ = dᵢ · 2^(−(now − mᵢ)/half_life)`, where `dᵢ = end − start` is its duration
//!   (longer speech is more evidence) and `mᵢ` its midpoint;
//! * **fixed windows** (default the last 30 s and 2 min) and the **whole
//!   session**: utterance `i` weighs the part of its duration that overlaps the
//!   window `[now − W, now]` (the session window weighs the full duration);
//!
//! each as the weighted mean `p̄ = Σ wᵢ pᵢ / Σ wᵢ`, with the **normalised
//! entropy** `H(p̄)/ln K` (0 = one emotion, 1 = uniform over the K labels; natural
//! log, so the normalisation makes the base irrelevant) and the **top-2 margin**
//! `p̄₍₁₎ − p̄₍₂₎`.
//!
//! The **dominant emotion** follows the decayed distribution with hysteresis: a
//! new label takes over only when it leads the current dominant one by at least
//! [`AggregatorConfig::switch_margin`], so two near-tied emotions do not make the
//! dashboard flicker. Every change is recorded as a [`DominantChange`].
//!
//! Results may arrive out of order from the worker pool; every summary is
//! computed from the stored utterances, so order of arrival does not matter
//! (except for when hysteresis sees a change). Storage is one small entry per
//! utterance (a few thousand in a long session), and each summary is a linear
//! scan — microseconds, cheap enough for every redraw tick.

use serde::{Deserialize, Serialize};

/// Aggregation parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregatorConfig {
    /// Half-life of the time-decayed distribution, seconds.
    pub half_life_s: f64,
    /// Lengths of the fixed trailing windows, seconds.
    pub windows_s: Vec<f64>,
    /// Lead (in probability) a new top label needs over the current dominant
    /// label in the decayed distribution before the dominant label changes.
    pub switch_margin: f64,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            half_life_s: 20.0,
            windows_s: vec![30.0, 120.0],
            switch_margin: 0.10,
        }
    }
}

/// Invalid configuration or input.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AggregateError {
    #[error("label set is empty")]
    NoLabels,
    #[error("invalid aggregator config: {0}")]
    InvalidConfig(String),
    #[error("utterance has {got} probabilities but the session has {expected} labels")]
    WrongLength { expected: usize, got: usize },
    #[error("utterance probabilities must be finite, non-negative and not all zero")]
    BadProbabilities,
    #[error("utterance times invalid: start {start_s} s, end {end_s} s")]
    BadTimes { start_s: f64, end_s: f64 },
}

/// A weighted summary of a set of utterances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Weighted mean distribution, aligned with the session labels; sums to 1.
    pub probs: Vec<f64>,
    /// Total weight (seconds of speech, decayed for the decayed summary).
    pub weight: f64,
    /// Utterances contributing non-zero weight.
    pub n_utterances: usize,
    /// `H(probs) / ln K` in [0, 1] (0 when K = 1).
    pub entropy_norm: f64,
    /// Highest minus second-highest probability (the highest when K = 1).
    pub top2_margin: f64,
    /// Index of the highest probability (first on ties).
    pub top: usize,
}

/// A trailing window's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// Window length, seconds.
    pub length_s: f64,
    /// `None` when no speech overlaps the window.
    pub summary: Option<Summary>,
}

/// A change of the dominant emotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DominantChange {
    /// Session time of the change (end of the utterance that caused it), s.
    pub at_s: f64,
    /// Previous dominant label index (`None` for the first utterance).
    pub from: Option<usize>,
    /// New dominant label index.
    pub to: usize,
    /// Lead of the new label over the previous one in the decayed distribution
    /// at the time of the change (its probability for the first utterance).
    pub margin: f64,
}

/// Everything the dashboard and the log need at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Time the summaries refer to, session seconds.
    pub now_s: f64,
    /// Time-decayed distribution.
    pub decayed: Option<Summary>,
    /// One per configured window, in configuration order.
    pub windows: Vec<WindowSummary>,
    /// Whole session.
    pub session: Option<Summary>,
    /// Current dominant label index (with hysteresis).
    pub dominant: Option<usize>,
}

#[derive(Debug, Clone)]
struct Entry {
    start_s: f64,
    end_s: f64,
    probs: Vec<f64>,
}

/// Rolling aggregator over one session's fixed label set.
#[derive(Debug, Clone)]
pub struct Aggregator {
    labels: Vec<String>,
    config: AggregatorConfig,
    entries: Vec<Entry>,
    latest_end_s: f64,
    dominant: Option<usize>,
    changes: Vec<DominantChange>,
}

impl Aggregator {
    /// A new, empty aggregator.
    pub fn new(labels: Vec<String>, config: AggregatorConfig) -> Result<Self, AggregateError> {
        if labels.is_empty() {
            return Err(AggregateError::NoLabels);
        }
        if !(config.half_life_s.is_finite() && config.half_life_s > 0.0) {
            return Err(AggregateError::InvalidConfig(
                "half_life_s must be positive".into(),
            ));
        }
        if config
            .windows_s
            .iter()
            .any(|w| !(w.is_finite() && *w > 0.0))
        {
            return Err(AggregateError::InvalidConfig(
                "window lengths must be positive".into(),
            ));
        }
        if !(config.switch_margin.is_finite() && (0.0..1.0).contains(&config.switch_margin)) {
            return Err(AggregateError::InvalidConfig(
                "switch_margin must be in [0, 1)".into(),
            ));
        }
        Ok(Self {
            labels,
            config,
            entries: Vec::new(),
            latest_end_s: 0.0,
            dominant: None,
            changes: Vec::new(),
        })
    }

    /// The session's labels.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The configuration.
    pub fn config(&self) -> &AggregatorConfig {
        &self.config
    }

    /// Dominant-emotion changes so far, in the order they happened.
    pub fn changes(&self) -> &[DominantChange] {
        &self.changes
    }

    /// Current dominant label index.
    pub fn dominant(&self) -> Option<usize> {
        self.dominant
    }

    /// Adds one scored utterance and returns the snapshot at its end (or at
    /// the latest end seen, if it arrived late). Probabilities are renormalised
    /// to sum to 1 (scorers round; a log may have been edited).
    pub fn push(
        &mut self,
        start_s: f64,
        end_s: f64,
        probs: &[f32],
    ) -> Result<Snapshot, AggregateError> {
        if !(start_s.is_finite() && end_s.is_finite() && start_s >= 0.0 && end_s >= start_s) {
            return Err(AggregateError::BadTimes { start_s, end_s });
        }
        if probs.len() != self.labels.len() {
            return Err(AggregateError::WrongLength {
                expected: self.labels.len(),
                got: probs.len(),
            });
        }
        let sum: f64 = probs.iter().map(|&p| p as f64).sum();
        if probs.iter().any(|p| !p.is_finite() || *p < 0.0) || sum <= 0.0 {
            return Err(AggregateError::BadProbabilities);
        }
        self.entries.push(Entry {
            start_s,
            end_s,
            probs: probs.iter().map(|&p| p as f64 / sum).collect(),
        });
        self.latest_end_s = self.latest_end_s.max(end_s);
        let at = self.latest_end_s;
        if let Some(decayed) = self.decayed(at) {
            self.update_dominant(&decayed, at);
        }
        Ok(self.snapshot(at))
    }

    /// Hysteresis: switch only when the new top label leads the current
    /// dominant one by at least `switch_margin`.
    fn update_dominant(&mut self, s: &Summary, at_s: f64) {
        match self.dominant {
            None => {
                self.dominant = Some(s.top);
                self.changes.push(DominantChange {
                    at_s,
                    from: None,
                    to: s.top,
                    margin: s.probs[s.top],
                });
            }
            Some(cur) if cur != s.top => {
                let lead = s.probs[s.top] - s.probs[cur];
                if lead >= self.config.switch_margin {
                    self.dominant = Some(s.top);
                    self.changes.push(DominantChange {
                        at_s,
                        from: Some(cur),
                        to: s.top,
                        margin: lead,
                    });
                }
            }
            Some(_) => {}
        }
    }

    /// Summaries at session time `now_s` (e.g. a redraw tick after the last
    /// utterance, so the decayed weights keep ageing).
    pub fn snapshot(&self, now_s: f64) -> Snapshot {
        Snapshot {
            now_s,
            decayed: self.decayed(now_s),
            windows: self
                .config
                .windows_s
                .iter()
                .map(|&w| WindowSummary {
                    length_s: w,
                    summary: self.window(now_s, w),
                })
                .collect(),
            session: self.weighted(|e| e.end_s - e.start_s),
            dominant: self.dominant,
        }
    }

    /// Time-decayed summary at `now_s`. Utterances whose midpoint lies after
    /// `now_s` get weight > duration (they are "from the future"); callers pass
    /// a `now_s` at or after the last utterance.
    pub fn decayed(&self, now_s: f64) -> Option<Summary> {
        let hl = self.config.half_life_s;
        self.weighted(|e| {
            let mid = 0.5 * (e.start_s + e.end_s);
            (e.end_s - e.start_s) * (-(now_s - mid) / hl).exp2()
        })
    }

    /// Summary of the window `[now_s − length_s, now_s]`, each utterance
    /// weighted by its overlap with the window.
    pub fn window(&self, now_s: f64, length_s: f64) -> Option<Summary> {
        let lo = now_s - length_s;
        self.weighted(|e| (e.end_s.min(now_s) - e.start_s.max(lo)).max(0.0))
    }

    fn weighted(&self, weight: impl Fn(&Entry) -> f64) -> Option<Summary> {
        let k = self.labels.len();
        let mut acc = vec![0.0; k];
        let mut total = 0.0;
        let mut n = 0;
        for e in &self.entries {
            let w = weight(e);
            if w > 0.0 {
                total += w;
                n += 1;
                for (a, p) in acc.iter_mut().zip(&e.probs) {
                    *a += w * p;
                }
            }
        }
        if total <= 0.0 {
            return None;
        }
        acc.iter_mut().for_each(|a| *a /= total);
        Some(summarise(acc, total, n))
    }
}

/// Normalised entropy `H(p)/ln K` with `0 · ln 0 = 0`; 0 when K ≤ 1.
pub fn normalized_entropy(p: &[f64]) -> f64 {
    if p.len() <= 1 {
        return 0.0;
    }
    let h: f64 = p.iter().filter(|&&x| x > 0.0).map(|&x| -x * x.ln()).sum();
    (h / (p.len() as f64).ln()).clamp(0.0, 1.0)
}

/// Highest minus second-highest value (the highest when there is one value).
pub fn top2_margin(p: &[f64]) -> f64 {
    let mut first = f64::NEG_INFINITY;
    let mut second = f64::NEG_INFINITY;
    for &x in p {
        if x > first {
            second = first;
            first = x;
        } else if x > second {
            second = x;
        }
    }
    if second.is_finite() {
        first - second
    } else {
        first.max(0.0)
    }
}

fn summarise(probs: Vec<f64>, weight: f64, n_utterances: usize) -> Summary {
    let top = probs
        .iter()
        .enumerate()
        .fold(0, |best, (i, &p)| if p > probs[best] { i } else { best });
    Summary {
        entropy_norm: normalized_entropy(&probs),
        top2_margin: top2_margin(&probs),
        top,
        probs,
        weight,
        n_utterances,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn entropy_and_margin_by_hand() {
        close(normalized_entropy(&[1.0, 0.0, 0.0, 0.0]), 0.0);
        close(normalized_entropy(&[0.25; 4]), 1.0);
        // H(0.5, 0.5, 0, 0) = ln 2; / ln 4 = 0.5.
        close(normalized_entropy(&[0.5, 0.5, 0.0, 0.0]), 0.5);
        close(top2_margin(&[0.1, 0.6, 0.3]), 0.3);
        close(top2_margin(&[0.5, 0.5]), 0.0);
        close(top2_margin(&[1.0]), 1.0);
        close(normalized_entropy(&[1.0]), 0.0);
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
        // Partial overlap: window [41, 52] at now = 52 with length 11 → 1 s of
        // the second utterance + 2 s of the third: p0 = 1 / 3.
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
        // Nothing in a window that ends before any speech.
        assert!(agg.window(-1.0, 0.5).is_none());
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
        for (x, y) in [(&sa.decayed, &sb.decayed), (&sa.session, &sb.session)] {
            let (x, y) = (x.as_ref().expect("speech"), y.as_ref().expect("speech"));
            for (p, q) in x.probs.iter().zip(&y.probs) {
                close(*p, *q);
            }
        }
    }

    #[test]
    fn snapshot_serialises() {
        let mut agg = Aggregator::new(labels(2), AggregatorConfig::default()).expect("valid");
        let s = agg.push(0.0, 1.0, &[0.9, 0.1]).expect("ok");
        let json = serde_json::to_string(&s).expect("serialize");
        let back: Snapshot = serde_json::from_str(&json).expect("deserialize");
        // serde_json's default float parsing may differ in the last ulp.
        assert_eq!(back.dominant, s.dominant);
        assert_eq!(back.windows.len(), 2);
        let (a, b) = (s.session.expect("speech"), back.session.expect("speech"));
        close(a.probs[0], b.probs[0]);
        assert!(json.contains("\"entropy_norm\""));
    }
}
