//! `emomon run`: listen (microphone or file), score every utterance, show the
//! dashboard or print JSON lines, and keep a session log.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use emomon::aggregate::AggregatorConfig;
use emomon::audio::AudioSource;
use emomon::audio::file::FileSource;
use emomon::audio::mic::{MicSource, input_format};
use emomon::audio::pace::Paced;
use emomon::model_scorer::open_scorer;
use emomon::pipeline::{Backpressure, PipelineConfig, SourceFactory};
use emomon::run::{ClockKind, RunOptions, RunSummary, default_log_path, run_session};
use emomon::speaker::channels::require_stereo;
use emomon::workers::WorkerPlan;

use super::frontend_args::FrontEndArgs;
use super::model_args::ModelArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Read this audio file instead of the microphone (WAV, FLAC, MP3, Ogg Vorbis).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Deliver --input at real-time pace, like a microphone (for demos).
    #[arg(long, requires = "input")]
    pub realtime: bool,
    /// Microphone to use (name or part of it; see `emomon devices`). Default: the
    /// system's default input.
    #[arg(long, value_name = "NAME", conflicts_with = "input")]
    pub mic: Option<String>,
    /// No dashboard: print one JSON line per utterance (the session log's own
    /// records) and a summary line to stdout.
    #[arg(long)]
    pub headless: bool,
    /// Session log file (JSONL, appended). Default: a timestamped file in
    /// ~/.local/share/emomon/sessions/ (the path is printed at start). Not `--log`,
    /// which sets diagnostic verbosity.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub session_log: Option<PathBuf>,
    /// Also save each utterance's audio as WAV in this directory. Without it no
    /// audio is written anywhere.
    #[arg(long, value_name = "DIR")]
    pub save_audio: Option<PathBuf>,
    /// Directory for the timestamped session logs when --session-log is not given.
    #[arg(
        long,
        value_name = "DIR",
        env = "EMOMON_SESSION_DIR",
        conflicts_with = "session_log"
    )]
    pub session_dir: Option<PathBuf>,
    /// Half-life of the rolling (time-decayed) distribution, seconds.
    #[arg(long, default_value_t = AggregatorConfig::default().half_life_s)]
    pub half_life: f64,
    /// Fixed trailing windows of the summary's rolling distributions, seconds,
    /// comma-separated.
    #[arg(long, value_name = "SECONDS", value_delimiter = ',',
          default_values_t = AggregatorConfig::default().windows_s)]
    pub windows: Vec<f64>,
    /// Lead (probability) a new top label needs over the dominant one before the
    /// dominant emotion changes, in [0, 1).
    #[arg(long, default_value_t = AggregatorConfig::default().switch_margin)]
    pub switch_margin: f64,
    /// Utterances that may wait for the model. Live (microphone, --realtime): when
    /// more arrive the oldest waiting one is skipped (and logged) so results stay
    /// close to live. A file read at full speed instead waits for the model.
    #[arg(long, default_value_t = PipelineConfig::default().score_queue)]
    pub score_queue: usize,
    /// Scoring workers sharing one copy of the model, each with its share of the CPU
    /// threads. The default is one worker per two CPU threads (on a 2-core laptop one
    /// worker already uses both cores for each utterance); more help when utterances
    /// queue up on a machine with cores to spare.
    #[arg(long, default_value_t = WorkerPlan::for_machine().workers)]
    pub workers: usize,
    /// Do not compute prosody descriptors (F0, energy, rate, pauses).
    #[arg(long)]
    pub no_prosody: bool,
    /// Do not score an utterance during its hangover (live input scores it as soon
    /// as speech stops and keeps the result if speech does not resume; results and
    /// skips are the same either way, only later without it).
    #[arg(long)]
    pub no_speculative: bool,
    #[command(flatten)]
    pub frontend: FrontEndArgs,
    #[command(flatten)]
    pub speakers: super::speaker_args::SpeakerArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The effective settings and their origins, recorded in the session log (filled
    /// in by `main` after parsing).
    #[arg(skip)]
    pub settings: serde_json::Value,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let frontend = args.frontend.config()?;
    if !(args.half_life.is_finite() && args.half_life > 0.0) {
        bail!(
            "--half-life must be a positive number of seconds, got {}",
            args.half_life
        );
    }
    if args.score_queue == 0 {
        bail!("--score-queue must be at least 1");
    }
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if !args.headless && !std::io::stdout().is_terminal() {
        bail!("emomon run draws a terminal dashboard but stdout is not a terminal; use --headless");
    }
    // Open the input and the model before creating a log, so a typo leaves no
    // empty session behind.
    // `--speakers channels` needs two channels: refused here, before a log is created.
    let channels = args.speakers.channels();
    let (source, source_name, clock): (SourceFactory, String, ClockKind) = match &args.input {
        Some(path) => {
            let file = FileSource::open(path)?;
            if channels {
                require_stereo(file.info())?;
            }
            let realtime = args.realtime;
            (
                Box::new(move || {
                    Ok(if realtime {
                        Box::new(Paced::new(file)) as Box<dyn AudioSource>
                    } else {
                        Box::new(file)
                    })
                }),
                format!("file:{}", path.display()),
                if realtime {
                    ClockKind::Wall
                } else {
                    ClockKind::Audio
                },
            )
        }
        None => {
            let device = args.mic.clone();
            if channels {
                require_stereo(&input_format(device.as_deref(), Some(2))?)?;
            }
            let name = match &device {
                Some(d) => format!("microphone:{d}"),
                None => "microphone".into(),
            };
            // A device whose default is mono opens in its 2-channel configuration.
            let wanted = channels.then_some(2);
            (
                // The stream must be opened on the capture thread that reads it.
                Box::new(move || {
                    MicSource::open_with_channels(device.as_deref(), wanted)
                        .map(|m| Box::new(m) as Box<dyn AudioSource>)
                }),
                name,
                ClockKind::Wall,
            )
        }
    };
    let scorer = open_scorer(&args.model.options())?;
    let (speaker_encoder, speakers) = match args.speakers.stage()? {
        Some(stage) => {
            let (encoder, tracker) = stage.into_parts();
            (Some(encoder), Some(tracker))
        }
        None => (None, None),
    };
    let log_path = match &args.session_log {
        Some(p) => p.clone(),
        None => default_log_path(args.session_dir.as_deref())?,
    };
    eprintln!("emomon: session log {}", log_path.display());
    eprintln!(
        "emomon: scoring with {}",
        WorkerPlan::new(args.workers).describe()
    );
    let options = RunOptions {
        pipeline: PipelineConfig {
            frontend,
            score_queue: args.score_queue,
            workers: args.workers,
            // A file read at full speed is not live: wait for the model, skip nothing.
            backpressure: if clock == ClockKind::Audio {
                Backpressure::Wait
            } else {
                Backpressure::SkipOldest
            },
            prosody: !args.no_prosody,
            speaker_encoder,
            speaker_channels: channels,
            // Nothing to hide when the file is read at full speed: the hangover
            // passes in microseconds there, and a stale speculation costs a score.
            speculative: !args.no_speculative && clock == ClockKind::Wall,
            ..PipelineConfig::default()
        },
        aggregation: AggregatorConfig {
            half_life_s: args.half_life,
            windows_s: args.windows.clone(),
            switch_margin: args.switch_margin,
        },
        settings: args.settings.clone(),
        log_path,
        source_name,
        clock,
        save_audio: args.save_audio.clone(),
        dashboard: !args.headless,
        echo: args
            .headless
            .then(|| Box::new(std::io::stdout()) as Box<dyn std::io::Write + Send>),
        fps: 15,
        speakers,
    };
    let summary = run_session(options, source, scorer)?;
    if args.headless {
        println!(
            "{}",
            serde_json::to_string(&summary).context("cannot serialise the summary")?
        );
    }
    eprint!("{}", human_summary(&summary));
    // Exit non-zero whenever the input could not be read to its end (truncated or
    // corrupt file, lost microphone), as `segment` and `score` do; what was heard
    // before the failure is scored and logged all the same.
    match &summary.capture_error {
        Some(e) => bail!(
            "input failed: {e}; the {} utterance(s) scored before it are in {}",
            summary.utterances,
            summary.session_log.display()
        ),
        None => Ok(()),
    }
}

/// `happy 60%, neutral 30%, … (entropy 0.71)`: labels by falling probability.
fn distribution(labels: &[String], summary: &emomon::aggregate::Summary) -> String {
    let mut order: Vec<usize> = (0..summary.probs.len()).collect();
    order.sort_by(|&a, &b| summary.probs[b].total_cmp(&summary.probs[a]));
    let dist: Vec<String> = order
        .iter()
        .map(|&i| format!("{} {:.0}%", labels[i], summary.probs[i] * 100.0))
        .collect();
    format!("{} (entropy {:.2})", dist.join(", "), summary.entropy_norm)
}

/// A few lines for the person at the terminal.
fn human_summary(s: &RunSummary) -> String {
    let mut out = format!(
        "emomon: {} — {} utterance(s) scored, {} skipped, {} samples lost, {:.1} s of audio in {:.1} s\n",
        s.reason, s.utterances, s.skipped_utterances, s.dropped_samples, s.audio_s, s.wall_s
    );
    if let (Some(p50), Some(p95)) = (s.latency_p50_ms, s.latency_p95_ms) {
        out += &format!(
            "emomon: latency end of utterance → result p50 {p50:.0} ms, p95 {p95:.0} ms\n"
        );
    }
    if let (Some(p50), Some(p95)) = (s.speech_latency_p50_ms, s.speech_latency_p95_ms) {
        out +=
            &format!("emomon: latency end of speech → result p50 {p50:.0} ms, p95 {p95:.0} ms\n");
    }
    if let Some(session) = s.aggregate.as_ref().and_then(|a| a.session.as_ref()) {
        out += &format!(
            "emomon: whole session: {}\n",
            distribution(&s.labels, session)
        );
    }
    for track in &s.speakers {
        if let Some(session) = &track.aggregate.session {
            out += &format!(
                "emomon: speaker {}: {} utterance(s), {}\n",
                track.speaker,
                session.n_utterances,
                distribution(&s.labels, session)
            );
        }
    }
    for e in &s.worker_errors {
        out += &format!("emomon: worker error: {e}\n");
    }
    out += &format!("emomon: session log {}\n", s.session_log.display());
    out
}
