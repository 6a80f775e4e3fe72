//! The session log: versioned, append-only JSONL, one record per event.
//!
//! Written by `emomon run` while a session goes on (`--session-log PATH`, default a
//! timestamped file in `~/.local/share/emomon/sessions/`; `--headless` also prints the
//! `utterance` and `skipped` lines to stdout), read by `emomon replay`, `report` and
//! `export`. It is the only thing a session leaves behind (no audio unless asked),
//! so it carries everything needed to re-analyse a session later: label sets, raw
//! logits, method, model, timings, prosody, and every loss.
//!
//! # Format (schema 2)
//!
//! One JSON object per line, UTF-8, `\n`-terminated. Every record has:
//!
//! | field    | type   | meaning |
//! |----------|--------|---------|
//! | `schema` | int    | schema version, currently [`SCHEMA_VERSION`] = 2 (1 is still read) |
//! | `type`   | string | record type, below |
//! | `t_s`    | float  | session time when the record was written, seconds since session start |
//!
//! Record types and their other fields:
//!
//! * `session_start` — first record. `started_unix_s` (float, optional: wall clock at
//!   start), `emomon_version`, `source` (`"microphone"`, `"file:PATH"`), `model` (id),
//!   `device` (`"cpu"`, `"wgpu"`…), `method` (`first-token`, `token-average`, `text`…),
//!   `labels` (array of strings, the label set), `config` (free-form object: VAD,
//!   segmenter, aggregation settings; may be `null`).
//! * `utterance` — one scored utterance. `id` (int), `start_s`, `end_s` (session
//!   seconds), `labels` (repeated so every record stands alone), `probs` (same order,
//!   sums to 1), `logits` (raw label logits, same order; non-finite values are written
//!   as `null` and read back as NaN; may be empty for methods without logits),
//!   `method`, `model`, `latency_ms` (end of utterance → result), optional
//!   `speech_latency_ms` (end of its last voiced frame → result: what the speaker
//!   waited, hangover included; absent in logs from before it), optional `prosody`
//!   `{f0_median_hz, f0_range_hz, voiced_fraction, energy_db_mean, energy_db_var,
//!   speaking_rate_syll_s, pause_ratio}` (all but `voiced_fraction` may be `null` when
//!   undefined, e.g. no voiced frames), optional `level_db` (mean input level, dBFS),
//!   optional `speaker` (schema 2: `S1`, `S2`… with `--speakers N`, an enrolled name or
//!   `unknown` with `--enroll`; absent when speakers are not tracked, and in schema 1).
//!   `t_s` is when the result arrived, so `t_s − end_s` ≈ latency.
//! * `marker` — the user pressed `m`. `note` (string or `null`); the time is `t_s`.
//! * `dropped` — audio samples were lost (e.g. ring buffer overrun). `samples` (this
//!   event), `total_samples` (since session start), `reason`.
//! * `skipped` — an utterance was not scored (scorer behind live audio). `utterance_id`,
//!   `start_s`, `end_s`, `reason`, `total` (skipped since session start).
//! * `session_end` — last record of an orderly shutdown. `utterances` (scored),
//!   `dropped_samples`, `skipped_utterances`, `reason` (`"user quit"`, `"end of input"`…).
//!   A log without it ended abruptly (crash, `kill -9`); everything before is valid.
//!
//! Example:
//!
//! ```json
//! {"schema":2,"t_s":0.0,"type":"session_start","started_unix_s":1795443300.0,"emomon_version":"0.1.0","source":"microphone","model":"qwen2-audio-7b-instruct","device":"cpu","method":"first-token","labels":["neutral","happy","sad"],"config":null}
//! {"schema":2,"t_s":4.1,"type":"utterance","id":1,"start_s":1.2,"end_s":3.7,"labels":["neutral","happy","sad"],"probs":[0.6,0.1,0.3],"logits":[2.1,0.4,1.4],"method":"first-token","model":"qwen2-audio-7b-instruct","latency_ms":412.0,"speaker":"S1"}
//! {"schema":2,"t_s":9.0,"type":"marker","note":null}
//! {"schema":2,"t_s":60.0,"type":"session_end","utterances":1,"dropped_samples":0,"skipped_utterances":0,"reason":"user quit"}
//! ```
//!
//! # Durability and compatibility
//!
//! [`SessionLogWriter`] appends and flushes each record with a single write, so a crash
//! or `kill -9` loses at most the record being written. [`read`] keeps every complete
//! record, reports a truncated last line instead of failing, and reports malformed
//! lines with their line numbers. Readers skip (and report) record types they do not
//! know, so new record types can be added without a version bump; changing or removing
//! a field bumps [`SCHEMA_VERSION`], and records with a newer schema are reported.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version written into every record's `schema` field.
/// 2 added the utterance's `speaker`; schema 1 logs read as sessions without speakers.
pub const SCHEMA_VERSION: u32 = 2;

/// Errors writing or opening a session log.
#[derive(Debug, thiserror::Error)]
pub enum SessionLogError {
    /// The file could not be opened, read or written.
    /// The OS error is in the message and deliberately not a `#[source]`, so
    /// `{:#}` prints it once.
    #[error("session log {}: {error}", path.display())]
    Io {
        /// The log file (or `<stream>`).
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// A record could not be serialised.
    #[error("cannot serialise session log record: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A record is inconsistent (e.g. `probs` and `labels` differ in length).
    #[error("invalid session log record: {0}")]
    Invalid(String),
}

/// One line of the log: the envelope fields plus the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Schema version ([`SCHEMA_VERSION`] when written by this build).
    pub schema: u32,
    /// Session time when written, seconds.
    pub t_s: f64,
    /// The record.
    #[serde(flatten)]
    pub record: Record,
}

/// The record types; the `type` field in JSON is the snake_case variant name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// Session start: configuration, model and label set.
    SessionStart(SessionStart),
    /// A scored utterance.
    Utterance(UtteranceRecord),
    /// A user marker.
    Marker(MarkerRecord),
    /// Lost audio samples.
    Dropped(DroppedRecord),
    /// An utterance that was not scored.
    Skipped(SkippedRecord),
    /// Orderly end of the session.
    SessionEnd(SessionEnd),
}

impl Record {
    /// The `type` names this build understands.
    pub const TYPES: [&'static str; 6] = [
        "session_start",
        "utterance",
        "marker",
        "dropped",
        "skipped",
        "session_end",
    ];

    /// Checks internal consistency (lengths match, probabilities finite).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Record::SessionStart(s) if s.labels.is_empty() => {
                Err("session_start has no labels".into())
            }
            Record::Utterance(u) => u.validate(),
            _ => Ok(()),
        }
    }
}

/// `session_start` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStart {
    /// Wall-clock start, seconds since the Unix epoch.
    #[serde(default)]
    pub started_unix_s: Option<f64>,
    /// Version of emomon that wrote the log.
    pub emomon_version: String,
    /// Audio source (`microphone`, `file:PATH`).
    pub source: String,
    /// Model id.
    pub model: String,
    /// Compute device.
    pub device: String,
    /// Scoring method.
    pub method: String,
    /// Label set.
    pub labels: Vec<String>,
    /// Free-form configuration (VAD, segmenter, aggregation…).
    #[serde(default)]
    pub config: serde_json::Value,
}

impl SessionStart {
    /// The aggregation settings the session ran with (`config.aggregation`, as
    /// `emomon run` writes it), or the defaults when absent or invalid.
    pub fn aggregation(&self) -> crate::aggregate::AggregatorConfig {
        self.config
            .get("aggregation")
            .and_then(|a| {
                serde_json::from_value::<crate::aggregate::AggregatorConfig>(a.clone()).ok()
            })
            .filter(|c| c.validate().is_ok())
            .unwrap_or_default()
    }
}

/// `utterance` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UtteranceRecord {
    /// Utterance id (from the segmenter, increasing).
    pub id: u64,
    /// Start, session seconds.
    pub start_s: f64,
    /// End, session seconds.
    pub end_s: f64,
    /// Label set (order of `probs` and `logits`).
    pub labels: Vec<String>,
    /// Probability per label, sums to 1.
    pub probs: Vec<f32>,
    /// Raw label logits; non-finite values round-trip through `null`.
    #[serde(with = "finite_or_null", default)]
    pub logits: Vec<f32>,
    /// Scoring method.
    pub method: String,
    /// Model id.
    pub model: String,
    /// End of utterance → result, milliseconds.
    pub latency_ms: f64,
    /// End of the last voiced frame → result, milliseconds (older logs lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_latency_ms: Option<f64>,
    /// Prosody descriptors, when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prosody: Option<ProsodyRecord>,
    /// Mean input level over the utterance, dBFS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_db: Option<f32>,
    /// Who spoke it (schema 2), when speakers are tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

impl UtteranceRecord {
    fn validate(&self) -> Result<(), String> {
        if self.probs.len() != self.labels.len() {
            return Err(format!(
                "utterance {}: {} probs for {} labels",
                self.id,
                self.probs.len(),
                self.labels.len()
            ));
        }
        if !self.logits.is_empty() && self.logits.len() != self.labels.len() {
            return Err(format!(
                "utterance {}: {} logits for {} labels",
                self.id,
                self.logits.len(),
                self.labels.len()
            ));
        }
        if self.probs.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(format!(
                "utterance {}: probabilities must be finite and ≥ 0",
                self.id
            ));
        }
        if self.end_s < self.start_s {
            return Err(format!("utterance {}: end_s before start_s", self.id));
        }
        Ok(())
    }
}

/// Prosody of one utterance, as logged: the analyser's own type, so the log
/// cannot drift from what is computed.
pub type ProsodyRecord = crate::prosody::Prosody;

/// `marker` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkerRecord {
    /// Optional note.
    #[serde(default)]
    pub note: Option<String>,
}

/// `dropped` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedRecord {
    /// Samples lost in this event.
    pub samples: u64,
    /// Samples lost since session start.
    pub total_samples: u64,
    /// Why (e.g. `ring buffer overrun`).
    pub reason: String,
}

/// `skipped` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedRecord {
    /// The utterance not scored.
    pub utterance_id: u64,
    /// Its start, session seconds.
    pub start_s: f64,
    /// Its end, session seconds.
    pub end_s: f64,
    /// Why (e.g. `scorer behind: newest scored first`).
    pub reason: String,
    /// Utterances skipped since session start.
    pub total: u64,
}

/// `session_end` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEnd {
    /// Utterances scored.
    pub utterances: u64,
    /// Samples lost in total.
    pub dropped_samples: u64,
    /// Utterances skipped in total.
    pub skipped_utterances: u64,
    /// Why the session ended.
    pub reason: String,
}

/// Serialises `Vec<f32>` with non-finite values as `null` (JSON has no NaN/∞).
mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.is_finite().then_some(*x)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let v: Vec<Option<f32>> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|x| x.unwrap_or(f32::NAN)).collect())
    }
}

/// Appends records to a log, one flushed line each.
///
/// Each record is serialised into one buffer and written with a single `write_all`
/// followed by `flush`, with no user-space buffering in between, so after `write`
/// returns the record is in the OS and survives the process being killed.
#[derive(Debug)]
pub struct SessionLogWriter<W: Write> {
    out: W,
    path: PathBuf,
}

impl SessionLogWriter<File> {
    /// Opens `path` for appending (creating it and missing parent directories).
    pub fn create(path: &Path) -> Result<Self, SessionLogError> {
        let io_err = |error| SessionLogError::Io {
            path: path.to_path_buf(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(io_err)?;
        // A session interrupted mid-write (crash, full disk, file-size limit) leaves
        // a partial last line; the next session must not be glued onto it.
        if ends_mid_line(&mut file).map_err(io_err)? {
            file.write_all(b"\n").map_err(io_err)?;
        }
        Ok(Self {
            out: file,
            path: path.to_path_buf(),
        })
    }
}

/// Whether a non-empty file's last byte is not a newline.
fn ends_mid_line(file: &mut File) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

impl<W: Write> SessionLogWriter<W> {
    /// Writes to any sink (tests, stdout for `--headless`); `name` appears in errors.
    pub fn new(out: W, name: impl Into<PathBuf>) -> Self {
        Self {
            out,
            path: name.into(),
        }
    }

    /// Appends one record at session time `t_s`, validated, and flushes it.
    pub fn write(&mut self, t_s: f64, record: Record) -> Result<(), SessionLogError> {
        record.validate().map_err(SessionLogError::Invalid)?;
        let entry = Entry {
            schema: SCHEMA_VERSION,
            t_s,
            record,
        };
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        let io_err = |error| SessionLogError::Io {
            path: self.path.clone(),
            error,
        };
        self.out.write_all(&line).map_err(io_err)?;
        self.out.flush().map_err(io_err)
    }

    /// The underlying sink.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A record read back, with its 1-based line number.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEntry {
    /// 1-based line number in the file.
    pub line: usize,
    /// The entry.
    pub entry: Entry,
}

/// Something wrong with one line; the reader reports it and goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct LineIssue {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: IssueKind,
}

/// Kinds of [`LineIssue`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IssueKind {
    /// The last line has no newline and does not parse: the writer was interrupted.
    /// Expected after a crash; the rest of the log is fine.
    #[error("truncated last line (the session was probably interrupted); ignored")]
    TruncatedLastLine,
    /// A record cut short by an interrupted write (crash, full disk, file-size
    /// limit) that is not the last line: the next session was appended after it
    /// (on a fresh line, or, by older emomon builds, onto the same line, whose
    /// record is then kept). Expected after a crash; the cut record is lost.
    #[error(
        "record cut short by an interrupted write (the session was probably interrupted); ignored"
    )]
    InterruptedRecord,
    /// The line is not a valid record.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// A record type this build does not know (from a newer emomon); skipped.
    #[error("unknown record type {0:?}; skipped")]
    UnknownType(String),
    /// A schema version newer than this build reads.
    #[error("schema {0} is newer than this emomon reads (schema {SCHEMA_VERSION}); upgrade emomon")]
    UnsupportedSchema(u64),
}

impl IssueKind {
    /// Whether the log cannot be trusted as a whole (as opposed to an expected
    /// truncation or a skippable unknown record).
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Malformed(_) | Self::UnsupportedSchema(_))
    }
}

/// A log read back: the records that parsed and the issues found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionLog {
    /// Records in file order.
    pub entries: Vec<LoggedEntry>,
    /// Problems, in line order.
    pub issues: Vec<LineIssue>,
}

/// One session of a log file: the records from one `session_start` up to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPart {
    /// 1-based number of the session in the file.
    pub number: usize,
    /// Line of its `session_start`.
    pub first_line: usize,
    /// Last line that belongs to it (before the next `session_start`).
    pub last_line: usize,
    /// Its records and the issues on its lines.
    pub log: SessionLog,
}

/// A log file split into its sessions (`emomon run -o FILE` appends each new
/// session to the same file).
#[derive(Debug, Clone, PartialEq)]
pub struct Sessions {
    /// In file order.
    pub sessions: Vec<SessionPart>,
    /// Records before the first `session_start` (they belong to no session).
    pub orphans: usize,
    /// Issues in a file without any `session_start`.
    pub orphan_issues: Vec<LineIssue>,
}

impl SessionLog {
    /// Splits the file into sessions: each begins at a `session_start`; an issue
    /// belongs to the session whose lines it is on (an interrupted last record
    /// belongs to the session that was writing it).
    pub fn split_sessions(self) -> Sessions {
        let mut sessions: Vec<SessionPart> = Vec::new();
        let mut orphans = 0;
        let mut orphan_issues = Vec::new();
        for entry in self.entries {
            if matches!(entry.entry.record, Record::SessionStart(_)) {
                if let Some(prev) = sessions.last_mut() {
                    prev.last_line = entry.line - 1;
                }
                sessions.push(SessionPart {
                    number: sessions.len() + 1,
                    first_line: entry.line,
                    last_line: usize::MAX,
                    log: SessionLog::default(),
                });
            }
            match sessions.last_mut() {
                Some(part) => part.log.entries.push(entry),
                None => orphans += 1,
            }
        }
        for issue in self.issues {
            // The session whose range holds the line; a line before every session
            // (or a joined line, which starts the next session) goes to the one
            // before it when there is one.
            let idx = sessions
                .iter()
                .rposition(|p| {
                    p.first_line < issue.line
                        || (p.first_line == issue.line
                            && issue.kind != IssueKind::InterruptedRecord)
                })
                .or_else(|| (!sessions.is_empty()).then_some(0));
            match idx {
                Some(i) => sessions[i].log.issues.push(issue),
                None => orphan_issues.push(issue),
            }
        }
        if let Some(last) = sessions.last_mut() {
            last.last_line = last
                .log
                .entries
                .last()
                .map_or(last.first_line, |e| e.line)
                .max(last.log.issues.last().map_or(0, |i| i.line));
        }
        Sessions {
            sessions,
            orphans,
            orphan_issues,
        }
    }

    /// The first `session_start` record, if any.
    pub fn session_start(&self) -> Option<&SessionStart> {
        self.entries.iter().find_map(|e| match &e.entry.record {
            Record::SessionStart(s) => Some(s),
            _ => None,
        })
    }

    /// The first issue that makes the log untrustworthy (see [`IssueKind::is_error`]).
    pub fn first_error(&self) -> Option<&LineIssue> {
        self.issues.iter().find(|i| i.kind.is_error())
    }
}

/// Reads a log file. Only failing to open or read the file is an error; problems
/// with individual lines are returned in [`SessionLog::issues`].
pub fn read(path: &Path) -> Result<SessionLog, SessionLogError> {
    let io_err = |error| SessionLogError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(io_err)?;
    read_from(BufReader::new(file)).map_err(io_err)
}

/// Reads a log from any buffered reader (see [`read`]).
pub fn read_from<R: BufRead>(mut input: R) -> io::Result<SessionLog> {
    let mut log = SessionLog::default();
    let mut raw = Vec::new();
    let mut line_no = 0;
    loop {
        raw.clear();
        if input.read_until(b'\n', &mut raw)? == 0 {
            break;
        }
        line_no += 1;
        let complete = raw.last() == Some(&b'\n');
        match parse_line(&raw) {
            Ok(None) => {}
            Ok(Some(entry)) => log.entries.push(LoggedEntry {
                line: line_no,
                entry,
            }),
            // A partial line at the very end is what an interrupted writer leaves.
            Err(IssueKind::Malformed(_)) if !complete => log.issues.push(LineIssue {
                line: line_no,
                kind: IssueKind::TruncatedLastLine,
            }),
            Err(IssueKind::Malformed(_)) if cut_short(&raw) => log.issues.push(LineIssue {
                line: line_no,
                kind: IssueKind::InterruptedRecord,
            }),
            Err(kind) => {
                // An older emomon appended the next session straight onto a
                // partial line: keep the record that starts inside the line.
                match joined_record(&raw) {
                    Some(entry) => {
                        log.issues.push(LineIssue {
                            line: line_no,
                            kind: IssueKind::InterruptedRecord,
                        });
                        log.entries.push(LoggedEntry {
                            line: line_no,
                            entry,
                        });
                    }
                    None => log.issues.push(LineIssue {
                        line: line_no,
                        kind,
                    }),
                }
            }
        }
    }
    Ok(log)
}

/// Every record this build writes begins with this (serde keeps field order).
const RECORD_START: &[u8] = b"{\"schema\":";

/// Whether a line is the start of a record whose write was interrupted: it
/// begins like one and the JSON ends early.
fn cut_short(raw: &[u8]) -> bool {
    let trimmed = raw.trim_ascii();
    trimmed.starts_with(RECORD_START)
        && serde_json::from_slice::<serde_json::Value>(trimmed).is_err_and(|e| e.is_eof())
}

/// The last complete record starting after the beginning of a bad line, if any.
fn joined_record(raw: &[u8]) -> Option<Entry> {
    (1..raw.len())
        .rev()
        .filter(|&i| raw[i..].starts_with(RECORD_START))
        .find_map(|i| parse_line(&raw[i..]).ok().flatten())
}

/// Parses one line; `Ok(None)` for a blank line.
fn parse_line(raw: &[u8]) -> Result<Option<Entry>, IssueKind> {
    let text =
        std::str::from_utf8(raw).map_err(|e| IssueKind::Malformed(format!("not UTF-8: {e}")))?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| IssueKind::Malformed(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| IssueKind::Malformed("not a JSON object".into()))?;
    let schema = obj
        .get("schema")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| IssueKind::Malformed("missing or invalid \"schema\" field".into()))?;
    if schema > u64::from(SCHEMA_VERSION) {
        return Err(IssueKind::UnsupportedSchema(schema));
    }
    let kind = obj
        .get("type")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| IssueKind::Malformed("missing or invalid \"type\" field".into()))?;
    if !Record::TYPES.contains(&kind) {
        return Err(IssueKind::UnknownType(kind.to_string()));
    }
    let kind = kind.to_string();
    let entry: Entry =
        serde_json::from_value(value).map_err(|e| IssueKind::Malformed(format!("{kind}: {e}")))?;
    entry.record.validate().map_err(IssueKind::Malformed)?;
    Ok(Some(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["neutral".into(), "happy".into(), "sad".into()]
    }

    fn utterance(id: u64) -> Record {
        Record::Utterance(UtteranceRecord {
            id,
            start_s: 1.0,
            end_s: 2.5,
            labels: labels(),
            probs: vec![0.6, 0.1, 0.3],
            logits: vec![2.0, f32::NEG_INFINITY, 1.3],
            method: "first-token".into(),
            model: "tiny".into(),
            latency_ms: 120.0,
            speech_latency_ms: Some(520.0),
            prosody: Some(ProsodyRecord {
                f0_median_hz: Some(180.0),
                f0_range_hz: None,
                voiced_fraction: 0.7,
                energy_db_mean: Some(-23.0),
                energy_db_var: Some(12.0),
                speaking_rate_syll_s: Some(4.1),
                pause_ratio: Some(0.1),
            }),
            level_db: None,
            speaker: Some("S2".into()),
        })
    }

    fn start() -> Record {
        Record::SessionStart(SessionStart {
            started_unix_s: Some(1.0e9),
            emomon_version: "0.1.0".into(),
            source: "microphone".into(),
            model: "tiny".into(),
            device: "cpu".into(),
            method: "first-token".into(),
            labels: labels(),
            config: serde_json::json!({"vad": {"aggressiveness": 2}}),
        })
    }

    fn written(records: Vec<(f64, Record)>) -> Vec<u8> {
        let mut w = SessionLogWriter::new(Vec::new(), "<test>");
        for (t, r) in records {
            w.write(t, r).unwrap();
        }
        w.into_inner()
    }

    #[test]
    fn round_trip_all_record_types() {
        let records = vec![
            (0.0, start()),
            (3.0, utterance(1)),
            (
                4.0,
                Record::Marker(MarkerRecord {
                    note: Some("door".into()),
                }),
            ),
            (
                5.0,
                Record::Dropped(DroppedRecord {
                    samples: 160,
                    total_samples: 160,
                    reason: "ring buffer overrun".into(),
                }),
            ),
            (
                6.0,
                Record::Skipped(SkippedRecord {
                    utterance_id: 2,
                    start_s: 4.0,
                    end_s: 5.0,
                    reason: "scorer behind".into(),
                    total: 1,
                }),
            ),
            (
                7.0,
                Record::SessionEnd(SessionEnd {
                    utterances: 1,
                    dropped_samples: 160,
                    skipped_utterances: 1,
                    reason: "user quit".into(),
                }),
            ),
        ];
        let bytes = written(records.clone());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.lines().count(), 6);
        assert!(
            text.lines().all(|l| l.starts_with("{\"schema\":2,")),
            "{text}"
        );
        assert!(text.contains("\"type\":\"utterance\""));
        assert!(text.contains("\"logits\":[2.0,null,1.3"), "{text}");
        let log = read_from(&bytes[..]).unwrap();
        assert!(log.issues.is_empty(), "{:?}", log.issues);
        assert_eq!(log.entries.len(), 6);
        assert_eq!(log.entries[1].line, 2);
        let Record::Utterance(u) = &log.entries[1].entry.record else {
            panic!("not an utterance")
        };
        assert!(u.logits[1].is_nan());
        assert_eq!(u.probs, vec![0.6, 0.1, 0.3]);
        for (i, (t, r)) in records.iter().enumerate().filter(|(i, _)| *i != 1) {
            assert_eq!(&log.entries[i].entry.record, r);
            assert_eq!(log.entries[i].entry.t_s, *t);
        }
        assert_eq!(log.session_start().map(|s| s.labels.len()), Some(3));
    }

    #[test]
    fn truncated_last_line_is_reported_and_rest_kept() {
        let mut bytes = written(vec![
            (0.0, start()),
            (3.0, utterance(1)),
            (4.0, utterance(2)),
        ]);
        bytes.truncate(bytes.len() - 20);
        let log = read_from(&bytes[..]).unwrap();
        assert_eq!(log.entries.len(), 2);
        assert_eq!(
            log.issues,
            vec![LineIssue {
                line: 3,
                kind: IssueKind::TruncatedLastLine
            }]
        );
        assert!(log.first_error().is_none());
    }

    #[test]
    fn complete_last_record_without_newline_is_kept() {
        let mut bytes = written(vec![(0.0, start())]);
        bytes.pop();
        let log = read_from(&bytes[..]).unwrap();
        assert_eq!(log.entries.len(), 1);
        assert!(log.issues.is_empty());
    }

    #[test]
    fn malformed_lines_are_reported_with_line_numbers() {
        let mut bytes = written(vec![(0.0, start())]);
        bytes.extend_from_slice(b"this is not json\n\n");
        bytes.extend_from_slice(b"{\"schema\":1,\"t_s\":1.0,\"type\":\"utterance\",\"id\":1}\n");
        bytes.extend_from_slice(b"{\"t_s\":1.0,\"type\":\"marker\"}\n");
        bytes.extend(written(vec![(2.0, utterance(2))]));
        let log = read_from(&bytes[..]).unwrap();
        assert_eq!(log.entries.len(), 2);
        let lines: Vec<usize> = log.issues.iter().map(|i| i.line).collect();
        assert_eq!(lines, vec![2, 4, 5]);
        assert!(log.issues.iter().all(|i| i.kind.is_error()));
        assert_eq!(log.first_error().map(|i| i.line), Some(2));
        assert!(
            log.issues[1]
                .to_string()
                .starts_with("line 4: malformed record: utterance:")
        );
    }

    #[test]
    fn inconsistent_utterance_is_malformed() {
        let line = br#"{"schema":1,"t_s":1.0,"type":"utterance","id":1,"start_s":0.0,"end_s":1.0,"labels":["a","b"],"probs":[1.0],"logits":[],"method":"m","model":"x","latency_ms":1.0}"#;
        let log = read_from(&[&line[..], b"\n"].concat()[..]).unwrap();
        assert!(
            matches!(&log.issues[0].kind, IssueKind::Malformed(m) if m.contains("1 probs for 2 labels"))
        );
    }

    #[test]
    fn writer_rejects_inconsistent_records() {
        let mut w = SessionLogWriter::new(Vec::new(), "<test>");
        let Record::Utterance(mut u) = utterance(1) else {
            unreachable!()
        };
        u.probs.pop();
        assert!(matches!(
            w.write(0.0, Record::Utterance(u)),
            Err(SessionLogError::Invalid(_))
        ));
        assert!(w.into_inner().is_empty());
    }

    /// Schema 2 added the utterance's speaker: a schema 1 log (written before) still
    /// reads, as utterances without a speaker; a schema 2 line keeps it.
    #[test]
    fn schema_1_logs_read_as_utterances_without_speakers() {
        let v1 = br#"{"schema":1,"t_s":1.0,"type":"utterance","id":1,"start_s":0.0,"end_s":1.0,"labels":["a","b"],"probs":[0.5,0.5],"logits":[],"method":"m","model":"x","latency_ms":1.0}"#;
        let v2 = br#"{"schema":2,"t_s":2.0,"type":"utterance","id":2,"start_s":1.0,"end_s":2.0,"labels":["a","b"],"probs":[0.5,0.5],"logits":[],"method":"m","model":"x","latency_ms":1.0,"speaker":"S2"}"#;
        let text = [&v1[..], b"\n", &v2[..], b"\n"].concat();
        let log = read_from(&text[..]).unwrap();
        assert!(log.issues.is_empty(), "{:?}", log.issues);
        let speakers: Vec<Option<String>> = log
            .entries
            .iter()
            .map(|e| match &e.entry.record {
                Record::Utterance(u) => u.speaker.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(speakers, [None, Some("S2".to_string())]);
        assert_eq!(
            log.entries
                .iter()
                .map(|e| e.entry.schema)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        // Written back, the speaker survives and the line says schema 2.
        let Record::Utterance(u) = &log.entries[1].entry.record else {
            unreachable!()
        };
        let bytes = written(vec![(2.0, Record::Utterance(u.clone()))]);
        let line = String::from_utf8(bytes).unwrap();
        assert!(
            line.starts_with("{\"schema\":2,") && line.contains("\"speaker\":\"S2\""),
            "{line}"
        );
    }

    #[test]
    fn unknown_types_and_newer_schemas_are_reported() {
        let text = b"{\"schema\":1,\"t_s\":1.0,\"type\":\"gaze\",\"x\":1}\n{\"schema\":3,\"t_s\":1.0,\"type\":\"marker\"}\n";
        let log = read_from(&text[..]).unwrap();
        assert_eq!(log.issues[0].kind, IssueKind::UnknownType("gaze".into()));
        assert!(!log.issues[0].kind.is_error());
        assert_eq!(log.issues[1].kind, IssueKind::UnsupportedSchema(3));
    }

    /// Issue 18 item 3: a session appended after an interrupted write starts on a
    /// fresh line, so both sessions read back whole.
    #[test]
    fn appending_after_a_partial_line_starts_a_fresh_line() {
        let dir = std::env::temp_dir().join(format!("emomon-log-partial-{}", std::process::id()));
        let path = dir.join("s.jsonl");
        let _ = std::fs::remove_dir_all(&dir);
        let mut w = SessionLogWriter::create(&path).unwrap();
        w.write(0.0, start()).unwrap();
        w.write(1.0, utterance(1)).unwrap();
        drop(w);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 25]).unwrap();
        let mut w = SessionLogWriter::create(&path).unwrap();
        w.write(0.0, start()).unwrap();
        w.write(1.0, utterance(1)).unwrap();
        drop(w);
        let log = read(&path).unwrap();
        assert_eq!(log.entries.len(), 3);
        assert_eq!(log.issues.len(), 1);
        assert!(!log.issues[0].kind.is_error(), "{:?}", log.issues);
        let split = log.split_sessions();
        let sizes: Vec<(usize, usize, usize)> = split
            .sessions
            .iter()
            .map(|p| (p.first_line, p.last_line, p.log.entries.len()))
            .collect();
        assert_eq!(sizes, vec![(1, 2, 1), (3, 4, 2)]);
        assert_eq!(
            split.sessions[0].log.issues.len(),
            1,
            "the cut record is session 1's"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_writer_appends_and_reader_names_missing_file() {
        let dir = std::env::temp_dir().join(format!("emomon-log-test-{}", std::process::id()));
        let path = dir.join("nested").join("s.jsonl");
        let _ = std::fs::remove_file(&path);
        SessionLogWriter::create(&path)
            .unwrap()
            .write(0.0, start())
            .unwrap();
        SessionLogWriter::create(&path)
            .unwrap()
            .write(1.0, utterance(1))
            .unwrap();
        assert_eq!(read(&path).unwrap().entries.len(), 2);
        let missing = dir.join("missing.jsonl");
        let err = read(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.jsonl"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
