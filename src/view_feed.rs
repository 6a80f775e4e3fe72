//! Session-log records → dashboard view state: the one place that turns what a session
//! writes into what the dashboard shows. `emomon run` feeds it every record it logs and
//! `emomon replay` every record it plays, so the live screen and a replay agree.

use emomon_tui::{Marker, ProsodyView, Rolling, UtteranceView, ViewState};

use crate::aggregate::speakers::SpeakerAggregators;
use crate::aggregate::{Aggregator, percentile};
use crate::session_log::{Record, SessionStart, UtteranceRecord};

/// Turns session-log records into dashboard updates.
///
/// Replay uses it for every record it plays; `emomon run` uses it for every record
/// it writes to the log, so the live dashboard shows exactly what the log will replay.
/// It owns the session's [`Aggregator`] (configured from the `session_start`
/// record, so `--half-life` reaches the screen) and keeps the running statistics the
/// records alone do not carry (latency percentiles, real-time factor).
///
/// [`RecordFeeder::apply`] is O(labels + window) per record; the derived panels
/// (rolling distributions, latency percentiles) are brought up to date once per
/// frame by [`RecordFeeder::refresh`], so a replay at any speed costs time linear
/// in the records it plays.
#[derive(Debug, Clone)]
pub struct RecordFeeder {
    labels: Vec<String>,
    aggregator: Aggregator,
    latencies_ms: Vec<f64>,
    /// Latencies arrived since the percentiles were last computed.
    latencies_dirty: bool,
    speech_s: f64,
    processing_s: f64,
    /// One aggregation per speaker (logs that record speakers).
    speakers: Option<SpeakerAggregators>,
}

impl RecordFeeder {
    /// A feeder for a session with this `session_start`, aggregating with the
    /// settings its `config.aggregation` records (the defaults when absent or
    /// invalid).
    pub fn new(start: &SessionStart) -> Self {
        let aggregator = Aggregator::new(start.labels.clone(), start.aggregation())
            .or_else(|_| Aggregator::new(start.labels.clone(), Default::default()));
        Self {
            labels: start.labels.clone(),
            // session_start records with no labels are rejected when read and written.
            aggregator: aggregator.unwrap_or_else(|_| {
                Aggregator::new(vec!["?".into()], Default::default()).expect("one label")
            }),
            latencies_ms: Vec::new(),
            latencies_dirty: false,
            speech_s: 0.0,
            processing_s: 0.0,
            speakers: SpeakerAggregators::new(start.labels.clone(), start.aggregation()).ok(),
        }
    }

    /// The session's aggregation so far (the headless summary reads it).
    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }

    /// Each speaker's own aggregation (sessions that track speakers; empty until one is
    /// heard). The headless summary reads it.
    pub fn speakers(&self) -> Option<&SpeakerAggregators> {
        self.speakers.as_ref()
    }

    /// An empty view for the session: labels, model and device filled in.
    pub fn initial_view(&self, start: &SessionStart) -> ViewState {
        let mut view = ViewState::new(self.labels.clone());
        view.health.model = start.model.clone();
        view.health.device = start.device.clone();
        view.rolling = Rolling::empty(self.aggregator.config());
        view
    }

    /// Brings the derived panels up to date at session time `now_s`: the rolling
    /// distributions (which slide with time) and, when new results came in, the
    /// latency percentiles.
    pub fn refresh(&mut self, view: &mut ViewState, now_s: f64) {
        if !self.aggregator.is_empty() {
            let now = now_s.max(self.aggregator.latest_end_s());
            view.rolling = Rolling::from_aggregator(&self.aggregator, now);
            if let Some(tracks) = &self.speakers {
                for track in &mut view.speakers {
                    if let Some(agg) = tracks.get(&track.name) {
                        track.rolling = Rolling::from_aggregator(agg, now.max(agg.latest_end_s()));
                    }
                }
            }
        }
        if self.latencies_dirty {
            self.latencies_dirty = false;
            view.health.latency_p50_ms = percentile(&self.latencies_ms, 0.50);
            view.health.latency_p95_ms = percentile(&self.latencies_ms, 0.95);
        }
    }

    /// Applies one record written at session time `at` (see [`RecordFeeder::refresh`]
    /// for the panels it leaves to the next frame).
    pub fn apply(&mut self, view: &mut ViewState, at: f64, record: &Record) {
        match record {
            Record::SessionStart(_) => {}
            Record::Utterance(u) => {
                let probs = self.probs_in_view_order(u);
                if let Err(e) = self.aggregator.push(u.start_s, u.end_s, &probs) {
                    view.notice = Some(format!("utterance {} not aggregated: {e}", u.id));
                }
                if let (Some(who), Some(tracks)) = (&u.speaker, self.speakers.as_mut()) {
                    // Refused utterances were reported just above.
                    let _ = tracks.push(who, u.start_s, u.end_s, &probs);
                }
                self.latencies_ms.push(u.latency_ms);
                self.latencies_dirty = true;
                self.speech_s += (u.end_s - u.start_s).max(0.0);
                self.processing_s += u.latency_ms / 1000.0;
                view.voice.prosody = u.prosody.map(|p| ProsodyView {
                    f0_median_hz: p.f0_median_hz,
                    f0_range_hz: p.f0_range_hz,
                    voiced_fraction: p.voiced_fraction,
                    energy_db_mean: p.energy_db_mean,
                    energy_db_var: p.energy_db_var,
                    speaking_rate_syll_s: p.speaking_rate_syll_s,
                    pause_ratio: p.pause_ratio,
                });
                view.session_s = view.session_s.max(at);
                view.push_utterance(UtteranceView {
                    id: u.id,
                    start_s: u.start_s,
                    end_s: u.end_s,
                    probs: probs.clone(),
                    method: u.method.clone(),
                    speaker: u.speaker.clone(),
                });
                let h = &mut view.health;
                h.latency_last_ms = Some(u.latency_ms);
                if self.speech_s > 0.0 {
                    h.real_time_factor = Some(self.processing_s / self.speech_s);
                }
            }
            Record::Marker(m) => view.markers.push(Marker {
                at_s: at,
                note: m.note.clone(),
            }),
            Record::Dropped(d) => {
                view.health.dropped_samples = view
                    .health
                    .dropped_samples
                    .max(d.total_samples)
                    .max(d.samples);
            }
            Record::Skipped(s) => {
                view.health.skipped_utterances = (view.health.skipped_utterances + 1).max(s.total);
            }
            Record::SessionEnd(e) => {
                view.health.dropped_samples = view.health.dropped_samples.max(e.dropped_samples);
                view.health.skipped_utterances =
                    view.health.skipped_utterances.max(e.skipped_utterances);
            }
        }
    }

    /// Reorders an utterance's probabilities into the session's label order (by name),
    /// so a log whose records list labels differently still lines up.
    fn probs_in_view_order(&self, u: &UtteranceRecord) -> Vec<f32> {
        if u.labels == self.labels {
            return u.probs.clone();
        }
        self.labels
            .iter()
            .map(|l| {
                u.labels
                    .iter()
                    .position(|x| x == l)
                    .and_then(|i| u.probs.get(i))
                    .copied()
                    .unwrap_or(0.0)
            })
            .collect()
    }
}
