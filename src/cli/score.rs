//! `emomon score`: a distribution over emotions for each utterance of an audio file (or
//! for the whole file), from an audio-language model, as JSON lines or a table.
//!
//! The model is opened before any audio is read, so a wrong directory or architecture
//! fails at once; utterances are printed as they are scored, with progress on stderr.

use std::io::{IsTerminal, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Args;
use emomon::audio::file::FileSource;
use emomon::audio::whole_file::read_16k_until_error;
use emomon::capture::run_capture;
use emomon::model_scorer::{LoadedModel, ModelAnswer, ScoredBatch, open_model};
use emomon::workers::{self, WorkerPlan};
use serde::Serialize;

use super::frontend_args::FrontEndArgs;
use super::model_args::ModelArgs;
use super::segment::OutputFormat;
use super::speaker_args::SpeakerArgs;

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Audio file (WAV, FLAC, MP3, Ogg Vorbis; any rate and channel count).
    #[arg(long, short)]
    pub input: PathBuf,
    /// Score the whole file as one utterance instead of each detected utterance.
    #[arg(long)]
    pub whole: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Scoring workers sharing one copy of the model, each with its share of the CPU
    /// threads; output stays in utterance order [default: one per two CPU threads,
    /// printed at start].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..256))]
    pub workers: Option<u64>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub frontend: FrontEndArgs,
    #[command(flatten)]
    pub speakers: SpeakerArgs,
}

/// One printed result (a JSON line).
#[derive(Debug, Serialize)]
struct Record<'a> {
    id: u64,
    start_s: f64,
    end_s: f64,
    model: &'a str,
    method: &'a str,
    device: &'a str,
    labels: &'a [String],
    /// Same order as `labels`, summing to 1; `null` when the answer could not be read.
    probs: Option<Vec<f32>>,
    /// Raw label-token logits (for `text`: the numbers as written).
    logits: Option<Vec<f32>>,
    entropy: Option<f32>,
    top: Option<&'a str>,
    /// Generated answer (`token-average`, `text`).
    #[serde(skip_serializing_if = "Option::is_none")]
    generated: Option<&'a str>,
    /// Why there is no distribution (`text` output that could not be parsed).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// Wall time of scoring this utterance (its batch), ms.
    latency_ms: f64,
    /// Who spoke it (`--speakers`, `--enroll`).
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker: Option<&'a str>,
}

/// A stretch of audio to score.
struct Segment {
    id: u64,
    start_s: f64,
    end_s: f64,
    samples: Vec<f32>,
    /// Who spoke it, when speakers are tracked.
    speaker: Option<String>,
}

pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    let config = args.frontend.config()?;
    eprintln!("Loading {} …", args.model.describe());
    let model = open_model(&args.model.options())?;
    let mut speakers = args.speakers.stage()?;
    // A truncated or corrupt file still has its audio before the failure scored
    // (as the error message promises); the error is returned after that.
    let (mut segments, read_error) = if args.speakers.channels() {
        if args.whole {
            anyhow::bail!(
                "--whole scores the file as one piece and --speakers channels cuts each \
                 channel into utterances; use one of them"
            );
        }
        channel_segments(args, &config)?
    } else if args.whole {
        let (segment, error) = whole_file(args)?;
        (vec![segment], error)
    } else {
        let mut source = FileSource::open(&args.input)?;
        let never = AtomicBool::new(false);
        let mut segments = Vec::new();
        let outcome = run_capture(&mut source, &config, &never, &mut |u| {
            segments.push(Segment {
                id: u.id,
                start_s: u.start_s,
                end_s: u.end_s,
                samples: u.samples.to_vec(),
                speaker: None,
            })
        })?;
        (segments, outcome.error)
    };
    let failed = |error: emomon::audio::AudioError| {
        Err(error).with_context(|| format!("reading {}", args.input.display()))
    };
    if segments.is_empty() {
        if let Some(error) = read_error {
            return failed(error);
        }
        eprintln!(
            "No speech found in {} (try --whole, or a lower --aggressiveness).",
            args.input.display()
        );
        return Ok(());
    }
    if let Some(stage) = speakers.as_mut() {
        // In utterance order, so labels follow first appearance.
        for segment in &mut segments {
            let seconds = (segment.end_s - segment.start_s) as f32;
            segment.speaker = Some(stage.assign_speech(&segment.samples, seconds)?.label);
        }
    }
    let device = model
        .remote_device()
        .unwrap_or(emomon_models::device::DeviceKind::from(args.model.device).as_str());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.format == OutputFormat::Table {
        writeln!(
            out,
            "{:>4}  {:>8}  {:>8}  {:<10} {:>6}  {:>7}  distribution",
            "id", "start_s", "end_s", "top", "p", "entropy"
        )?;
    }
    let total = segments.len();
    let plan = WorkerPlan::requested_or_default(args.workers.map(|w| w as usize));
    eprintln!("scoring with {}", plan.describe());
    // Progress overwrites one line, which only makes sense on a terminal.
    let progress = std::io::stderr().is_terminal();
    let mut printer = Printer {
        segments: &segments,
        batch: model.natural_batch().max(1),
        next: 0,
        out: &mut out,
        format: args.format,
        model: &model,
        device,
        progress,
        unreadable: 0,
        panicked: 0,
    };
    workers::run_ordered(plan, &mut printer, |range| {
        let batch = &segments[range.clone()];
        let audio: Vec<&[f32]> = batch.iter().map(|s| s.samples.as_slice()).collect();
        model.score(&audio).with_context(|| {
            format!(
                "scoring utterance {} ({:.2}–{:.2} s)",
                batch[0].id, batch[0].start_s, batch[0].end_s
            )
        })
    })?;
    let (unreadable, panicked) = (printer.unreadable, printer.panicked);
    if progress {
        eprint!("\r");
    }
    eprintln!(
        "scored {total} utterance(s) of {} with {} ({}){}",
        args.input.display(),
        model.id(),
        model.method(),
        if unreadable > 0 {
            format!("; {unreadable} answer(s) could not be read")
        } else {
            String::new()
        }
    );
    if panicked > 0 {
        anyhow::bail!(
            "{panicked} of {total} utterance(s) were not scored: the scorer panicked (see above)"
        );
    }
    match read_error {
        Some(error) => failed(error),
        None => Ok(()),
    }
}

/// Hands batches of utterances to the workers and prints their results in order.
struct Printer<'a, W: Write> {
    segments: &'a [Segment],
    batch: usize,
    /// First utterance of the next batch.
    next: usize,
    out: &'a mut W,
    format: OutputFormat,
    model: &'a LoadedModel,
    device: &'a str,
    progress: bool,
    unreadable: usize,
    panicked: usize,
}

impl<W: Write> workers::OrderedJobs for Printer<'_, W> {
    type Job = Range<usize>;
    type Output = anyhow::Result<ScoredBatch>;

    fn next_job(&mut self) -> anyhow::Result<Option<Range<usize>>> {
        let start = self.next;
        self.next = (start + self.batch).min(self.segments.len());
        Ok((start < self.next).then_some(start..self.next))
    }

    fn finish(
        &mut self,
        range: Range<usize>,
        scored: Result<anyhow::Result<ScoredBatch>, String>,
    ) -> anyhow::Result<()> {
        let batch = &self.segments[range.clone()];
        if self.progress {
            eprint!("\rscoring {}/{} …", range.end, self.segments.len());
        }
        let scored = match scored {
            Ok(scored) => scored?,
            Err(panic) => {
                // Reported and skipped; the other utterances are still scored.
                for s in batch {
                    eprintln!(
                        "{}utterance {} ({:.2}–{:.2} s) not scored: the scorer panicked: {panic}",
                        if self.progress { "\r" } else { "" },
                        s.id,
                        s.start_s,
                        s.end_s
                    );
                }
                self.panicked += batch.len();
                return Ok(());
            }
        };
        let latency_ms = scored.total.as_secs_f64() * 1e3;
        for (segment, result) in batch.iter().zip(&scored.utterances) {
            self.unreadable += usize::from(result.scores.is_err());
            print_one(
                self.out,
                self.format,
                self.model,
                self.device,
                segment,
                result,
                latency_ms,
            )?;
        }
        Ok(())
    }
}

/// The whole file, downmixed and resampled to 16 kHz (up to a read error, which
/// is returned beside it; an empty result is the error itself).
fn whole_file(args: &ScoreArgs) -> anyhow::Result<(Segment, Option<emomon::audio::AudioError>)> {
    let (samples, error) = read_16k_until_error(&args.input)?;
    if samples.is_empty()
        && let Some(error) = error
    {
        return Err(error).with_context(|| format!("reading {}", args.input.display()));
    }
    let seconds = samples.len() as f64 / f64::from(emomon::audio::TARGET_RATE);
    if seconds > 30.0 {
        eprintln!(
            "note: {} is {seconds:.1} s long; Whisper and Qwen2-Audio hear only the first 30 s",
            args.input.display()
        );
    }
    let segment = Segment {
        id: 0,
        start_s: 0.0,
        end_s: seconds,
        samples,
        speaker: None,
    };
    Ok((segment, error))
}

fn print_one(
    out: &mut impl Write,
    format: super::segment::OutputFormat,
    model: &LoadedModel,
    device: &str,
    segment: &Segment,
    result: &ModelAnswer,
    latency_ms: f64,
) -> anyhow::Result<()> {
    let scores = result.scores.as_ref().ok();
    let top = scores.and_then(|s| {
        s.probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| s.labels[i].as_str())
    });
    match format {
        OutputFormat::Jsonl => {
            let method = model.method();
            let record = Record {
                id: segment.id,
                start_s: segment.start_s,
                end_s: segment.end_s,
                model: model.id(),
                method: method.as_str(),
                device,
                labels: model.labels(),
                probs: scores.map(|s| s.probs.clone()),
                logits: scores.map(|s| s.logits.clone()),
                entropy: scores.map(|s| s.entropy),
                top,
                generated: result.generated.as_deref(),
                error: result.scores.as_ref().err().map(String::as_str),
                latency_ms,
                speaker: segment.speaker.as_deref(),
            };
            serde_json::to_writer(&mut *out, &record)?;
            writeln!(out)?;
        }
        OutputFormat::Table => match scores {
            Some(s) => {
                let p_top = s.probs.iter().copied().fold(0.0f32, f32::max);
                let dist: Vec<String> = s
                    .labels
                    .iter()
                    .zip(&s.probs)
                    .map(|(l, p)| format!("{l} {:.2}", p))
                    .collect();
                let speaker = segment
                    .speaker
                    .as_deref()
                    .map_or(String::new(), |s| format!("[{s}] "));
                writeln!(
                    out,
                    "{:>4}  {:>8.2}  {:>8.2}  {:<10} {:>6.3}  {:>7.3}  {speaker}{}",
                    segment.id,
                    segment.start_s,
                    segment.end_s,
                    top.unwrap_or("-"),
                    p_top,
                    s.entropy,
                    dist.join(", ")
                )?;
            }
            None => writeln!(
                out,
                "{:>4}  {:>8.2}  {:>8.2}  (unreadable answer {:?}: {})",
                segment.id,
                segment.start_s,
                segment.end_s,
                result.generated.as_deref().unwrap_or(""),
                result.scores.as_ref().err().map_or("", String::as_str)
            )?,
        },
    }
    out.flush()?;
    Ok(())
}

/// `--speakers channels`: each channel of the stereo input segmented on its own, the
/// speaker named by its channel, in order of onset (the other channel's bleed is
/// silenced; see `emomon::speaker::channels`).
fn channel_segments(
    args: &ScoreArgs,
    config: &emomon::capture::FrontEndConfig,
) -> anyhow::Result<(Vec<Segment>, Option<emomon::audio::AudioError>)> {
    use emomon::speaker::channels::{CHANNEL_LABELS, run_channels_capture};
    let mut source = FileSource::open(&args.input)?;
    let mut segments = Vec::new();
    let outcome =
        run_channels_capture(&mut source, config, &AtomicBool::new(false), &mut |c, u| {
            segments.push(Segment {
                id: u.id,
                start_s: u.start_s,
                end_s: u.end_s,
                samples: u.samples.to_vec(),
                speaker: Some(CHANNEL_LABELS[c].to_string()),
            })
        })?;
    segments.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    for (id, s) in segments.iter_mut().enumerate() {
        s.id = id as u64;
    }
    eprintln!(
        "--speakers channels: {:.1} s silenced as the other channel's bleed (more than {} dB \
         quieter than the other channel)",
        outcome.gated_s,
        emomon::speaker::channels::GATE_DB
    );
    Ok((segments, outcome.capture.error))
}
