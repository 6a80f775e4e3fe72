//! Rolling aggregation of per-utterance emotion distributions over a session: the
//! one place it is computed, for the live dashboard, the headless summary, the
//! report and the export.
//!
//! One utterance's distribution is noisy; what a clinician watches is the trend.
//! The [`Aggregator`] takes scored utterances (over a fixed label set) one at a time
//! and summarises them as:
//!
//! * a **time-decayed** distribution: utterance `i` has weight
//!   `wᵢ = dᵢ · 2^(−(now − mᵢ)/half_life)`, where `dᵢ` is its duration (longer
//!   speech is more evidence) and `mᵢ` its midpoint;
//! * **fixed windows** (default the last 30 s and 2 min) and the **whole
//!   session**: utterance `i` weighs the part of its duration that overlaps the
//!   window `[now − W, now]` (the session weighs the full duration);
//!
//! each as the weighted mean `p̄ = Σ wᵢ pᵢ / Σ wᵢ`, with the normalised entropy and
//! the top-2 margin of [`stats`].
//!
//! The **dominant emotion** follows the decayed distribution with hysteresis: a new
//! label takes over only when it leads the current dominant one by at least
//! [`AggregatorConfig::switch_margin`], so two near-tied emotions do not make the
//! dashboard flicker. Every change is recorded as a [`DominantChange`].
//!
//! # Cost
//!
//! An eight-hour day of sessions is some 140,000 utterances, so nothing here looks
//! at the whole history. Each push is O(K) for the decayed and session sums plus
//! O(utterances in the longest window) for the windows, which keep only the
//! utterances that can still overlap them (a deque); a snapshot costs the same.
//! The decayed sums are kept relative to the latest midpoint seen (rescaled by
//! `2^(−Δ/half_life)` when a later one arrives), so the mix never overflows and
//! the newest utterance never rounds to zero weight, however short the half-life
//! or large the times: ageing every weight by the same factor does not change the
//! mix, only the total weight.
//!
//! Every utterance counts for at least [`MIN_DURATION_S`], so a zero-length
//! utterance (a clock glitch, an edited log) is still aggregated, not lost.
//!
//! Results may arrive out of order (a worker pool, a log with shuffled lines); the
//! summaries do not depend on the order of arrival (except when hysteresis sees a
//! change), as long as a late utterance still overlaps the windows.

mod clock;
pub mod speakers;
pub mod stats;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use clock::clock;
pub use stats::{argmax, normalised_entropy, percentile, top_two, top2_margin};

/// The least duration an utterance weighs, seconds (see the crate docs).
pub const MIN_DURATION_S: f64 = 1e-3;

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

impl AggregatorConfig {
    /// Checks every field, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), AggregateError> {
        let bad = |what: &str| Err(AggregateError::InvalidConfig(what.into()));
        if !(self.half_life_s.is_finite() && self.half_life_s > 0.0) {
            return bad("half_life_s must be a positive number of seconds");
        }
        if self.windows_s.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return bad("window lengths must be positive numbers of seconds");
        }
        if !(self.switch_margin.is_finite() && (0.0..1.0).contains(&self.switch_margin)) {
            return bad("switch_margin must be in [0, 1)");
        }
        Ok(())
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
    /// Total weight (seconds of speech, decayed for the decayed summary; it may
    /// underflow to 0 long after the last utterance while `probs` stays defined).
    pub weight: f64,
    /// Utterances contributing.
    pub n_utterances: usize,
    /// [`normalised_entropy`] of `probs`, in [0, 1].
    pub entropy_norm: f64,
    /// [`top2_margin`] of `probs`.
    pub top2_margin: f64,
    /// [`argmax`] of `probs`.
    pub top: usize,
}

impl Summary {
    /// One distribution on its own, with no weight behind it (`weight` and
    /// `n_utterances` 0): for showing something that was not aggregated.
    pub fn unweighted(probs: Vec<f64>) -> Self {
        Self {
            entropy_norm: normalised_entropy(&probs),
            top2_margin: top2_margin(&probs),
            top: argmax(&probs),
            probs,
            weight: 0.0,
            n_utterances: 0,
        }
    }

    /// Summarises weighted sums `Σ wᵢ pᵢ` (one per label) of total weight `Σ wᵢ`;
    /// `None` when nothing has weight.
    fn from_sums(sums: &[f64], total: f64, weight: f64, n_utterances: usize) -> Option<Self> {
        if total.is_nan() || total <= 0.0 || n_utterances == 0 {
            return None;
        }
        let probs: Vec<f64> = sums.iter().map(|s| s / total).collect();
        Some(Self {
            entropy_norm: normalised_entropy(&probs),
            top2_margin: top2_margin(&probs),
            top: argmax(&probs),
            probs,
            weight,
            n_utterances,
        })
    }
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

/// One utterance as the windows keep it.
#[derive(Debug, Clone)]
struct Entry {
    start_s: f64,
    end_s: f64,
    probs: Box<[f64]>,
}

/// Running weighted sums.
#[derive(Debug, Clone)]
struct Sums {
    by_label: Vec<f64>,
    weight: f64,
    n: usize,
}

impl Sums {
    fn new(k: usize) -> Self {
        Self {
            by_label: vec![0.0; k],
            weight: 0.0,
            n: 0,
        }
    }

    fn add(&mut self, w: f64, probs: &[f64]) {
        for (a, p) in self.by_label.iter_mut().zip(probs) {
            *a += w * p;
        }
        self.weight += w;
        self.n += 1;
    }

    fn scale(&mut self, factor: f64) {
        self.by_label.iter_mut().for_each(|a| *a *= factor);
        self.weight *= factor;
    }
}

/// Rolling aggregator over one session's fixed label set.
#[derive(Debug, Clone)]
pub struct Aggregator {
    labels: Vec<String>,
    config: AggregatorConfig,
    /// Decayed sums, relative to weights at time `decay_ref_s`.
    decayed: Sums,
    decay_ref_s: f64,
    session: Sums,
    /// Utterances that may still overlap the longest window, in arrival order.
    recent: VecDeque<Entry>,
    longest_window_s: f64,
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
        config.validate()?;
        let k = labels.len();
        Ok(Self {
            longest_window_s: config.windows_s.iter().copied().fold(0.0, f64::max),
            labels,
            config,
            decayed: Sums::new(k),
            decay_ref_s: f64::NEG_INFINITY,
            session: Sums::new(k),
            recent: VecDeque::new(),
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

    /// Utterances aggregated so far.
    pub fn len(&self) -> usize {
        self.session.n
    }

    /// Whether no utterance was aggregated yet.
    pub fn is_empty(&self) -> bool {
        self.session.n == 0
    }

    /// The latest utterance end seen, session seconds.
    pub fn latest_end_s(&self) -> f64 {
        self.latest_end_s
    }

    /// Adds one scored utterance and returns the snapshot at its end (or at the
    /// latest end seen, if it arrived late). Probabilities are renormalised to sum
    /// to 1 (scorers round; a log may have been edited).
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
        let sum: f64 = probs.iter().map(|&p| f64::from(p)).sum();
        if probs.iter().any(|p| !p.is_finite() || *p < 0.0) || !(sum > 0.0 && sum.is_finite()) {
            return Err(AggregateError::BadProbabilities);
        }
        let probs: Box<[f64]> = probs.iter().map(|&p| f64::from(p) / sum).collect();
        let duration = (end_s - start_s).max(MIN_DURATION_S);
        self.session.add(duration, &probs);
        self.add_decayed(0.5 * (start_s + end_s), duration, &probs);
        self.latest_end_s = self.latest_end_s.max(end_s);
        let lo = self.latest_end_s - self.longest_window_s;
        if end_s > lo {
            self.recent.push_back(Entry {
                start_s,
                end_s,
                probs,
            });
        }
        while self.recent.front().is_some_and(|e| e.end_s <= lo) {
            self.recent.pop_front();
        }
        let at = self.latest_end_s;
        if let Some(decayed) = self.decayed(at) {
            self.update_dominant(&decayed, at);
        }
        Ok(self.snapshot(at))
    }

    /// Adds weight `duration · 2^((mid − ref)/half_life)` to the decayed sums,
    /// first moving the reference to `mid` when `mid` is later (see the crate docs).
    fn add_decayed(&mut self, mid: f64, duration: f64, probs: &[f64]) {
        let hl = self.config.half_life_s;
        if mid > self.decay_ref_s {
            if self.decayed.n > 0 {
                self.decayed.scale((-(mid - self.decay_ref_s) / hl).exp2());
            }
            self.decay_ref_s = mid;
        }
        let w = duration * (-(self.decay_ref_s - mid) / hl).exp2();
        self.decayed.add(w, probs);
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

    /// Summaries at session time `now_s`, normally at or after the latest
    /// utterance end (a redraw tick: the windows slide and the decayed weights keep
    /// ageing). Costs O(K + utterances in the longest window).
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
            session: Summary::from_sums(
                &self.session.by_label,
                self.session.weight,
                self.session.weight,
                self.session.n,
            ),
            dominant: self.dominant,
        }
    }

    /// Time-decayed summary at `now_s` (O(K)). The mix does not depend on `now_s`;
    /// only the total weight decays.
    pub fn decayed(&self, now_s: f64) -> Option<Summary> {
        let age = (-(now_s - self.decay_ref_s) / self.config.half_life_s).exp2();
        Summary::from_sums(
            &self.decayed.by_label,
            self.decayed.weight,
            self.decayed.weight * age,
            self.decayed.n,
        )
    }

    /// Summary of the trailing window `[now_s − length_s, now_s]`, each utterance
    /// weighted by its overlap. Only windows up to the longest configured one see
    /// every utterance (older ones were let go).
    pub fn window(&self, now_s: f64, length_s: f64) -> Option<Summary> {
        window_mean(
            self.recent
                .iter()
                .map(|e| (e.start_s, e.end_s, &e.probs[..])),
            self.labels.len(),
            now_s - length_s,
            now_s,
        )
    }
}

/// Overlap-weighted mean of `(start_s, end_s, probs)` utterances over the interval
/// `[lo, hi]`: each weighs the seconds it overlaps (at least [`MIN_DURATION_S`]
/// long, so a zero-length utterance inside the interval counts). `None` when
/// nothing overlaps. `k` is the number of labels.
pub fn window_mean<'a>(
    utterances: impl IntoIterator<Item = (f64, f64, &'a [f64])>,
    k: usize,
    lo: f64,
    hi: f64,
) -> Option<Summary> {
    let mut sums = Sums::new(k);
    for (start, end, probs) in utterances {
        let w = overlap(start, end, lo, hi);
        if w > 0.0 {
            sums.add(w, probs);
        }
    }
    Summary::from_sums(&sums.by_label, sums.weight, sums.weight, sums.n)
}

/// Seconds of `[start, end]` inside `[lo, hi]`; an utterance shorter than
/// [`MIN_DURATION_S`] counts [`MIN_DURATION_S`] when it lies in `(lo, hi]`.
fn overlap(start: f64, end: f64, lo: f64, hi: f64) -> f64 {
    if end - start >= MIN_DURATION_S {
        (end.min(hi) - start.max(lo)).max(0.0)
    } else if lo < end && start <= hi {
        MIN_DURATION_S
    } else {
        0.0
    }
}

/// Overlap-weighted means over consecutive windows `[i·L, (i+1)·L)`, linear in
/// the utterances: each is added to the windows it overlaps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsecutiveWindows {
    /// `(window index i, summary)` for every window that holds speech, in time
    /// order; windows without speech are absent.
    pub windows: Vec<(u64, Summary)>,
    /// Utterances left out because they start after [`MAX_WINDOWS`] windows or span
    /// more than [`MAX_WINDOWS`] of them (corrupt times: a report must not stall on
    /// them). Callers report the count.
    pub out_of_range: usize,
}

/// The most windows [`consecutive_windows`] lays out (a billion seconds of
/// 2-minute windows is four millennia).
pub const MAX_WINDOWS: u64 = 10_000_000;

/// See [`ConsecutiveWindows`].
pub fn consecutive_windows<'a>(
    utterances: impl IntoIterator<Item = (f64, f64, &'a [f64])>,
    k: usize,
    length_s: f64,
) -> ConsecutiveWindows {
    let mut by_window: std::collections::BTreeMap<u64, Sums> = Default::default();
    let mut out_of_range = 0;
    for (start, end, probs) in utterances {
        let (first, last) = ((start / length_s).floor(), (end / length_s).ceil());
        if !(first >= 0.0 && last <= MAX_WINDOWS as f64) {
            out_of_range += 1;
            continue;
        }
        // From the window before: a zero-length utterance on a boundary belongs to
        // the window it ends (see `overlap`).
        for i in (first as u64).saturating_sub(1)..(last as u64).max(first as u64 + 1) {
            let (lo, hi) = (i as f64 * length_s, (i + 1) as f64 * length_s);
            let w = overlap(start, end, lo, hi);
            if w > 0.0 {
                by_window
                    .entry(i)
                    .or_insert_with(|| Sums::new(k))
                    .add(w, probs);
            }
        }
    }
    ConsecutiveWindows {
        windows: by_window
            .into_iter()
            .filter_map(|(i, s)| {
                Summary::from_sums(&s.by_label, s.weight, s.weight, s.n).map(|x| (i, x))
            })
            .collect(),
        out_of_range,
    }
}

#[cfg(test)]
mod tests;
