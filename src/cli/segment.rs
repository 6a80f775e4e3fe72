//! `emomon segment`: print the utterances found in a file or heard on a microphone.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Args, ValueEnum};
use emomon::audio::AudioSource;
use emomon::audio::file::FileSource;
use emomon::audio::mic::MicSource;
use emomon::audio::pace::Paced;
use emomon::capture::run_capture;
use emomon::segmenter::Discarded;
use emomon::utterance::Utterance;

use super::frontend_args::FrontEndArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for reading.
    Table,
    /// One JSON object per utterance (start_s, end_s, …) for scripts.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct SegmentArgs {
    /// Audio file (WAV, FLAC, MP3, Ogg Vorbis; any rate and channel count).
    #[arg(required_unless_present = "mic", conflicts_with = "mic")]
    pub file: Option<PathBuf>,
    /// Listen to a microphone instead of reading a file (Ctrl-C to stop).
    #[arg(long)]
    pub mic: bool,
    /// Input device name (or part of it) with --mic; see `emomon devices`.
    #[arg(long, requires = "mic")]
    pub device: Option<String>,
    /// Stop listening after this many seconds (with --mic).
    #[arg(long, requires = "mic")]
    pub seconds: Option<f64>,
    /// Deliver the file at real-time pace, like a microphone (for demos).
    #[arg(long)]
    pub realtime: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub frontend: FrontEndArgs,
}

pub fn run(args: &SegmentArgs) -> anyhow::Result<()> {
    let config = args.frontend.config()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut source: Box<dyn AudioSource> = match &args.file {
        Some(path) => {
            let file = FileSource::open(path)?;
            if args.realtime {
                Box::new(Paced::new(file))
            } else {
                Box::new(file)
            }
        }
        None => {
            let mic = MicSource::open(args.device.as_deref())?;
            eprintln!(
                "Listening on \"{}\" ({} Hz, {} ch). Ctrl-C to stop.",
                mic.info().name,
                mic.info().sample_rate,
                mic.info().channels
            );
            Box::new(mic)
        }
    };
    {
        let stop = Arc::clone(&stop);
        // A second Ctrl-C, or a failure to install the handler, falls back to the default.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::Relaxed) {
                std::process::exit(130);
            }
        });
    }
    if let Some(seconds) = args.seconds {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs_f64(seconds.max(0.0)));
            stop.store(true, Ordering::Relaxed);
        });
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.format == OutputFormat::Table {
        writeln!(
            out,
            "{:>4}  {:>9}  {:>9}  {:>7}  {:>7}  {:>7}",
            "id", "start_s", "end_s", "dur_s", "rms_dB", "peak_dB"
        )?;
    }
    let mut write_error = None;
    let mut print = |u: Utterance| {
        if write_error.is_some() {
            return;
        }
        if let Err(e) = print_utterance(&mut out, args.format, &u) {
            write_error = Some(e);
        }
    };
    let outcome = run_capture(source.as_mut(), &config, &stop, &mut print)?;
    if let Some(e) = write_error {
        return Err(e).context("writing to standard output");
    }
    let summary = &outcome.summary;
    eprintln!(
        "{} utterance(s) in {:.2} s of audio from {}{}{}",
        summary.utterances,
        summary.seconds,
        summary.source.name,
        if summary.dropped_frames > 0 {
            format!(
                "; {} frames DROPPED (the system could not keep up)",
                summary.dropped_frames
            )
        } else {
            String::new()
        },
        discarded_note(summary.discarded),
    );
    match outcome.error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn print_utterance(
    out: &mut impl Write,
    format: OutputFormat,
    u: &Utterance,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => writeln!(
            out,
            "{:>4}  {:>9.3}  {:>9.3}  {:>7.3}  {:>7.1}  {:>7.1}{}",
            u.id,
            u.start_s,
            u.end_s,
            u.duration_s(),
            u.rms_dbfs,
            u.peak_dbfs,
            if u.split {
                "  (split at max length)"
            } else {
                ""
            }
        )?,
        OutputFormat::Jsonl => {
            serde_json::to_writer(&mut *out, u)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The summary's note on what the segmenter dropped, empty when nothing was.
fn discarded_note(discarded: Discarded) -> String {
    let mut note = String::new();
    if discarded.short > 0 {
        note += &format!("; {} blip(s) too short to keep", discarded.short);
    }
    if discarded.steady_noise > 0 {
        note += &format!(
            "; {} stretch(es) of steady noise ignored",
            discarded.steady_noise
        );
    }
    note
}
