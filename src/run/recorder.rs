//! The session recorder: turns [`PipelineEvent`]s into session-log records, the
//! dashboard's view state, the rolling aggregation and (when asked) saved audio.
//!
//! Every record is written to the log first and then applied to the view through
//! the same [`RecordFeeder`] replay uses, so the live dashboard shows exactly what
//! `emomon replay` of the log will show. It does no I/O besides the log, the
//! optional echo (stdout for `--headless`) and the optional audio directory, and
//! it never blocks on the pipeline, so it can sit in an async loop.
//!
//! # Session time (`t_s`)
//!
//! Live input (microphone, or a file delivered at real-time pace) uses the wall
//! clock since the session started. A file read as fast as possible runs far ahead
//! of the wall clock, so there the clock is the audio itself: a result is stamped
//! at its utterance's end plus its latency (when it would have arrived, had the
//! audio been live), other records at the latest audio time seen. Either way
//! `t_s − end_s` of an utterance is its latency and replay looks like the run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use emomon_tui::{VadState, ViewState};
use serde::Serialize;

use crate::aggregate::{AggregatorConfig, DominantChange, Snapshot, percentile};
use crate::pipeline::{PipelineEvent, ScoredUtterance};
use crate::segmenter::Activity;
use crate::session_log::{
    DroppedRecord, MarkerRecord, Record, SessionEnd, SessionLogError, SessionLogWriter,
    SessionStart, SkippedRecord, UtteranceRecord,
};
use crate::utterance::Utterance;
use crate::view_feed::RecordFeeder;

use super::audio_out::AudioSaver;

/// Which clock stamps records (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockKind {
    /// Wall time since the session started (microphone, `--realtime`).
    Wall,
    /// Audio time (files read as fast as possible).
    Audio,
}

/// What a session is, as written into its `session_start` record.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// `microphone`, `microphone:NAME`, `file:PATH`.
    pub source: String,
    pub model: String,
    pub method: String,
    pub device: String,
    pub labels: Vec<String>,
    /// Front-end, pipeline and aggregation settings (free-form).
    pub config: serde_json::Value,
}

/// The end-of-session summary: printed by `--headless` as its last JSON line
/// (`"type":"summary"`) and shown on stderr after a dashboard session.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Always `"summary"`, so the line is told apart from log records.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Why the session ended (`end of input`, `user quit`, …).
    pub reason: String,
    /// The session log file.
    pub session_log: PathBuf,
    pub labels: Vec<String>,
    /// Utterances scored.
    pub utterances: u64,
    /// Utterances not scored (with reasons in the log).
    pub skipped_utterances: u64,
    /// Input samples lost.
    pub dropped_samples: u64,
    /// Seconds of audio analysed.
    pub audio_s: f64,
    /// Seconds of scored speech.
    pub speech_s: f64,
    /// Wall-clock seconds the session ran.
    pub wall_s: f64,
    /// Most utterances outstanding at once (segmented, not yet scored or
    /// skipped): stays near the score queue's length however long the session, which
    /// is what keeps memory bounded when the model falls behind.
    pub max_pending: usize,
    /// Median end-of-utterance → result latency, ms.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency, ms.
    pub latency_p95_ms: Option<f64>,
    /// Median end-of-speech (last voiced frame) → result latency, ms: what a
    /// speaker waits, the hangover included (hidden by speculative scoring).
    pub speech_latency_p50_ms: Option<f64>,
    /// 95th percentile end-of-speech → result latency, ms.
    pub speech_latency_p95_ms: Option<f64>,
    /// Rolling aggregation at the end of the session (decayed, windows, whole
    /// session), `None` when nothing was scored.
    pub aggregate: Option<Snapshot>,
    /// Every change of the dominant emotion (label indices into `labels`).
    pub dominant_changes: Vec<DominantChange>,
    /// One entry per speaker, in order of first appearance, when speakers are tracked
    /// (`--speakers`, `--enroll`): that speaker's utterances aggregated on their own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub speakers: Vec<SpeakerSummary>,
    /// Worker failures reported during the session.
    pub worker_errors: Vec<String>,
    /// Why capture stopped early, if it did (e.g. a device error).
    pub capture_error: Option<String>,
}

/// One speaker's track at the end of a session.
#[derive(Debug, Clone, Serialize)]
pub struct SpeakerSummary {
    /// `S1`, an enrolled name, `unknown`, `L`/`R` (`--speakers channels`).
    pub speaker: String,
    /// That speaker's aggregation (its `session.n_utterances` counts their utterances).
    pub aggregate: Snapshot,
}

/// Writes a session as it happens; see the module docs.
pub struct Recorder {
    log: SessionLogWriter<std::fs::File>,
    log_path: PathBuf,
    echo: Option<SessionLogWriter<Box<dyn Write + Send>>>,
    /// Applies records to the view; owns the session's aggregator.
    feeder: RecordFeeder,
    audio: Option<AudioSaver>,
    info: SessionInfo,
    clock: ClockKind,
    started: Instant,
    audio_s: f64,
    /// Segmented but not yet scored or skipped.
    pending: usize,
    max_pending: usize,
    /// Latest `t_s` written; records never go back in time.
    last_t: f64,
    utterances: u64,
    skipped: u64,
    dropped: u64,
    speech_s: f64,
    latencies_ms: Vec<f64>,
    speech_latencies_ms: Vec<f64>,
    worker_errors: Vec<String>,
    capture_error: Option<String>,
    /// Set when capture has ended (end of input, stop, error).
    capture_ended: bool,
    /// Gives each scored utterance its speaker, in utterance order.
    speakers: Option<crate::speaker::SpeakerTracker>,
}

impl Recorder {
    /// Opens (creating) the log at `log_path`, writes `session_start`, and fills
    /// `view` with the session's labels, model and device.
    pub fn start(
        log_path: &Path,
        info: SessionInfo,
        aggregation: AggregatorConfig,
        clock: ClockKind,
        audio: Option<AudioSaver>,
        view: &mut ViewState,
    ) -> anyhow::Result<Self> {
        aggregation.validate()?;
        let log = SessionLogWriter::create(log_path)?;
        let start = SessionStart {
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs_f64()),
            emomon_version: env!("CARGO_PKG_VERSION").into(),
            source: info.source.clone(),
            model: info.model.clone(),
            device: info.device.clone(),
            method: info.method.clone(),
            labels: info.labels.clone(),
            config: with_aggregation(&info.config, &aggregation),
        };
        let feeder = RecordFeeder::new(&start);
        let source = view.source.clone();
        *view = feeder.initial_view(&start);
        view.source = source;
        let mut recorder = Self {
            log,
            log_path: log_path.to_path_buf(),
            echo: None,
            feeder,
            audio,
            info,
            clock,
            started: Instant::now(),
            audio_s: 0.0,
            pending: 0,
            max_pending: 0,
            last_t: 0.0,
            utterances: 0,
            skipped: 0,
            dropped: 0,
            speech_s: 0.0,
            latencies_ms: Vec::new(),
            speech_latencies_ms: Vec::new(),
            worker_errors: Vec::new(),
            capture_error: None,
            capture_ended: false,
            speakers: None,
        };
        recorder.log.write(0.0, Record::SessionStart(start))?;
        Ok(recorder)
    }

    /// Labels each utterance with its speaker (`--speakers`, `--enroll`) from the
    /// embedding the pipeline computed; one without an embedding is `unknown`.
    pub fn track_speakers(&mut self, tracker: crate::speaker::SpeakerTracker) {
        self.speakers = Some(tracker);
    }

    /// Also writes every utterance and skipped record (the same lines as the log) to
    /// `out`, e.g. stdout for `--headless`.
    pub fn echo_to(&mut self, out: Box<dyn Write + Send>) {
        self.echo = Some(SessionLogWriter::new(out, "<stdout>"));
    }

    /// The session log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether capture has ended.
    pub fn capture_ended(&self) -> bool {
        self.capture_ended
    }

    /// Why capture stopped early, if it did.
    pub fn capture_error(&self) -> Option<&str> {
        self.capture_error.as_deref()
    }

    /// Utterances scored and logged so far.
    pub fn utterances(&self) -> u64 {
        self.utterances
    }

    /// Session time now (see the module docs).
    pub fn now_s(&self) -> f64 {
        match self.clock {
            ClockKind::Wall => self.started.elapsed().as_secs_f64(),
            ClockKind::Audio => self.audio_s.max(self.last_t),
        }
    }

    /// Records one pipeline event and updates `view`. Only a failure to write the
    /// log is an error; the caller should then stop the session (what was written
    /// stays valid).
    pub fn handle(
        &mut self,
        event: PipelineEvent,
        view: &mut ViewState,
    ) -> Result<(), SessionLogError> {
        match event {
            PipelineEvent::Level {
                at_s,
                dbfs,
                activity,
            } => {
                self.audio_s = self.audio_s.max(at_s);
                view.voice.level_db = Some(dbfs);
                match activity {
                    Activity::Speech { for_s } => {
                        view.voice.vad = VadState::Speech;
                        view.voice.speech_s = for_s;
                    }
                    Activity::Silence => {
                        view.voice.vad = if self.pending > 0 {
                            VadState::Processing
                        } else {
                            VadState::Listening
                        };
                        view.voice.speech_s = 0.0;
                    }
                }
            }
            PipelineEvent::Segmented { end_s, .. } => {
                self.audio_s = self.audio_s.max(end_s);
                self.pending += 1;
                self.max_pending = self.max_pending.max(self.pending);
                view.health.queue_depth = self.pending;
                view.voice.vad = VadState::Processing;
            }
            PipelineEvent::Scored(scored) => self.scored(scored, view)?,
            PipelineEvent::Skipped {
                utterance,
                reason,
                total,
            } => {
                self.pending = self.pending.saturating_sub(1);
                view.health.queue_depth = self.pending;
                self.skipped = self.skipped.max(total);
                self.save_audio(&utterance, view);
                let record = Record::Skipped(SkippedRecord {
                    utterance_id: utterance.id,
                    start_s: utterance.start_s,
                    end_s: utterance.end_s,
                    reason,
                    total,
                });
                let t = self.now_s();
                self.write(t, record, view, true)?;
            }
            PipelineEvent::Dropped { frames, total } => {
                self.dropped = total;
                let record = Record::Dropped(DroppedRecord {
                    samples: frames,
                    total_samples: total,
                    reason: "input overrun: audio arrived faster than it was read".into(),
                });
                let t = self.now_s();
                self.write(t, record, view, false)?;
            }
            PipelineEvent::WorkerError(message) => {
                tracing::warn!("worker error: {message}");
                view.notice = Some(message.clone());
                self.worker_errors.push(message);
            }
            PipelineEvent::CaptureEnded { summary, error } => {
                self.capture_ended = true;
                if let Some(summary) = summary {
                    self.audio_s = self.audio_s.max(summary.seconds);
                }
                if let Some(error) = error {
                    tracing::warn!("capture ended: {error}");
                    view.notice = Some(format!("input stopped: {error}"));
                    self.capture_error = Some(error);
                }
            }
        }
        Ok(())
    }

    fn scored(&mut self, s: ScoredUtterance, view: &mut ViewState) -> Result<(), SessionLogError> {
        self.pending = self.pending.saturating_sub(1);
        view.health.queue_depth = self.pending;
        let u = &s.utterance;
        let latency_ms = (s.latency.as_secs_f64() * 10_000.0).round() / 10.0;
        let speech_latency_ms = (s.speech_latency.as_secs_f64() * 10_000.0).round() / 10.0;
        let t = match self.clock {
            ClockKind::Wall => self.now_s(),
            ClockKind::Audio => u.end_s + s.latency.as_secs_f64(),
        };
        let speaker = match u.channel {
            // `--speakers channels`: the channel is the speaker.
            Some(c) => Some(crate::speaker::channels::channel_label(c).to_string()),
            None => self.speakers.as_mut().map(|tracker| {
                s.embedding
                    .as_deref()
                    .and_then(|e| tracker.assign_speech(e, (u.end_s - u.start_s) as f32).ok())
                    .map_or_else(|| crate::speaker::UNKNOWN.to_string(), |a| a.label)
            }),
        };
        let record = UtteranceRecord {
            id: u.id,
            start_s: u.start_s,
            end_s: u.end_s,
            labels: self.info.labels.clone(),
            probs: s.scores.probs.clone(),
            logits: s.scores.logits.clone(),
            method: self.info.method.clone(),
            model: self.info.model.clone(),
            latency_ms,
            speech_latency_ms: Some(speech_latency_ms),
            prosody: s.prosody,
            level_db: Some(u.rms_dbfs),
            speaker,
        };
        self.save_audio(u, view);
        self.write(t, Record::Utterance(record), view, true)?;
        self.utterances += 1;
        self.speech_s += u.duration_s();
        self.latencies_ms.push(latency_ms);
        self.speech_latencies_ms.push(speech_latency_ms);
        Ok(())
    }

    /// Logs a user marker at the current session time. The dashboard has already
    /// drawn it, so the view is not touched.
    pub fn marker(&mut self, note: Option<String>) -> Result<(), SessionLogError> {
        let t = self.now_s();
        let t = self.stamp(t);
        self.log.write(t, Record::Marker(MarkerRecord { note }))
    }

    /// Advances the dashboard clock (rolling windows slide with time) and brings
    /// the derived panels up to date; once per frame.
    pub fn tick(&mut self, view: &mut ViewState) {
        let now = self.now_s();
        view.session_s = view.session_s.max(now);
        self.feeder.refresh(view, view.session_s);
    }

    /// Writes `session_end` and returns the summary. Only call once every
    /// pipeline event has been handled, so the counts are final.
    pub fn finish(&mut self, reason: &str) -> Result<RunSummary, SessionLogError> {
        let t = self.now_s();
        let t = self.stamp(t);
        self.log.write(
            t,
            Record::SessionEnd(SessionEnd {
                utterances: self.utterances,
                dropped_samples: self.dropped,
                skipped_utterances: self.skipped,
                reason: reason.into(),
            }),
        )?;
        let aggregator = self.feeder.aggregator();
        let aggregate = (!aggregator.is_empty()).then(|| aggregator.snapshot(t));
        let speakers = self
            .feeder
            .speakers()
            .map(|tracks| tracks.snapshots(t))
            .unwrap_or_default()
            .into_iter()
            .map(|(speaker, aggregate)| SpeakerSummary { speaker, aggregate })
            .collect();
        Ok(RunSummary {
            kind: "summary",
            reason: reason.into(),
            session_log: self.log_path.clone(),
            labels: self.info.labels.clone(),
            utterances: self.utterances,
            skipped_utterances: self.skipped,
            dropped_samples: self.dropped,
            max_pending: self.max_pending,
            audio_s: self.audio_s,
            speech_s: self.speech_s,
            wall_s: self.started.elapsed().as_secs_f64(),
            latency_p50_ms: percentile(&self.latencies_ms, 0.50),
            latency_p95_ms: percentile(&self.latencies_ms, 0.95),
            speech_latency_p50_ms: percentile(&self.speech_latencies_ms, 0.50),
            speech_latency_p95_ms: percentile(&self.speech_latencies_ms, 0.95),
            dominant_changes: aggregator.changes().to_vec(),
            aggregate,
            speakers,
            worker_errors: self.worker_errors.clone(),
            capture_error: self.capture_error.clone(),
        })
    }

    /// Log first (the record is safe), then the echo, then the view (whose
    /// aggregation is the summary's: one aggregator per session).
    fn write(
        &mut self,
        t: f64,
        record: Record,
        view: &mut ViewState,
        echo: bool,
    ) -> Result<(), SessionLogError> {
        let t = self.stamp(t);
        self.log.write(t, record.clone())?;
        // A closed stdout (e.g. `| head`) must not end the session: the log is
        // the record of truth.
        if echo
            && let Some(out) = &mut self.echo
            && let Err(e) = out.write(t, record.clone())
        {
            tracing::warn!("stopped echoing records: {e}");
            self.echo = None;
        }
        self.feeder.apply(view, t, &record);
        Ok(())
    }

    /// Millisecond resolution (the log is for people and spreadsheets too), and
    /// never earlier than the previous record.
    fn stamp(&mut self, t: f64) -> f64 {
        let t = ((t * 1000.0).round() / 1000.0).max(self.last_t);
        self.last_t = t;
        t
    }

    fn save_audio(&mut self, u: &Utterance, view: &mut ViewState) {
        if let Some(saver) = &self.audio
            && let Err(e) = saver.save(u)
        {
            tracing::warn!("{e}");
            view.notice = Some(e.to_string());
            self.worker_errors.push(e.to_string());
        }
    }
}

/// `config` with the aggregation settings in `config.aggregation`, where replay,
/// export and report read them back (an object is extended, anything else wrapped).
fn with_aggregation(
    config: &serde_json::Value,
    aggregation: &AggregatorConfig,
) -> serde_json::Value {
    let mut config = match config {
        serde_json::Value::Object(_) => config.clone(),
        serde_json::Value::Null => serde_json::json!({}),
        other => serde_json::json!({ "settings": other }),
    };
    if let Some(map) = config.as_object_mut() {
        map.insert("aggregation".into(), serde_json::json!(aggregation));
    }
    config
}
