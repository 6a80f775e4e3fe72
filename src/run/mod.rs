//! `emomon run`: the live session.
//!
//! ```text
//!  pipeline threads (capture, scorer + prosody; see crate::pipeline)
//!        │ crossbeam, bounded
//!        ▼
//!  bridge thread ──tokio mpsc, bounded──▶ session loop (tokio, one thread)
//!                                         ├─ results → Recorder → log, view, aggregate
//!                                         ├─ redraw ticks (15 fps) → dashboard
//!                                         ├─ keys (crossterm EventStream): q, m, space…
//!                                         └─ signals: SIGINT/SIGTERM/SIGHUP
//! ```
//!
//! Compute never runs on the executor: the loop only moves records to the log
//! and the screen. A current-thread runtime is enough for that and leaves both
//! cores to capture and the model.
//!
//! Shutdown is orderly in every case:
//!
//! * end of input (a file): every queued utterance is scored, then `session_end`;
//! * `q`, Ctrl-C, SIGTERM: capture stops, the batch being scored finishes and is
//!   logged, utterances still waiting are logged as skipped (reason
//!   [`crate::pipeline::CANCELLED`]), then `session_end`. A second Ctrl-C exits
//!   at once; the log then simply has no `session_end` (every record before is
//!   already flushed);
//! * the log cannot be written (disk full, file removed…): the session stops and
//!   the error names the file; what was written stays readable.

pub mod audio_out;
pub mod recorder;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use emomon_tui::crossterm::event::{Event, EventStream};
use emomon_tui::{App, Command, DashboardTerminal, ViewState};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::aggregate::AggregatorConfig;
use crate::pipeline::{EVENT_QUEUE, Pipeline, PipelineConfig, PipelineEvent, SourceFactory};
use crate::scoring::Scorer;
use crate::workers::WorkerPlan;
use audio_out::AudioSaver;
pub use recorder::{ClockKind, Recorder, RunSummary, SessionInfo, SpeakerSummary};

/// Everything a session needs besides its audio source and scorer.
pub struct RunOptions {
    pub pipeline: PipelineConfig,
    pub aggregation: AggregatorConfig,
    /// Session log file (appended to, created with its directory).
    pub log_path: PathBuf,
    /// Source as logged and shown (`microphone`, `file:PATH`).
    pub source_name: String,
    pub clock: ClockKind,
    /// Save each utterance's audio here (`--save-audio`); `None` keeps no audio.
    pub save_audio: Option<PathBuf>,
    /// Draw the dashboard (needs a terminal); otherwise run headless.
    pub dashboard: bool,
    /// Echo utterance and skipped records (the log's own lines) here, e.g. stdout.
    pub echo: Option<Box<dyn Write + Send>>,
    /// Redraw rate of the dashboard.
    pub fps: u32,
    /// Where the session's settings came from (flag, environment, config file), recorded
    /// in `session_start.config.settings`; `Null` when the caller has none.
    pub settings: serde_json::Value,
    /// Assigns each scored utterance's speaker from its embedding (needs
    /// `pipeline.speaker_encoder`); `None` keeps one track for everyone.
    pub speakers: Option<crate::speaker::SpeakerTracker>,
}

/// Runs a session to its end (see the module docs) and returns its summary.
pub fn run_session(
    options: RunOptions,
    source: SourceFactory,
    scorer: Box<dyn Scorer>,
) -> anyhow::Result<RunSummary> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the session loop")?;
    runtime.block_on(drive(options, source, scorer))
}

/// The `config` object of `session_start`: what shaped the session's numbers.
fn config_json(
    pipeline: &PipelineConfig,
    aggregation: &AggregatorConfig,
    settings: &serde_json::Value,
    speakers: Option<crate::speaker::SpeakerSetup>,
) -> serde_json::Value {
    let vad = &pipeline.frontend.vad;
    let seg = &pipeline.frontend.segmenter;
    serde_json::json!({
        "vad": {"aggressiveness": vad.aggressiveness, "frame_ms": vad.frame_ms},
        "segmenter": {
            "onset_ms": seg.onset_ms,
            "pre_roll_ms": seg.pre_roll_ms,
            "post_roll_ms": seg.post_roll_ms,
            "hangover_ms": seg.hangover_ms,
            "min_speech_ms": seg.min_speech_ms,
            "max_utterance_s": seg.max_utterance_s,
            "split_search_s": seg.split_search_s,
        },
        "pipeline": {
            "score_queue": pipeline.score_queue,
            "prosody": pipeline.prosody,
            "workers": pipeline.workers,
            "speculative": pipeline.speculative,
            "threads_per_worker": WorkerPlan::new(pipeline.workers).threads,
        },
        "aggregation": aggregation,
        "speakers": speakers,
        "settings": settings,
    })
}

/// Forwards pipeline events into the async loop. A plain thread, because the
/// crossbeam receive blocks; it ends when the pipeline's threads have all finished
/// (or the loop is gone).
fn bridge(
    events: crossbeam_channel::Receiver<PipelineEvent>,
) -> std::io::Result<mpsc::Receiver<PipelineEvent>> {
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    std::thread::Builder::new()
        .name("emomon-events".into())
        .spawn(move || {
            for event in events.iter() {
                if tx.blocking_send(event).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}

/// Termination signals as messages, so the loop can shut down in order instead
/// of dying with records in flight.
/// A file-size limit (`ulimit -f`) would kill the process with SIGXFSZ on the
/// write that crosses it, without a word and with the summary lost. Ignored, the
/// write fails with EFBIG instead and takes the same path as a full disk: the
/// session stops with an error naming the log, and what was recorded stays.
#[cfg(unix)]
fn ignore_file_size_limit() {
    // SAFETY: SIG_IGN installs no handler code; changing a signal's disposition
    // is async-signal-safe and affects nothing else in this process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn signals() -> std::io::Result<mpsc::Receiver<&'static str>> {
    let (tx, rx) = mpsc::channel(4);
    #[cfg(unix)]
    ignore_file_size_limit();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        for (kind, name) in [
            (SignalKind::interrupt(), "interrupted (SIGINT)"),
            (SignalKind::terminate(), "terminated (SIGTERM)"),
            (SignalKind::hangup(), "terminal closed (SIGHUP)"),
        ] {
            let mut stream = signal(kind)?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if tx.send(name).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send("interrupted (Ctrl-C)").await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

struct Dashboard {
    terminal: DashboardTerminal,
    app: App,
}

async fn drive(
    options: RunOptions,
    source: SourceFactory,
    scorer: Box<dyn Scorer>,
) -> anyhow::Result<RunSummary> {
    let info = SessionInfo {
        source: options.source_name.clone(),
        model: scorer.model().into(),
        method: scorer.method().into(),
        device: scorer.device().into(),
        labels: scorer.labels().to_vec(),
        config: config_json(
            &options.pipeline,
            &options.aggregation,
            &options.settings,
            if options.pipeline.speaker_channels {
                Some(crate::speaker::SpeakerSetup::Channels)
            } else {
                options.speakers.as_ref().map(|t| t.setup())
            },
        ),
    };
    let audio = options
        .save_audio
        .as_deref()
        .map(AudioSaver::new)
        .transpose()?;
    let mut view = ViewState {
        source: options.source_name.clone(),
        ..ViewState::default()
    };
    let mut recorder = Recorder::start(
        &options.log_path,
        info,
        options.aggregation.clone(),
        options.clock,
        audio,
        &mut view,
    )?;
    if let Some(out) = options.echo {
        recorder.echo_to(out);
    }
    if let Some(tracker) = options.speakers {
        recorder.track_speakers(tracker);
    }
    view.notice = Some(format!("session log: {}", options.log_path.display()));
    let mut signals = signals().context("cannot install signal handlers")?;
    let mut dashboard = if options.dashboard {
        Some(Dashboard {
            terminal: DashboardTerminal::init().context("cannot take over the terminal")?,
            app: App::new(std::mem::take(&mut view)),
        })
    } else {
        None
    };
    let mut keys = dashboard.as_ref().map(|_| EventStream::new());
    let requested_workers = options.pipeline.workers;
    let pipeline = Pipeline::start(options.pipeline, source, scorer)
        .context("cannot start the pipeline threads")?;
    tracing::info!(workers = pipeline.workers(), "scoring workers started");
    if pipeline.workers() < requested_workers {
        tracing::warn!(
            requested = requested_workers,
            running = pipeline.workers(),
            "this scorer cannot be shared between workers; scoring with one"
        );
    }
    let mut results = bridge(pipeline.events().clone()).context("cannot start a thread")?;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / options.fps.clamp(1, 60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    let mut stop_reason: Option<String> = None;
    let mut summary: Option<RunSummary> = None;
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            event = results.recv(), if summary.is_none() => match event {
                Some(event) => {
                    if let Err(e) = recorder.handle(event, view_of(&mut dashboard, &mut view)) {
                        break Err(e.into());
                    }
                }
                None => {
                    let reason = stop_reason.clone().unwrap_or_else(|| match recorder.capture_error() {
                        Some(e) => format!("input error: {e}"),
                        None => "end of input".into(),
                    });
                    match recorder.finish(&reason) {
                        Ok(s) => summary = Some(s),
                        Err(e) => break Err(e.into()),
                    }
                    recorder.tick(view_of(&mut dashboard, &mut view));
                    match &mut dashboard {
                        Some(d) if !d.app.should_quit => {
                            d.app.view.finished = true;
                            d.app.view.notice = Some(format!(
                                "{reason}; session saved to {} · q to quit",
                                options.log_path.display()
                            ));
                        }
                        _ => break Ok(()),
                    }
                }
            },
            _ = tick.tick(), if dashboard.is_some() => {
                if let Some(d) = &mut dashboard {
                    if summary.is_none() {
                        recorder.tick(&mut d.app.view);
                    }
                    if let Err(e) = d.terminal.draw(&d.app) {
                        pipeline.cancel();
                        break Err(anyhow::Error::new(e).context("cannot draw the dashboard"));
                    }
                }
            },
            Some(Ok(event)) = next_event(&mut keys) => {
                let Some(d) = &mut dashboard else { continue };
                if let Event::Key(key) = event {
                    d.app.handle_key(key);
                }
                for command in d.app.take_commands() {
                    match command {
                        Command::Quit => {
                            if summary.is_some() {
                                break;
                            }
                            stop_reason.get_or_insert_with(|| "user quit".into());
                            d.app.view.notice = Some("stopping: finishing the utterance being scored…".into());
                            pipeline.cancel();
                        }
                        Command::SetPaused(p) => pipeline.set_paused(p),
                        Command::Marker(m) => {
                            if summary.is_none() && let Err(e) = recorder.marker(m.note) {
                                pipeline.cancel();
                                stop_reason = Some(format!("{e}"));
                            }
                        }
                    }
                }
                if summary.is_some() && d.app.should_quit {
                    break Ok(());
                }
            },
            Some(name) = signals.recv() => {
                if stop_reason.is_some() || summary.is_some() {
                    // Second signal: leave now. Every record so far is flushed.
                    drop(dashboard);
                    eprintln!("emomon: {name} again; exiting without waiting (log: {})", options.log_path.display());
                    std::process::exit(130);
                }
                stop_reason = Some(name.into());
                if let Some(d) = &mut dashboard {
                    d.app.view.notice = Some(format!("{name}: stopping…"));
                }
                pipeline.cancel();
            },
        }
    };
    drop(dashboard);
    if outcome.is_err() {
        // Let the pipeline wind down; its threads wait for room in the queues.
        pipeline.cancel();
        while results.recv().await.is_some() {}
    }
    pipeline.join();
    let log = recorder.log_path().to_path_buf();
    outcome
        .and_then(|()| summary.context("the session ended before its summary was written"))
        .with_context(|| failed_note(&log, &recorder))
}

/// Context for a failed session: where the partial log is.
fn failed_note(log: &Path, recorder: &Recorder) -> String {
    format!(
        "session stopped; the {} utterances recorded so far are in {}",
        recorder.utterances(),
        log.display()
    )
}

/// The view being drawn: the dashboard's, or the headless one.
fn view_of<'a>(
    dashboard: &'a mut Option<Dashboard>,
    headless: &'a mut ViewState,
) -> &'a mut ViewState {
    match dashboard {
        Some(d) => &mut d.app.view,
        None => headless,
    }
}

async fn next_event(keys: &mut Option<EventStream>) -> Option<std::io::Result<Event>> {
    match keys {
        Some(k) => k.next().await,
        None => std::future::pending().await,
    }
}

/// Where a session log goes without `--session-log`: a timestamped file in `dir`
/// (`--session-dir`, the config file's `session.log_dir`), else in the user's data
/// directory (`$XDG_DATA_HOME/emomon/sessions/`, usually
/// `~/.local/share/emomon/sessions/session-20261123-164500Z.jsonl`).
pub fn default_log_path(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => dirs::data_dir()
            .context(
                "cannot find the user's data directory (is $HOME set?); pass --session-log PATH",
            )?
            .join("emomon")
            .join("sessions"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(dir.join(format!("session-{}.jsonl", crate::utc::file_stamp(now))))
}
