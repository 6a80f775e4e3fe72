//! A session log, digested for export and reports: utterances in the session's
//! label order, the rolling aggregation replayed over them, markers and losses.

use crate::aggregate::{Aggregator, AggregatorConfig, DominantChange, Snapshot, Summary};
use crate::prosody::Prosody;
use crate::session_log::{IssueKind, Record, SessionLog, SessionStart};

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
    /// Time-decayed distribution at this utterance's end (everything up to it).
    pub decayed: Summary,
}

impl Utt {
    /// Normalised entropy of this utterance's own distribution.
    pub fn entropy_norm(&self) -> f64 {
        crate::aggregate::normalized_entropy(&self.probs)
    }

    /// Top-2 margin of this utterance's own distribution.
    pub fn top2_margin(&self) -> f64 {
        crate::aggregate::top2_margin(&self.probs)
    }

    /// Index of the most likely label (first on ties).
    pub fn top(&self) -> usize {
        self.probs.iter().enumerate().fold(
            0,
            |best, (i, &p)| if p > self.probs[best] { i } else { best },
        )
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
}

impl SessionData {
    /// Digests a log that has a `session_start` (see [`crate::replay::load`]).
    pub fn from_log(log: &SessionLog) -> anyhow::Result<Self> {
        let start = log
            .session_start()
            .ok_or_else(|| anyhow::anyhow!("no session_start record"))?
            .clone();
        let aggregation = start
            .config
            .get("aggregation")
            .and_then(|a| serde_json::from_value::<AggregatorConfig>(a.clone()).ok())
            .filter(|c| Aggregator::new(start.labels.clone(), c.clone()).is_ok())
            .unwrap_or_default();
        let mut aggregator = Aggregator::new(start.labels.clone(), aggregation.clone())?;
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
                    if sum <= 0.0 {
                        data.notes.push(format!(
                            "line {}: utterance {} shares no label with the session; left out",
                            entry.line, u.id
                        ));
                        continue;
                    }
                    let probs: Vec<f64> = probs.iter().map(|p| p / sum).collect();
                    let probs32: Vec<f32> = probs.iter().map(|&p| p as f32).collect();
                    let decayed = match aggregator.push(u.start_s, u.end_s, &probs32) {
                        Ok(snapshot) => snapshot.decayed,
                        Err(e) => {
                            data.notes.push(format!(
                                "line {}: utterance {} not aggregated: {e}",
                                entry.line, u.id
                            ));
                            continue;
                        }
                    };
                    let Some(decayed) = decayed else { continue };
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
                        decayed,
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
        let end = data
            .utterances
            .iter()
            .map(|u| u.end_s)
            .fold(data.duration_s, f64::max);
        data.duration_s = end;
        data.final_snapshot = (!data.utterances.is_empty()).then(|| aggregator.snapshot(end));
        data.dominant_changes = aggregator.changes().to_vec();
        Ok(data)
    }

    /// The session's labels.
    pub fn labels(&self) -> &[String] {
        &self.start.labels
    }
}
