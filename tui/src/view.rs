//! The plain data the dashboard draws: no model types, no I/O.
//!
//! Both drivers fill the same [`ViewState`]: `emomon replay` from a session log and
//! `emomon run` from the live pipeline. Widgets only read it, so anything that can
//! build one (a test, a log, a model) can be shown.

pub use emomon_aggregate::{
    Aggregator, AggregatorConfig, Summary, clock, normalised_entropy, top_two, top2_margin,
};

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
    /// Rolling distributions (decayed, trailing windows, session) and the
    /// dominant emotion.
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
    /// One Now/Rolling pair per speaker, in order of first appearance (sessions that
    /// track speakers; empty otherwise). The driver fills each `rolling`.
    pub speakers: Vec<SpeakerTrack>,
}

/// One speaker's own track: their latest utterance and their rolling aggregation,
/// never mixed with anyone else's.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerTrack {
    /// `S1`, `S2`, …, an enrolled name, or `unknown`.
    pub name: String,
    /// The speaker's most recent utterance.
    pub latest: Option<UtteranceView>,
    /// The speaker's rolling distributions.
    pub rolling: Rolling,
}

/// One character standing for a speaker in the timeline: the number of `S<n>`
/// (1–9), else the name's first letter, `?` for `unknown`.
pub fn speaker_mark(name: &str) -> char {
    if name == "unknown" {
        return '?';
    }
    match name.strip_prefix('S').and_then(|n| n.parse::<u32>().ok()) {
        Some(n) if (1..=9).contains(&n) => char::from_digit(n, 10).unwrap_or('?'),
        Some(_) => '+',
        None => name.chars().next().map_or('?', |c| c.to_ascii_uppercase()),
    }
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
    /// Who spoke it, when speakers are tracked.
    pub speaker: Option<String>,
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
    /// Who spoke it, when speakers are tracked.
    pub speaker: Option<String>,
}

/// A user marker ("something happened here").
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Session time of the marker.
    pub at_s: f64,
    /// Optional note.
    pub note: Option<String>,
}

/// Which rolling distribution is shown; `w` cycles through them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RollingWindow {
    /// The time-decayed distribution (the aggregator's half-life).
    #[default]
    Decayed,
    /// The `i`-th trailing window of [`Rolling::windows`].
    Trailing(usize),
    /// The whole session.
    Session,
}

impl RollingWindow {
    /// The next one in cycling order: decayed → each trailing window → session.
    pub fn next(self, n_windows: usize) -> Self {
        match self {
            Self::Decayed if n_windows > 0 => Self::Trailing(0),
            Self::Trailing(i) if i + 1 < n_windows => Self::Trailing(i + 1),
            Self::Decayed | Self::Trailing(_) => Self::Session,
            Self::Session => Self::Decayed,
        }
    }
}

/// The rolling aggregation as the dashboard shows it: plain numbers, filled from
/// the one aggregator (`emomon-aggregate`) by [`Rolling::from_aggregator`], so the
/// dashboard, the headless summary and the report agree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rolling {
    /// Half-life of the decayed distribution, seconds (`--half-life`).
    pub half_life_s: f64,
    /// Time-decayed distribution.
    pub decayed: RollingDist,
    /// Trailing windows, shortest first as configured (e.g. 30 s, 2 min).
    pub windows: Vec<RollingDist>,
    /// Whole session.
    pub session: RollingDist,
    /// Dominant label of the decayed distribution, with hysteresis.
    pub dominant: Option<usize>,
    /// The latest change of the dominant label (`None` before the first change
    /// away from the first dominant label).
    pub last_change: Option<DominantShift>,
    /// Dominant-label changes so far (not counting the first reading).
    pub changes: usize,
}

impl Rolling {
    /// Empty distributions for an aggregator's configuration (before any utterance).
    pub fn empty(config: &AggregatorConfig) -> Self {
        Self {
            half_life_s: config.half_life_s,
            windows: config
                .windows_s
                .iter()
                .map(|&w| RollingDist {
                    length_s: Some(w),
                    ..RollingDist::default()
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Everything the aggregator says at session time `now_s` (at or after its
    /// latest utterance). Costs what [`Aggregator::snapshot`] costs: O(window).
    pub fn from_aggregator(aggregator: &Aggregator, now_s: f64) -> Self {
        let snap = aggregator.snapshot(now_s);
        let dist = |s: &Option<Summary>, length_s: Option<f64>, speech: bool| match s {
            Some(s) => RollingDist {
                length_s,
                probs: s.probs.iter().map(|&p| p as f32).collect(),
                utterances: s.n_utterances,
                speech_s: if speech { s.weight } else { 0.0 },
            },
            None => RollingDist {
                length_s,
                ..RollingDist::default()
            },
        };
        let changes = aggregator.changes();
        Self {
            half_life_s: aggregator.config().half_life_s,
            decayed: dist(&snap.decayed, None, false),
            windows: snap
                .windows
                .iter()
                .map(|w| dist(&w.summary, Some(w.length_s), true))
                .collect(),
            session: dist(&snap.session, None, true),
            dominant: snap.dominant,
            last_change: changes.last().and_then(|c| {
                c.from.map(|from| DominantShift {
                    from,
                    to: c.to,
                    at_s: c.at_s,
                })
            }),
            changes: changes.iter().filter(|c| c.from.is_some()).count(),
        }
    }

    /// The distribution for `window` (an empty one for a window that does not exist).
    pub fn get(&self, window: RollingWindow) -> &RollingDist {
        static EMPTY: RollingDist = RollingDist {
            length_s: None,
            probs: Vec::new(),
            utterances: 0,
            speech_s: 0.0,
        };
        match window {
            RollingWindow::Decayed => &self.decayed,
            RollingWindow::Trailing(i) => self.windows.get(i).unwrap_or(&EMPTY),
            RollingWindow::Session => &self.session,
        }
    }

    /// Short tab name for `window`: `decayed`, `30 s`, `2 min`, `session`.
    pub fn tab_name(&self, window: RollingWindow) -> String {
        match window {
            RollingWindow::Decayed => "decayed".into(),
            RollingWindow::Session => "session".into(),
            RollingWindow::Trailing(i) => self
                .windows
                .get(i)
                .and_then(|w| w.length_s)
                .map_or_else(|| "?".into(), duration_name),
        }
    }

    /// Every window in cycling order.
    pub fn all(&self) -> Vec<RollingWindow> {
        std::iter::once(RollingWindow::Decayed)
            .chain((0..self.windows.len()).map(RollingWindow::Trailing))
            .chain(std::iter::once(RollingWindow::Session))
            .collect()
    }
}

/// `30 s`, `2 min`, `1.5 s`: a window length or half-life for display.
pub fn duration_name(seconds: f64) -> String {
    if seconds >= 60.0 && (seconds % 60.0).abs() < 1e-9 {
        format!("{:.0} min", seconds / 60.0)
    } else if seconds >= 10.0 || seconds.fract() == 0.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{seconds:.2} s")
    }
}

/// An aggregated distribution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollingDist {
    /// Trailing window length, seconds (`None` for decayed and session).
    pub length_s: Option<f64>,
    /// Probability per label; empty when no utterance falls in the window.
    pub probs: Vec<f32>,
    /// Number of utterances contributing.
    pub utterances: usize,
    /// Seconds of speech contributing (0 for the decayed distribution, whose
    /// weights are not seconds).
    pub speech_s: f64,
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
    /// Device (e.g. `cpu`, `wgpu:lavapipe`), or `remote: host:port` when a server scores
    /// (the header then names it: the audio goes there).
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

    /// Adds a scored utterance: it becomes "Now" and joins the timeline. The
    /// rolling panel is the driver's to fill ([`Rolling::from_aggregator`]).
    pub fn push_utterance(&mut self, utterance: UtteranceView) {
        self.timeline.push(TimelineEntry {
            id: utterance.id,
            start_s: utterance.start_s,
            end_s: utterance.end_s,
            probs: utterance.probs.clone(),
            speaker: utterance.speaker.clone(),
        });
        if let Some(name) = &utterance.speaker {
            match self.speakers.iter_mut().find(|t| &t.name == name) {
                Some(track) => track.latest = Some(utterance.clone()),
                None => self.speakers.push(SpeakerTrack {
                    name: name.clone(),
                    latest: Some(utterance.clone()),
                    // Empty, with the session's windows, until the driver fills it.
                    rolling: Rolling {
                        half_life_s: self.rolling.half_life_s,
                        windows: self
                            .rolling
                            .windows
                            .iter()
                            .map(|w| RollingDist {
                                length_s: w.length_s,
                                ..RollingDist::default()
                            })
                            .collect(),
                        ..Rolling::default()
                    },
                }),
            }
        }
        self.latest = Some(utterance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_thirty_five_reads_as_mixed() {
        let probs = [0.6f32, 0.35, 0.05];
        let amb = Ambiguity::classify(
            top2_margin(&probs) as f32,
            normalised_entropy(&probs) as f32,
        );
        assert_eq!(amb, Ambiguity::Mixed);
        assert_eq!(Ambiguity::classify(0.9, 0.1), Ambiguity::Clear);
    }

    #[test]
    fn rolling_comes_from_the_aggregator_with_its_half_life() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let config = AggregatorConfig {
            half_life_s: 4.0,
            ..AggregatorConfig::default()
        };
        let mut agg = Aggregator::new(labels, config.clone()).unwrap();
        let empty = Rolling::empty(&config);
        assert_eq!(empty.windows.len(), 2);
        assert_eq!(empty.tab_name(RollingWindow::Trailing(1)), "2 min");
        agg.push(0.0, 2.0, &[0.9, 0.1]).unwrap();
        agg.push(3.0, 5.0, &[0.8, 0.2]).unwrap();
        agg.push(40.0, 50.0, &[0.0, 1.0]).unwrap();
        let r = Rolling::from_aggregator(&agg, 50.0);
        assert_eq!(r.half_life_s, 4.0);
        // Decayed: the last utterance dominates; the 30 s window holds only it.
        assert!(r.decayed.probs[1] > 0.99, "{:?}", r.decayed.probs);
        assert_eq!(r.windows[0].utterances, 1);
        assert_eq!(r.windows[0].speech_s, 10.0);
        assert_eq!(r.session.utterances, 3);
        assert_eq!(r.dominant, Some(1));
        let shift = DominantShift {
            from: 0,
            to: 1,
            at_s: 50.0,
        };
        assert_eq!(r.last_change, Some(shift));
        assert_eq!(r.changes, 1);
        let cycle: Vec<RollingWindow> = r.all();
        assert_eq!(cycle.len(), 4);
        let mut w = RollingWindow::default();
        for expected in cycle.iter().skip(1).chain(cycle.first()) {
            w = w.next(r.windows.len());
            assert_eq!(w, *expected);
        }
    }

    #[test]
    fn duration_names() {
        assert_eq!(duration_name(120.0), "2 min");
        assert_eq!(duration_name(30.0), "30 s");
        assert_eq!(duration_name(0.5), "0.50 s");
    }
}
