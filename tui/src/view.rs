//! The plain data the dashboard draws: no model types, no I/O.
//!
//! Both drivers fill the same [`ViewState`]: `emomon replay` from a session log and
//! `emomon run` from the live pipeline. Widgets only read it, so anything that can
//! build one (a test, a log, a model) can be shown.

use std::fmt;

/// Everything the dashboard shows at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewState {
    /// Label set, in the order every `probs` vector uses.
    pub labels: Vec<String>,
    /// Where the data comes from, e.g. `"replay sample.jsonl ×4"` or `"microphone"`.
    pub source: String,
    /// Session time now, in seconds since the session started.
    pub session_s: f64,
    /// The most recent scored utterance.
    pub latest: Option<UtteranceView>,
    /// Rolling distributions over the standard windows.
    pub rolling: Rolling,
    /// Every scored utterance so far, oldest first (the timeline draws the tail that fits).
    pub timeline: Vec<TimelineEntry>,
    /// User markers, oldest first.
    pub markers: Vec<Marker>,
    /// Input level, VAD state and prosody.
    pub voice: VoiceState,
    /// Model, device, latency and loss accounting.
    pub health: Health,
    /// The data is a replayed log, not live audio (the header must not say LIVE).
    pub is_replay: bool,
    /// Listening (live) or playback (replay) is paused.
    pub paused: bool,
    /// The source has nothing more to deliver (replay reached the end of the log).
    pub finished: bool,
    /// A one-line notice for the user (e.g. "last log line truncated, ignored").
    pub notice: Option<String>,
}

/// One scored utterance as the "Now" panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct UtteranceView {
    /// Utterance id from the segmenter.
    pub id: u64,
    /// Start, in session seconds.
    pub start_s: f64,
    /// End, in session seconds.
    pub end_s: f64,
    /// Probability per label (same order as [`ViewState::labels`]); sums to ≈1.
    pub probs: Vec<f32>,
    /// Scoring method, e.g. `first-token`.
    pub method: String,
}

impl UtteranceView {
    /// Length of the utterance in seconds.
    pub fn duration_s(&self) -> f64 {
        (self.end_s - self.start_s).max(0.0)
    }
}

/// A column of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    /// Utterance id.
    pub id: u64,
    /// Start, in session seconds.
    pub start_s: f64,
    /// End, in session seconds.
    pub end_s: f64,
    /// Probability per label.
    pub probs: Vec<f32>,
}

/// A user marker ("something happened here").
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Session time of the marker.
    pub at_s: f64,
    /// Optional note.
    pub note: Option<String>,
}

/// Which rolling window is shown; `w` cycles through them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RollingWindow {
    /// The last 30 seconds.
    #[default]
    Last30s,
    /// The last two minutes.
    Last2min,
    /// The whole session.
    Session,
}

impl RollingWindow {
    /// All windows in cycling order.
    pub const ALL: [RollingWindow; 3] = [Self::Last30s, Self::Last2min, Self::Session];

    /// The next window in cycling order.
    pub fn next(self) -> Self {
        match self {
            Self::Last30s => Self::Last2min,
            Self::Last2min => Self::Session,
            Self::Session => Self::Last30s,
        }
    }

    /// Window length in seconds (`None` = whole session).
    pub fn seconds(self) -> Option<f64> {
        match self {
            Self::Last30s => Some(30.0),
            Self::Last2min => Some(120.0),
            Self::Session => None,
        }
    }

    /// Short name for tabs.
    pub fn short(self) -> &'static str {
        match self {
            Self::Last30s => "30 s",
            Self::Last2min => "2 min",
            Self::Session => "session",
        }
    }
}

impl fmt::Display for RollingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// Rolling distributions for each window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rolling {
    /// Last 30 s.
    pub last_30s: RollingDist,
    /// Last 2 min.
    pub last_2min: RollingDist,
    /// Whole session.
    pub session: RollingDist,
}

impl Rolling {
    /// The distribution for `window`.
    pub fn get(&self, window: RollingWindow) -> &RollingDist {
        match window {
            RollingWindow::Last30s => &self.last_30s,
            RollingWindow::Last2min => &self.last_2min,
            RollingWindow::Session => &self.session,
        }
    }

    /// Mutable access for `window`.
    pub fn get_mut(&mut self, window: RollingWindow) -> &mut RollingDist {
        match window {
            RollingWindow::Last30s => &mut self.last_30s,
            RollingWindow::Last2min => &mut self.last_2min,
            RollingWindow::Session => &mut self.session,
        }
    }
}

/// An aggregated distribution over a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollingDist {
    /// Probability per label; empty when no utterance falls in the window.
    pub probs: Vec<f32>,
    /// Number of utterances contributing.
    pub utterances: usize,
    /// Seconds of speech contributing.
    pub speech_s: f64,
    /// The latest change of this window's dominant label (tracked as utterances arrive).
    pub shift: Option<DominantShift>,
}

/// "The dominant emotion was X until time t, now it is Y".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DominantShift {
    /// Label index dominant before.
    pub from: usize,
    /// Label index dominant now.
    pub to: usize,
    /// Session time of the change.
    pub at_s: f64,
}

/// Voice activity as the capture side sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VadState {
    /// Waiting for speech.
    #[default]
    Listening,
    /// Inside an utterance.
    Speech,
    /// An utterance ended and is being scored.
    Processing,
}

impl VadState {
    /// Upper-case word for the dashboard (the state must read without colour).
    pub fn word(self) -> &'static str {
        match self {
            Self::Listening => "LISTENING",
            Self::Speech => "SPEECH",
            Self::Processing => "PROCESSING",
        }
    }
}

/// Input level, VAD and prosody.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VoiceState {
    /// Input level in dBFS (`None` when unknown, e.g. a replayed log without levels).
    pub level_db: Option<f32>,
    /// VAD state.
    pub vad: VadState,
    /// Length of the speech in progress, seconds.
    pub speech_s: f64,
    /// Prosody of the latest utterance, when computed.
    pub prosody: Option<ProsodyView>,
}

/// Per-utterance prosody cues (explainable, model-free).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProsodyView {
    /// Median F0 in Hz, `None` if unvoiced.
    pub f0_median_hz: Option<f32>,
    /// F0 range in Hz (e.g. 90th − 10th percentile), `None` if unvoiced.
    pub f0_range_hz: Option<f32>,
    /// Fraction of frames voiced, 0–1.
    pub voiced_fraction: f32,
    /// Mean energy in dB re full scale, `None` if silent.
    pub energy_db_mean: Option<f32>,
    /// Energy variance in dB², `None` if silent.
    pub energy_db_var: Option<f32>,
    /// Speaking rate, syllable nuclei per second, `None` if undefined.
    pub speaking_rate_syll_s: Option<f32>,
    /// Fraction of the utterance that is pause, 0–1, `None` if undefined.
    pub pause_ratio: Option<f32>,
}

/// System health; every loss counter is always shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// Model id.
    pub model: String,
    /// Device (e.g. `cpu`, `wgpu:lavapipe`).
    pub device: String,
    /// Utterances waiting for scoring.
    pub queue_depth: usize,
    /// Latency of the latest utterance, ms.
    pub latency_last_ms: Option<f64>,
    /// Median latency, ms.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency, ms.
    pub latency_p95_ms: Option<f64>,
    /// Audio samples lost (e.g. ring buffer overrun).
    pub dropped_samples: u64,
    /// Utterances not scored (scorer fell behind).
    pub skipped_utterances: u64,
    /// Real-time factor (processing time / audio time); `None` when unknown.
    pub real_time_factor: Option<f64>,
}

/// Shannon entropy of `probs` divided by ln(K): 0 = one label certain, 1 = uniform.
///
/// Normalising by ln(K) makes the number comparable across label sets of any size.
/// Returns 0 for fewer than two labels.
pub fn normalised_entropy(probs: &[f32]) -> f32 {
    if probs.len() < 2 {
        return 0.0;
    }
    let total: f32 = probs.iter().filter(|p| p.is_finite() && **p > 0.0).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let h: f32 = probs
        .iter()
        .filter(|p| p.is_finite() && **p > 0.0)
        .map(|p| {
            let q = p / total;
            -q * q.ln()
        })
        .sum();
    (h / (probs.len() as f32).ln()).clamp(0.0, 1.0)
}

/// Indices of the two most probable labels (second is `None` for one label).
pub fn top_two(probs: &[f32]) -> Option<(usize, Option<usize>)> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let first = *order.first()?;
    Some((first, order.get(1).copied()))
}

/// How to read a distribution, in words, so 60/35 is "mixed" rather than a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// One label clearly ahead.
    Clear,
    /// One label ahead, others substantial.
    Leaning,
    /// Two or more labels close: no single reading.
    Mixed,
}

impl Ambiguity {
    /// Classifies by the top-two margin (in probability) and normalised entropy.
    ///
    /// Thresholds are deliberately simple and shown next to the numbers, so the
    /// word never replaces them: margin < 0.30 or entropy > 0.75 is mixed,
    /// margin < 0.50 is leaning, otherwise clear.
    pub fn classify(margin: f32, entropy: f32) -> Self {
        if margin < 0.30 || entropy > 0.75 {
            Self::Mixed
        } else if margin < 0.50 {
            Self::Leaning
        } else {
            Self::Clear
        }
    }

    /// Lower-case word for display.
    pub fn word(self) -> &'static str {
        match self {
            Self::Clear => "clear",
            Self::Leaning => "leaning",
            Self::Mixed => "mixed",
        }
    }
}

impl ViewState {
    /// An empty view for a label set.
    pub fn new(labels: Vec<String>) -> Self {
        Self {
            labels,
            ..Self::default()
        }
    }

    /// Adds a scored utterance: it becomes "Now", joins the timeline, and every rolling
    /// window is recomputed at the utterance's end.
    ///
    /// The live pipeline may instead set [`ViewState::rolling`] from its own
    /// time-decayed aggregator; this is the simple path replay and tests use.
    pub fn push_utterance(&mut self, utterance: UtteranceView) {
        self.timeline.push(TimelineEntry {
            id: utterance.id,
            start_s: utterance.start_s,
            end_s: utterance.end_s,
            probs: utterance.probs.clone(),
        });
        let now = self.session_s.max(utterance.end_s);
        let at_s = utterance.end_s;
        self.latest = Some(utterance);
        for window in RollingWindow::ALL {
            self.update_window(window, now, at_s);
        }
    }

    /// Recomputes all rolling windows at session time `now_s` from the timeline
    /// (windows slide as time passes, so the dominant label can change without a new
    /// utterance; such a change is recorded at `now_s`).
    pub fn recompute_rolling(&mut self, now_s: f64) {
        for window in RollingWindow::ALL {
            self.update_window(window, now_s, now_s);
        }
    }

    /// Recomputes one window, recording a dominant-label change at `at_s`.
    fn update_window(&mut self, window: RollingWindow, now_s: f64, at_s: f64) {
        let old = self.rolling.get(window);
        let before = top_two(&old.probs).map(|t| t.0);
        let mut next = window_distribution(&self.timeline, window, now_s);
        let after = top_two(&next.probs).map(|t| t.0);
        next.shift = match (before, after) {
            (Some(from), Some(to)) if from != to => Some(DominantShift { from, to, at_s }),
            _ => old.shift,
        };
        *self.rolling.get_mut(window) = next;
    }
}

/// Duration-weighted mean of the utterances overlapping `[now − window, now]`.
///
/// Each utterance weighs by the seconds it overlaps the window, so a long utterance
/// counts more than a short interjection and one that is half out of the window counts
/// half. The result has no `shift`: that needs history, which
/// [`ViewState::push_utterance`] tracks.
pub fn window_distribution(
    timeline: &[TimelineEntry],
    window: RollingWindow,
    now_s: f64,
) -> RollingDist {
    let from = window.seconds().map_or(f64::NEG_INFINITY, |w| now_s - w);
    let k = timeline.first().map_or(0, |e| e.probs.len());
    let mut acc = vec![0.0f64; k];
    let mut speech_s = 0.0;
    let mut utterances = 0;
    for entry in timeline
        .iter()
        .filter(|e| e.end_s > from && e.start_s <= now_s)
    {
        if entry.probs.len() != k {
            continue;
        }
        let overlap = (entry.end_s.min(now_s) - entry.start_s.max(from)).max(0.0);
        // Zero-length utterances still count a little, so a window is never empty
        // while it visibly contains an utterance.
        let weight = overlap.max(1e-3);
        for (a, p) in acc.iter_mut().zip(&entry.probs) {
            *a += weight * f64::from(*p);
        }
        speech_s += overlap;
        utterances += 1;
    }
    let total: f64 = acc.iter().sum();
    let probs = if utterances == 0 || total <= 0.0 {
        Vec::new()
    } else {
        acc.iter().map(|a| (a / total) as f32).collect()
    };
    RollingDist {
        probs,
        utterances,
        speech_s,
        shift: None,
    }
}

/// Formats seconds as `mm:ss` (or `h:mm:ss` past an hour).
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).floor() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_bounds() {
        assert_eq!(normalised_entropy(&[1.0, 0.0, 0.0]), 0.0);
        let u = normalised_entropy(&[0.25; 4]);
        assert!((u - 1.0).abs() < 1e-5, "{u}");
        let mixed = normalised_entropy(&[0.6, 0.35, 0.05]);
        assert!(mixed > 0.7 && mixed < 0.9, "{mixed}");
    }

    #[test]
    fn sixty_thirty_five_reads_as_mixed() {
        let probs = [0.6, 0.35, 0.05];
        let (a, b) = top_two(&probs).unwrap();
        let margin = probs[a] - probs[b.unwrap()];
        let amb = Ambiguity::classify(margin, normalised_entropy(&probs));
        assert_eq!(amb, Ambiguity::Mixed);
        assert_eq!(Ambiguity::classify(0.9, 0.1), Ambiguity::Clear);
    }

    #[test]
    fn windows_weight_by_overlap_and_track_shift() {
        let e = |id, s, e, p: [f32; 2]| TimelineEntry {
            id,
            start_s: s,
            end_s: e,
            probs: p.to_vec(),
        };
        let tl = vec![e(1, 0.0, 10.0, [1.0, 0.0]), e(2, 50.0, 60.0, [0.0, 1.0])];
        let w30 = window_distribution(&tl, RollingWindow::Last30s, 60.0);
        assert_eq!(w30.utterances, 1);
        assert_eq!(w30.probs, vec![0.0, 1.0]);
        let all = window_distribution(&tl, RollingWindow::Session, 60.0);
        assert_eq!(all.utterances, 2);
        assert!((all.probs[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn dominant_shift_is_tracked_per_window() {
        let mut v = ViewState::new(vec!["a".into(), "b".into()]);
        let u = |id, s: f64, p: [f32; 2]| UtteranceView {
            id,
            start_s: s,
            end_s: s + 2.0,
            probs: p.to_vec(),
            method: "m".into(),
        };
        v.push_utterance(u(1, 0.0, [0.9, 0.1]));
        v.push_utterance(u(2, 3.0, [0.8, 0.2]));
        assert_eq!(v.rolling.last_30s.shift, None);
        v.push_utterance(u(3, 6.0, [0.0, 1.0]));
        // Session mean is still "a"; the 30 s window too (1.7 vs 1.3 weighted).
        assert_eq!(v.rolling.session.shift, None);
        v.push_utterance(u(4, 9.0, [0.0, 1.0]));
        let shift = DominantShift {
            from: 0,
            to: 1,
            at_s: 11.0,
        };
        assert_eq!(v.rolling.last_30s.shift, Some(shift));
        v.recompute_rolling(12.0);
        assert_eq!(v.rolling.last_30s.shift, Some(shift), "kept across frames");
    }

    #[test]
    fn clock_formats() {
        assert_eq!(clock(0.0), "00:00");
        assert_eq!(clock(125.9), "02:05");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
