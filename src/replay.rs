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
//! Records become view state through [`crate::view_feed::RecordFeeder`], as in the live
//! `emomon run`.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use emomon_tui::{App, Command, LoopOptions, Source, VadState, ViewState};

use crate::session_log::{self, IssueKind, Record, SessionLog, SessionStart};
use crate::view_feed::RecordFeeder;

/// How `replay`, `export` and `report` read a session log (the binary's
/// `--session N` / `--strict` flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogRead {
    /// Which session of the file (1 = the first; `emomon run -o FILE` appends each
    /// session to FILE). `None`: the last one.
    pub number: Option<usize>,
    /// Refuse a log with any bad line (the default skips bad lines, says which, and
    /// keeps every valid record).
    pub strict: bool,
}

/// Plays session `read` of the log at `session` through the dashboard at `speed` ×
/// real time, until the user quits.
pub fn run(session: &Path, speed: f64, read: LogRead) -> anyhow::Result<()> {
    if !(speed.is_finite() && speed > 0.0) {
        bail!("--speed must be a positive number, got {speed}");
    }
    let loaded = load(session, read)?;
    if !std::io::stdout().is_terminal() {
        bail!("emomon replay draws a terminal dashboard; stdout is not a terminal");
    }
    for note in &loaded.notes {
        eprintln!("emomon: {}: {note}", session.display());
    }
    let mut player = Player::new(&loaded.log, &display_name(session), speed)
        .with_context(|| format!("{}: cannot replay", session.display()))?;
    let mut app = App::new(player.initial_view());
    player.start(Instant::now());
    emomon_tui::run_in_terminal(&mut app, &mut player, LoopOptions::default())
        .context("terminal error while drawing the dashboard")?;
    Ok(())
}

/// One session of a log file, read for `replay`, `export` or `report`.
#[derive(Debug, Clone)]
pub struct LoadedSession {
    /// Its records and the issues on its lines.
    pub log: SessionLog,
    /// Which session of how many, and what was skipped around it, for the user.
    pub notes: Vec<String>,
}

/// Reads a log and picks one session (see [`LogRead`]). Every valid record of
/// that session is kept; bad lines are skipped and reported through the session's
/// issues (or, with `strict`, the first one is an error naming the file and line).
pub fn load(path: &Path, args: LogRead) -> anyhow::Result<LoadedSession> {
    let log = session_log::read(path)?;
    if args.strict
        && let Some(issue) = log.first_error()
    {
        let more = log.issues.iter().filter(|i| i.kind.is_error()).count() - 1;
        let more = if more > 0 {
            format!(" (and {more} more bad lines)")
        } else {
            String::new()
        };
        bail!("{}:{}: {}{more}", path.display(), issue.line, issue.kind);
    }
    let empty = log.entries.is_empty();
    let split = log.split_sessions();
    let n = split.sessions.len();
    if n == 0 {
        bail!(
            "{}: not an emomon session log: no session_start record{}",
            path.display(),
            if empty { " (no records at all)" } else { "" }
        );
    }
    let number = args.number.unwrap_or(n);
    if !(1..=n).contains(&number) {
        bail!(
            "{}: --session {number}: the file holds {n} session{} (1–{n})",
            path.display(),
            if n == 1 { "" } else { "s" }
        );
    }
    let mut notes = Vec::new();
    if n > 1 {
        let list: Vec<String> = split
            .sessions
            .iter()
            .map(|p| format!("{}: lines {}–{}", p.number, p.first_line, p.last_line))
            .collect();
        notes.push(format!(
            "the file holds {n} sessions ({}); this is session {number} (--session N for another)",
            list.join(", ")
        ));
    }
    if split.orphans > 0 {
        notes.push(format!(
            "{} records before the first session_start belong to no session; skipped",
            split.orphans
        ));
    }
    let part = split
        .sessions
        .into_iter()
        .nth(number - 1)
        .context("session index checked above")?;
    Ok(LoadedSession {
        log: part.log,
        notes,
    })
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The most records one frame applies (a few milliseconds of work).
pub const MAX_RECORDS_PER_FRAME: usize = 2_000;

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
        let bad = log.issues.iter().filter(|i| i.kind.is_error()).count();
        if bad > 0 {
            notes.push(format!("{bad} bad log lines skipped"));
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

    /// Applies every record up to session time `t_s` (at most
    /// [`MAX_RECORDS_PER_FRAME`] of them, so the dashboard keeps answering keys at
    /// any `--speed`; the rest follow on the next frames) and updates the derived
    /// panels.
    pub fn advance_to(&mut self, view: &mut ViewState, t_s: f64) {
        let mut t = t_s.min(self.end_s).max(0.0);
        let mut applied = 0;
        while let Some((at, record)) = self.events.get(self.next) {
            if *at > t {
                break;
            }
            if applied == MAX_RECORDS_PER_FRAME {
                // Behind the clock: show the time of what has been applied.
                t = *at;
                break;
            }
            let at = *at;
            let record = record.clone();
            self.next += 1;
            applied += 1;
            self.feeder.apply(view, at, &record);
        }
        view.session_s = t;
        self.feeder.refresh(view, t);
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

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_log::{Entry, LoggedEntry, MarkerRecord, UtteranceRecord};

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
                speech_latency_ms: None,
                prosody: None,
                level_db: Some(-20.0),
                speaker: None,
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

    /// Issue 18 item 6: at a high `--speed` one frame had to apply (and
    /// re-aggregate) the whole log before the dashboard read `q` again. A frame now
    /// applies a bounded number of records and the rest follow.
    #[test]
    fn a_frame_applies_a_bounded_number_of_records() {
        let mut l = log();
        let template = l.entries[1].clone();
        for i in 0..5_000u64 {
            let mut e = template.clone();
            let t = 20.0 + i as f64;
            e.entry.t_s = t + 0.5;
            if let Record::Utterance(u) = &mut e.entry.record {
                u.id = 10 + i;
                u.start_s = t;
                u.end_s = t + 0.4;
            }
            l.entries.push(e);
        }
        let mut p = Player::new(&l, "t.jsonl", 1e9).unwrap();
        let mut v = p.initial_view();
        p.advance_to(&mut v, f64::MAX);
        assert_eq!(v.timeline.len(), MAX_RECORDS_PER_FRAME - 2);
        assert!(!v.finished);
        assert!(v.session_s < p.end_s());
        let mut frames = 1;
        while !v.finished {
            p.advance_to(&mut v, f64::MAX);
            frames += 1;
        }
        assert_eq!(frames, 3);
        assert_eq!(v.timeline.len(), 5_002);
        assert_eq!(v.rolling.session.utterances, 5_002);
        assert!(v.rolling.decayed.probs.len() == 2 && v.rolling.dominant.is_some());
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
        let strict = LogRead {
            number: None,
            strict: true,
        };
        let err = load(&bad, strict).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl:2: malformed record"), "{err}");
        let err = load(&bad, LogRead::default()).unwrap_err().to_string();
        assert!(
            err.contains("bad.jsonl: not an emomon session log"),
            "{err}"
        );
        let empty = dir.join("empty.jsonl");
        std::fs::write(&empty, "").unwrap();
        let err = load(&empty, LogRead::default()).unwrap_err().to_string();
        assert!(
            err.contains("empty.jsonl: not an emomon session log"),
            "{err}"
        );
        let err = load(&dir.join("nope.jsonl"), LogRead::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.jsonl"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Issue 18 item 3: after an interrupted write the next session was glued onto
    /// the partial line, one bad line refused the whole file, and two sessions were
    /// merged. Every valid record of every session is now kept, sessions apart.
    #[test]
    fn load_picks_a_session_and_keeps_every_valid_record() {
        let dir = std::env::temp_dir().join(format!("emomon-replay-two-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("two.jsonl");
        let line = |e: &LoggedEntry| {
            let mut l = serde_json::to_vec(&e.entry).unwrap();
            l.push(b'\n');
            l
        };
        let first = log();
        let mut bytes: Vec<u8> = first.entries.iter().flat_map(line).collect();
        // A bad line mid-session, then an utterance cut short by a crash…
        bytes.extend_from_slice(b"{\"schema\":1,\"t_s\":11,\"type\":\"marker\",\"note\":17}\n");
        let cut = line(&first.entries[1]);
        bytes.extend_from_slice(&cut[..cut.len() / 2]);
        // …and the next session appended straight onto it (an older writer).
        let second: Vec<u8> = first.entries.iter().take(2).flat_map(line).collect();
        bytes.extend_from_slice(&second);
        std::fs::write(&path, &bytes).unwrap();

        let last = load(&path, LogRead::default()).unwrap();
        assert_eq!(last.log.entries.len(), 2, "session 2: start + 1 utterance");
        assert!(
            last.notes[0].contains("holds 2 sessions (1: lines 1–5, 2: lines 6–7)"),
            "{:?}",
            last.notes
        );
        let one = load(
            &path,
            LogRead {
                number: Some(1),
                strict: false,
            },
        )
        .unwrap();
        assert_eq!(one.log.entries.len(), 4, "every valid record of session 1");
        let kinds: Vec<(usize, bool)> = one
            .log
            .issues
            .iter()
            .map(|i| (i.line, i.kind.is_error()))
            .collect();
        assert_eq!(kinds, vec![(5, true), (6, false)], "{:?}", one.log.issues);
        let player = Player::new(&one.log, "two.jsonl", 1.0).unwrap();
        assert!(
            player
                .initial_view()
                .notice
                .is_some_and(|n| n.contains("1 bad log lines skipped"))
        );
        let err = load(
            &path,
            LogRead {
                number: Some(3),
                strict: false,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("holds 2 sessions (1–2)"), "{err}");
        let err = load(
            &path,
            LogRead {
                number: None,
                strict: true,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("two.jsonl:5: malformed record"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
