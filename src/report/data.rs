//! A session log, digested for export and reports: utterances in the session's
//! label order, the rolling aggregation replayed over them (the one
//! [`crate::aggregate`], incrementally: linear in the log), markers and losses.
//!
//! Every utterance record that parsed becomes a row: one the aggregation cannot take
//! (times out of range, no label shared with the session) is still exported and
//! counted in the report, with a note saying why it is not in the rolling numbers.

use crate::aggregate::speakers::SpeakerAggregators;
use crate::aggregate::{Aggregator, AggregatorConfig, DominantChange, Snapshot, Summary};
use crate::prosody::Prosody;
use crate::session_log::{IssueKind, Record, SessionLog, SessionStart};

/// Latest session time plots and tables lay out (115 days); later times are noted.
pub const MAX_PLAUSIBLE_S: f64 = 1e7;

/// One scored utterance, probabilities in the session's label order.
#[derive(Debug, Clone, PartialEq)]
pub struct Utt {
    pub id: u64,
    pub start_s: f64,
    pub end_s: f64,
    /// When the result was logged.
    pub t_s: f64,
    pub probs: Vec<f64>,
    /// Raw logits in session label order (NaN where missing).
    pub logits: Vec<f64>,
    pub latency_ms: f64,
    pub level_db: Option<f32>,
    pub prosody: Option<Prosody>,
    pub method: String,
    pub model: String,
    /// Who spoke it (schema 2 logs of sessions that tracked speakers).
    pub speaker: Option<String>,
    /// Time-decayed distribution at this utterance's end (everything logged up to
    /// it). For an utterance the aggregation could not take (see the notes) it is
    /// the distribution before it, or its own with `n_utterances` 0.
    pub decayed: Summary,
    /// Whether the utterance is in the rolling numbers.
    pub aggregated: bool,
    /// Its speaker's own time-decayed distribution at its end (that speaker's track
    /// alone); `None` without a speaker or when the track could not take it.
    pub speaker_decayed: Option<Summary>,
}

impl Utt {
    /// Normalised entropy of this utterance's own distribution.
    pub fn entropy_norm(&self) -> f64 {
        crate::aggregate::normalised_entropy(&self.probs)
    }

    /// Top-2 margin of this utterance's own distribution.
    pub fn top2_margin(&self) -> f64 {
        crate::aggregate::top2_margin(&self.probs)
    }

    /// Index of the most likely label (first on ties).
    pub fn top(&self) -> usize {
        crate::aggregate::argmax(&self.probs)
    }
}

/// A skipped utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    pub id: u64,
    pub start_s: f64,
    pub end_s: f64,
    pub reason: String,
}

/// A user marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub t_s: f64,
    pub note: Option<String>,
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct SessionData {
    pub start: SessionStart,
    pub utterances: Vec<Utt>,
    pub skipped: Vec<Skip>,
    pub markers: Vec<Mark>,
    pub dropped_samples: u64,
    /// `session_end` reason, or `None` when the log ends abruptly.
    pub end_reason: Option<String>,
    /// Last record time, seconds.
    pub duration_s: f64,
    /// Aggregation settings used (from the log's config when present).
    pub aggregation: AggregatorConfig,
    /// The aggregation at the end of the session.
    pub final_snapshot: Option<Snapshot>,
    pub dominant_changes: Vec<DominantChange>,
    /// Non-fatal problems found reading the log (truncated last line…).
    pub notes: Vec<String>,
    /// One track per speaker, in order of first appearance (sessions that tracked
    /// speakers; empty otherwise).
    pub speakers: Vec<SpeakerTrack>,
    /// `(end_s, index into utterances)` of aggregated utterances, by end time, for
    /// [`SessionData::decayed_at`]; the latest-logged wins among equal ends.
    decayed_index: Vec<(f64, usize)>,
}

/// One speaker's part of a session: aggregated on its own, so another speaker's
/// utterances never dilute it.
#[derive(Debug, Clone)]
pub struct SpeakerTrack {
    pub name: String,
    /// Utterances in the track (those that entered the rolling numbers).
    pub utterances: usize,
    /// Seconds of speech (the utterances' durations).
    pub speech_s: f64,
    /// The track's aggregation at the end of the session.
    pub snapshot: Snapshot,
}

/// See [`SessionData::decayed_index`](SessionData).
fn decayed_index(utterances: &[Utt]) -> Vec<(f64, usize)> {
    // Each utterance's `decayed` covers everything logged before it, so the
    // distribution at time t is the one of the last-logged utterance that ended by
    // t, provided no later-logged one ended earlier: keep a running "latest logged".
    let mut by_end: Vec<(f64, usize)> = utterances
        .iter()
        .enumerate()
        .filter(|(_, u)| u.aggregated)
        .map(|(i, u)| (u.end_s, i))
        .collect();
    by_end.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut latest = 0;
    for entry in &mut by_end {
        latest = latest.max(entry.1);
        entry.1 = latest;
    }
    by_end
}

impl SessionData {
    /// Digests a log that has a `session_start` (see [`crate::replay::load`]).
    pub fn from_log(log: &SessionLog) -> anyhow::Result<Self> {
        let start = log
            .session_start()
            .ok_or_else(|| anyhow::anyhow!("no session_start record"))?
            .clone();
        let aggregation = start.aggregation();
        let mut aggregator = Aggregator::new(start.labels.clone(), aggregation.clone())?;
        let mut by_speaker = SpeakerAggregators::new(start.labels.clone(), aggregation.clone())?;
        // (name, utterances, seconds of speech), in order of first appearance.
        let mut speaker_counts: Vec<(String, usize, f64)> = Vec::new();
        let mut data = Self {
            start,
            utterances: Vec::new(),
            skipped: Vec::new(),
            markers: Vec::new(),
            dropped_samples: 0,
            end_reason: None,
            duration_s: 0.0,
            aggregation,
            final_snapshot: None,
            dominant_changes: Vec::new(),
            notes: Vec::new(),
            speakers: Vec::new(),
            decayed_index: Vec::new(),
        };
        let labels = data.start.labels.clone();
        for entry in &log.entries {
            let t_s = entry.entry.t_s;
            data.duration_s = data.duration_s.max(t_s);
            match &entry.entry.record {
                Record::SessionStart(_) => {}
                Record::Utterance(u) => {
                    let reorder = |values: &[f32], missing: f64| -> Vec<f64> {
                        labels
                            .iter()
                            .map(|l| {
                                u.labels
                                    .iter()
                                    .position(|x| x == l)
                                    .and_then(|i| values.get(i))
                                    .map_or(missing, |v| f64::from(*v))
                            })
                            .collect()
                    };
                    let probs = reorder(&u.probs, 0.0);
                    let sum: f64 = probs.iter().sum();
                    let probs: Vec<f64> = if sum > 0.0 {
                        probs.iter().map(|p| p / sum).collect()
                    } else {
                        probs
                    };
                    let probs32: Vec<f32> = probs.iter().map(|&p| p as f32).collect();
                    let pushed = aggregator.push(u.start_s, u.end_s, &probs32);
                    let aggregated = pushed.is_ok();
                    let mut speaker_decayed = None;
                    if let (true, Some(name)) = (aggregated, &u.speaker) {
                        // Same labels and settings as the session's: what it took, this takes.
                        if let Ok(track) = by_speaker.push(name, u.start_s, u.end_s, &probs32) {
                            speaker_decayed = track.decayed;
                            match speaker_counts.iter_mut().find(|(n, ..)| n == name) {
                                Some((_, count, speech)) => {
                                    *count += 1;
                                    *speech += u.end_s - u.start_s;
                                }
                                None => speaker_counts.push((name.clone(), 1, u.end_s - u.start_s)),
                            }
                        }
                    }
                    let decayed = match pushed {
                        Ok(snapshot) => snapshot.decayed,
                        Err(e) => {
                            let why = if sum > 0.0 {
                                e.to_string()
                            } else {
                                "it shares no label with the session".into()
                            };
                            data.notes.push(format!(
                                "line {}: utterance {} is exported but not in the rolling numbers: {why}",
                                entry.line, u.id
                            ));
                            aggregator.decayed(aggregator.latest_end_s())
                        }
                    }
                    .unwrap_or_else(|| Summary::unweighted(probs.clone()));
                    data.utterances.push(Utt {
                        id: u.id,
                        start_s: u.start_s,
                        end_s: u.end_s,
                        t_s,
                        logits: if u.logits.is_empty() {
                            vec![f64::NAN; labels.len()]
                        } else {
                            reorder(&u.logits, f64::NAN)
                        },
                        probs,
                        latency_ms: u.latency_ms,
                        level_db: u.level_db,
                        prosody: u.prosody,
                        method: u.method.clone(),
                        model: u.model.clone(),
                        speaker: u.speaker.clone(),
                        decayed,
                        aggregated,
                        speaker_decayed,
                    });
                }
                Record::Marker(m) => data.markers.push(Mark {
                    t_s,
                    note: m.note.clone(),
                }),
                Record::Dropped(d) => {
                    data.dropped_samples = data.dropped_samples.max(d.total_samples)
                }
                Record::Skipped(s) => data.skipped.push(Skip {
                    id: s.utterance_id,
                    start_s: s.start_s,
                    end_s: s.end_s,
                    reason: s.reason.clone(),
                }),
                Record::SessionEnd(e) => {
                    data.end_reason = Some(e.reason.clone());
                    data.dropped_samples = data.dropped_samples.max(e.dropped_samples);
                }
            }
        }
        for issue in &log.issues {
            match issue.kind {
                IssueKind::TruncatedLastLine => data.notes.push(format!(
                    "line {}: truncated last line (the session was interrupted); ignored",
                    issue.line
                )),
                _ => data.notes.push(issue.to_string()),
            }
        }
        if data.end_reason.is_none() {
            data.notes
                .push("the log has no session_end: the session ended abruptly".into());
        }
        // Absurd times (a corrupt or edited log) stay in the rows but must not
        // stretch the time axis of every plot and table to 10^300 seconds.
        let beyond = data
            .utterances
            .iter()
            .filter(|u| u.end_s > MAX_PLAUSIBLE_S)
            .count();
        if beyond > 0 {
            data.notes.push(format!(
                "{beyond} utterances end after {MAX_PLAUSIBLE_S:e} s (the log's times are corrupt?); \
                 they are exported but left off the time axis"
            ));
        }
        data.duration_s = data.duration_s.min(MAX_PLAUSIBLE_S);
        let end = data
            .utterances
            .iter()
            .map(|u| u.end_s)
            .filter(|e| *e <= MAX_PLAUSIBLE_S)
            .fold(data.duration_s, f64::max);
        data.duration_s = end;
        data.final_snapshot = (!aggregator.is_empty()).then(|| aggregator.snapshot(end));
        data.dominant_changes = aggregator.changes().to_vec();
        data.speakers = by_speaker
            .snapshots(end)
            .into_iter()
            .zip(speaker_counts)
            .map(
                |((name, snapshot), (_, utterances, speech_s))| SpeakerTrack {
                    name,
                    utterances,
                    speech_s,
                    snapshot,
                },
            )
            .collect();
        data.decayed_index = decayed_index(&data.utterances);
        Ok(data)
    }

    /// The time-decayed distribution as known at time `t`: that of the latest
    /// utterance ended by `t` (ageing scales every weight alike, so the mix only
    /// changes when an utterance arrives). O(log n), so plots can sample it densely.
    pub fn decayed_at(&self, t: f64) -> Option<&Summary> {
        let i = self.decayed_index.partition_point(|&(end, _)| end <= t);
        let (_, u) = *self.decayed_index.get(i.checked_sub(1)?)?;
        Some(&self.utterances[u].decayed)
    }

    /// The session as `speaker` alone lived it: only their utterances, each with their
    /// own track's time-decayed distribution in place of the session's (so the rolling
    /// plot of the view is theirs, undiluted by anyone else), on the session's time
    /// axis. Skipped utterances were never given a speaker and are left out.
    pub fn speaker_view(&self, speaker: &str) -> SessionData {
        let mut own = self.clone();
        own.utterances
            .retain(|u| u.speaker.as_deref() == Some(speaker));
        for u in &mut own.utterances {
            u.aggregated = u.speaker_decayed.is_some();
            if let Some(d) = &u.speaker_decayed {
                u.decayed = d.clone();
            }
        }
        own.skipped.clear();
        own.decayed_index = decayed_index(&own.utterances);
        own
    }

    /// The session's labels.
    pub fn labels(&self) -> &[String] {
        &self.start.labels
    }
}
