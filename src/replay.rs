//! `emomon replay`: plays a recorded session log through the dashboard.
//!
//! For demos and for testing the dashboard without a model. Records are applied at
//! their `t_s` (when `emomon run` wrote them), on a clock running at `--speed` × real
//! time that stops while paused. The voice panel is reconstructed from utterance
//! times (speech while inside an utterance, processing until its result arrived), so
//! the replay looks like the live session did. When the log ends the dashboard stays
//! up until `q`. Markers added during replay are shown but not written anywhere: the
//! log being replayed is never modified.
//!
//! [`RecordFeeder`] (records → view state) is shared with the live `emomon run`.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use emomon_tui::{
    App, Command, LoopOptions, Marker, ProsodyView, Source, UtteranceView, VadState, ViewState,
};

use crate::session_log::{self, IssueKind, Record, SessionLog, SessionStart, UtteranceRecord};

/// Plays the session log at `session` through the dashboard at `speed` × real time,
/// until the user quits.
pub fn run(session: &Path, speed: f64) -> anyhow::Result<()> {
    if !(speed.is_finite() && speed > 0.0) {
        bail!("--speed must be a positive number, got {speed}");
    }
    let log = load(session)?;
    if !std::io::stdout().is_terminal() {
        bail!("emomon replay draws a terminal dashboard; stdout is not a terminal");
    }
    let mut player = Player::new(&log, &display_name(session), speed)
        .with_context(|| format!("{}: cannot replay", session.display()))?;
    let mut app = App::new(player.initial_view());
    player.start(Instant::now());
    emomon_tui::run_in_terminal(&mut app, &mut player, LoopOptions::default())
        .context("terminal error while drawing the dashboard")?;
    Ok(())
}

/// Reads and checks a log, turning the first serious problem into an error that names
/// the file and line.
pub fn load(path: &Path) -> anyhow::Result<SessionLog> {
    let log = session_log::read(path)?;
    if let Some(issue) = log.first_error() {
        let more = log.issues.iter().filter(|i| i.kind.is_error()).count() - 1;
        let more = if more > 0 {
            format!(" (and {more} more bad lines)")
        } else {
            String::new()
        };
        bail!("{}:{}: {}{more}", path.display(), issue.line, issue.kind);
    }
    if log.session_start().is_none() {
        bail!(
            "{}: not an emomon session log: no session_start record{}",
            path.display(),
            if log.entries.is_empty() {
                " (no records at all)"
            } else {
                ""
            }
        );
    }
    Ok(log)
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Session clock: `speed` × wall time since the anchor, frozen while paused.
#[derive(Debug, Clone)]
struct Clock {
    speed: f64,
    anchor: Option<Instant>,
    anchor_s: f64,
    paused: bool,
}

impl Clock {
    fn now_s(&self, now: Instant) -> f64 {
        match self.anchor {
            Some(a) if !self.paused => {
                self.anchor_s + now.saturating_duration_since(a).as_secs_f64() * self.speed
            }
            _ => self.anchor_s,
        }
    }

    fn set_paused(&mut self, paused: bool, now: Instant) {
        if paused == self.paused {
            return;
        }
        self.anchor_s = self.now_s(now);
        self.anchor = Some(now);
        self.paused = paused;
    }
}

/// Turns session-log records into dashboard updates.
///
/// Replay uses it for every record it plays; `emomon run` can use it for every record
/// it writes to the log, so the live dashboard shows exactly what the log will replay.
/// It keeps the running statistics the records alone do not carry (latency
/// percentiles, real-time factor).
#[derive(Debug, Clone)]
pub struct RecordFeeder {
    labels: Vec<String>,
    latencies_ms: Vec<f64>,
    speech_s: f64,
    processing_s: f64,
}

impl RecordFeeder {
    /// A feeder for a session with this `session_start`.
    pub fn new(start: &SessionStart) -> Self {
        Self {
            labels: start.labels.clone(),
            latencies_ms: Vec::new(),
            speech_s: 0.0,
            processing_s: 0.0,
        }
    }

    /// An empty view for the session: labels, model and device filled in.
    pub fn initial_view(&self, start: &SessionStart) -> ViewState {
        let mut view = ViewState::new(self.labels.clone());
        view.health.model = start.model.clone();
        view.health.device = start.device.clone();
        view
    }

    /// Applies one record written at session time `at`.
    pub fn apply(&mut self, view: &mut ViewState, at: f64, record: &Record) {
        match record {
            Record::SessionStart(_) => {}
            Record::Utterance(u) => {
                let probs = self.probs_in_view_order(u);
                self.latencies_ms.push(u.latency_ms);
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
                    probs,
                    method: u.method.clone(),
                });
                let h = &mut view.health;
                h.latency_last_ms = Some(u.latency_ms);
                h.latency_p50_ms = percentile(&self.latencies_ms, 0.50);
                h.latency_p95_ms = percentile(&self.latencies_ms, 0.95);
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

/// Replays a log's records into a [`ViewState`] as the session clock advances.
#[derive(Debug, Clone)]
pub struct Player {
    feeder: RecordFeeder,
    start: SessionStart,
    source: String,
    events: Vec<(f64, Record)>,
    next: usize,
    end_s: f64,
    clean_end: bool,
    notice: Option<String>,
    /// (start_s, end_s, result_s, level_db) per utterance, for the voice panel.
    spans: Vec<(f64, f64, f64, Option<f32>)>,
    clock: Clock,
}

impl Player {
    /// Prepares a replay of `log` (shown as `name`) at `speed` × real time.
    pub fn new(log: &SessionLog, name: &str, speed: f64) -> anyhow::Result<Self> {
        let Some(start) = log.session_start() else {
            bail!("no session_start record");
        };
        let mut events: Vec<(f64, Record)> = log
            .entries
            .iter()
            .map(|e| (e.entry.t_s, e.entry.record.clone()))
            .collect();
        // Stable: records written at the same time keep file order.
        events.sort_by(|a, b| a.0.total_cmp(&b.0));
        let end_s = events.last().map_or(0.0, |e| e.0);
        let clean_end = events.iter().any(|e| matches!(e.1, Record::SessionEnd(_)));
        let spans = events
            .iter()
            .filter_map(|(t, r)| match r {
                Record::Utterance(u) => Some((u.start_s, u.end_s, *t, u.level_db)),
                Record::Skipped(s) => Some((s.start_s, s.end_s, s.start_s, None)),
                _ => None,
            })
            .collect();
        // Short, because the notice shares the footer line with the key hints.
        let mut notes = Vec::new();
        if let Some(t) = log
            .issues
            .iter()
            .find(|i| i.kind == IssueKind::TruncatedLastLine)
        {
            notes.push(format!(
                "log line {} truncated (interrupted write), ignored",
                t.line
            ));
        }
        let unknown = log
            .issues
            .iter()
            .filter(|i| matches!(i.kind, IssueKind::UnknownType(_)))
            .count();
        if unknown > 0 {
            notes.push(format!("{unknown} records of unknown type skipped"));
        }
        Ok(Self {
            feeder: RecordFeeder::new(start),
            start: start.clone(),
            source: format!("replay {name} ×{speed}"),
            events,
            next: 0,
            end_s,
            clean_end,
            notice: (!notes.is_empty()).then(|| notes.join("; ")),
            spans,
            clock: Clock {
                speed,
                anchor: None,
                anchor_s: 0.0,
                paused: false,
            },
        })
    }

    /// The view before any time has passed.
    pub fn initial_view(&self) -> ViewState {
        let mut view = self.feeder.initial_view(&self.start);
        view.source = self.source.clone();
        view.is_replay = true;
        view.notice = self.notice.clone();
        view
    }

    /// Starts the clock at session time 0.
    pub fn start(&mut self, now: Instant) {
        self.clock.anchor = Some(now);
        self.clock.anchor_s = 0.0;
    }

    /// Session time at which the last record applies.
    pub fn end_s(&self) -> f64 {
        self.end_s
    }

    /// Applies every record up to session time `t_s` and updates the derived panels.
    pub fn advance_to(&mut self, view: &mut ViewState, t_s: f64) {
        let t = t_s.min(self.end_s).max(0.0);
        while let Some((at, record)) = self.events.get(self.next) {
            if *at > t {
                break;
            }
            let at = *at;
            let record = record.clone();
            self.next += 1;
            self.feeder.apply(view, at, &record);
        }
        view.session_s = t;
        view.recompute_rolling(t);
        self.update_voice(view, t);
        if self.next >= self.events.len() && t >= self.end_s && !view.finished {
            view.finished = true;
            if !self.clean_end {
                let msg = "log ends without session_end (session interrupted)";
                view.notice = Some(match view.notice.take() {
                    Some(n) => format!("{n}; {msg}"),
                    None => msg.to_string(),
                });
            }
        }
    }

    /// Speech while inside an utterance, processing until its result arrived.
    fn update_voice(&self, view: &mut ViewState, t: f64) {
        let speaking = self.spans.iter().find(|s| s.0 <= t && t < s.1);
        let waiting = self.spans.iter().filter(|s| s.1 <= t && t < s.2).count();
        view.health.queue_depth = waiting;
        let v = &mut view.voice;
        match speaking {
            Some(s) => {
                v.vad = VadState::Speech;
                v.speech_s = t - s.0;
                v.level_db = s.3;
            }
            None => {
                v.vad = if waiting > 0 {
                    VadState::Processing
                } else {
                    VadState::Listening
                };
                v.speech_s = 0.0;
                v.level_db = None;
            }
        }
    }
}

impl Source for Player {
    fn update(&mut self, view: &mut ViewState) {
        let t = self.clock.now_s(Instant::now());
        self.advance_to(view, t);
    }

    fn command(&mut self, command: &Command) {
        if let Command::SetPaused(p) = command {
            self.clock.set_paused(*p, Instant::now());
        }
    }
}

/// Nearest-rank percentile (`q` in 0–1) of unsorted values.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_log::{Entry, LoggedEntry, MarkerRecord, read_from};

    fn log() -> SessionLog {
        let labels = vec!["neutral".to_string(), "sad".to_string()];
        let entry = |t, record| LoggedEntry {
            line: 0,
            entry: Entry {
                schema: 1,
                t_s: t,
                record,
            },
        };
        let utt = |id, s, e, p: [f32; 2]| {
            Record::Utterance(UtteranceRecord {
                id,
                start_s: s,
                end_s: e,
                labels: vec!["sad".into(), "neutral".into()],
                probs: vec![p[1], p[0]],
                logits: vec![],
                method: "first-token".into(),
                model: "m".into(),
                latency_ms: 500.0,
                prosody: None,
                level_db: Some(-20.0),
            })
        };
        SessionLog {
            entries: vec![
                entry(
                    0.0,
                    Record::SessionStart(SessionStart {
                        started_unix_s: None,
                        emomon_version: "0".into(),
                        source: "microphone".into(),
                        model: "m".into(),
                        device: "cpu".into(),
                        method: "first-token".into(),
                        labels,
                        config: serde_json::Value::Null,
                    }),
                ),
                entry(3.5, utt(1, 1.0, 3.0, [0.8, 0.2])),
                entry(5.0, Record::Marker(MarkerRecord { note: None })),
                entry(10.5, utt(2, 6.0, 10.0, [0.3, 0.7])),
            ],
            issues: vec![],
        }
    }

    #[test]
    fn applies_records_as_time_passes() {
        let mut p = Player::new(&log(), "t.jsonl", 1.0).unwrap();
        let mut v = p.initial_view();
        p.advance_to(&mut v, 2.0);
        assert!(v.latest.is_none());
        assert_eq!(v.voice.vad, VadState::Speech);
        assert_eq!(v.voice.level_db, Some(-20.0));
        p.advance_to(&mut v, 3.2);
        assert_eq!(v.voice.vad, VadState::Processing);
        assert_eq!(v.health.queue_depth, 1);
        p.advance_to(&mut v, 4.0);
        // Labels were reordered into the session's order.
        assert_eq!(
            v.latest.as_ref().map(|u| u.probs.clone()),
            Some(vec![0.8, 0.2])
        );
        assert_eq!(v.voice.vad, VadState::Listening);
        p.advance_to(&mut v, 100.0);
        assert_eq!(v.timeline.len(), 2);
        assert_eq!(v.markers.len(), 1);
        assert_eq!(v.session_s, 10.5);
        assert!(v.finished);
        assert!(
            v.notice
                .as_deref()
                .is_some_and(|n| n.contains("without session_end"))
        );
        assert_eq!(v.health.latency_p50_ms, Some(500.0));
    }

    #[test]
    fn truncated_log_is_noticed_not_fatal() {
        let mut l = log();
        l.issues.push(crate::session_log::LineIssue {
            line: 5,
            kind: IssueKind::TruncatedLastLine,
        });
        let p = Player::new(&l, "t.jsonl", 1.0).unwrap();
        let v = p.initial_view();
        assert_eq!(
            v.notice.as_deref(),
            Some("log line 5 truncated (interrupted write), ignored")
        );
    }

    #[test]
    fn clock_stops_while_paused() {
        let t0 = Instant::now();
        let mut c = Clock {
            speed: 2.0,
            anchor: Some(t0),
            anchor_s: 0.0,
            paused: false,
        };
        let t1 = t0 + std::time::Duration::from_secs(1);
        assert!((c.now_s(t1) - 2.0).abs() < 1e-9);
        c.set_paused(true, t1);
        assert!((c.now_s(t1 + std::time::Duration::from_secs(5)) - 2.0).abs() < 1e-9);
        let t2 = t1 + std::time::Duration::from_secs(5);
        c.set_paused(false, t2);
        assert!((c.now_s(t2 + std::time::Duration::from_secs(1)) - 4.0).abs() < 1e-9);
    }

    #[test]
    fn load_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("emomon-replay-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.jsonl");
        std::fs::write(
            &bad,
            "{\"schema\":1,\"t_s\":0,\"type\":\"marker\"}\nnot json\n",
        )
        .unwrap();
        let err = load(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl:2: malformed record"), "{err}");
        let empty = dir.join("empty.jsonl");
        std::fs::write(&empty, "").unwrap();
        let err = load(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.jsonl: not an emomon session log"),
            "{err}"
        );
        let err = load(&dir.join("nope.jsonl")).unwrap_err().to_string();
        assert!(err.contains("nope.jsonl"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = read_from(&b""[..]);
    }

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.95), Some(4.0));
    }
}
