//! `emomon bench …`: throughput measurements (benchmarks, not tests).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use emomon::audio::file::FileSource;
use emomon::capture::run_capture;
use emomon::model_scorer::open_model;
use emomon::workers::{self, WorkerPlan};

use super::frontend_args::FrontEndArgs;
use super::model_args::ModelArgs;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// File → decode → 16 kHz mono → VAD → utterances, on one thread, as a multiple of real time.
    Frontend(FrontendBenchArgs),
    /// Model scoring latency per stage (features, encoder, decoder) and utterances/s.
    Score(Box<ScoreBenchArgs>),
    /// Speaker tracks on two-person conversations built from the shared clips:
    /// utterance-level accuracy of clustering and enrolment, and the embedding cost.
    Speakers(super::bench_speakers::SpeakersBenchArgs),
}

#[derive(Debug, Args)]
pub struct ScoreBenchArgs {
    /// Length of each utterance, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Utterances per call (scored as one batch where the model batches).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Timed calls after one warm-up call; the median, 95th percentile and best are reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Audio to cut the utterances from (16 kHz after resampling; looped if short).
    /// Default: a synthetic voiced signal (the content does not change the compute of
    /// first-token scoring).
    #[arg(long)]
    pub audio: Option<PathBuf>,
    /// Also measure throughput with N scoring workers sharing the model (each with its
    /// share of the CPU threads): --repeat calls (rounded up to a multiple of N) spread
    /// over the workers, utterances/s over the wall time, and the peak RSS.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..256))]
    pub workers: Option<u64>,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct FrontendBenchArgs {
    /// Audio files to process (e.g. a long recording, or a 44.1 kHz file to include resampling).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Passes over the files; the best and median pass are reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    #[command(flatten)]
    pub frontend: FrontEndArgs,
}

pub fn run(command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Frontend(args) => frontend(args),
        BenchCommand::Score(args) => score(args),
        BenchCommand::Speakers(args) => super::bench_speakers::run(args),
    }
}

fn frontend(args: &FrontendBenchArgs) -> anyhow::Result<()> {
    let config = args.frontend.config()?;
    let never = AtomicBool::new(false);
    let mut passes = Vec::new();
    let mut audio_s = 0.0;
    let mut utterances = 0;
    for _ in 0..args.repeat.max(1) {
        audio_s = 0.0;
        utterances = 0;
        let started = Instant::now();
        for path in &args.files {
            let mut source = FileSource::open(path)?;
            let outcome = run_capture(&mut source, &config, &never, &mut |_| {})?;
            if let Some(error) = outcome.error {
                return Err(error.into());
            }
            audio_s += outcome.summary.seconds;
            utterances += outcome.summary.utterances;
        }
        passes.push(started.elapsed().as_secs_f64());
    }
    passes.sort_by(f64::total_cmp);
    let best = passes[0];
    let median = passes[passes.len() / 2];
    println!(
        "frontend: {} file(s), {audio_s:.1} s of audio, {utterances} utterances per pass, {} passes",
        args.files.len(),
        passes.len()
    );
    println!(
        "  best   {:8.1} ms  = {:7.0}x real time",
        best * 1e3,
        audio_s / best
    );
    println!(
        "  median {:8.1} ms  = {:7.0}x real time",
        median * 1e3,
        audio_s / median
    );
    Ok(())
}

fn score(args: &ScoreBenchArgs) -> anyhow::Result<()> {
    if !(args.seconds > 0.1 && args.seconds <= 30.0) {
        anyhow::bail!("--seconds must be in (0.1, 30], got {}", args.seconds);
    }
    let batch = args.batch.max(1);
    let n = (args.seconds * 16_000.0).round() as usize;
    let source = match &args.audio {
        Some(path) => emomon::audio::whole_file::read_16k(path)?,
        None => synthetic_voice(n),
    };
    if source.is_empty() {
        anyhow::bail!("no audio to benchmark with");
    }
    let utterances: Vec<Vec<f32>> = (0..batch)
        .map(|b| {
            (0..n)
                .map(|i| source[(i + b * 1601) % source.len()])
                .collect()
        })
        .collect();
    let refs: Vec<&[f32]> = utterances.iter().map(Vec::as_slice).collect();
    let loading = Instant::now();
    let model = open_model(&args.model.options())?;
    let load_s = loading.elapsed().as_secs_f64();
    // Loading peaks above the steady state (checkpoint conversion): measure the
    // scoring peaks from here.
    let rss_loaded = rss_mb("VmRSS:");
    reset_peak_rss();
    model.score(&refs).context("warm-up call")?;
    let rss_warm = rss_mb("VmHWM:");
    let mut runs = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let r = model.score(&refs)?;
        runs.push([
            r.times.features.as_secs_f64(),
            r.times.encoder.as_secs_f64(),
            r.times.decoder.as_secs_f64(),
            r.total.as_secs_f64(),
        ]);
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "bench score: {} | {} | device {} | {} | {:.1} s utterances, batch {batch}, {} runs after 1 warm-up | {threads} CPU threads visible | load {load_s:.2} s",
        model.id(),
        model.method(),
        model
            .remote_device()
            .unwrap_or(emomon_models::device::DeviceKind::from(args.model.device).as_str()),
        if args.model.quantize() { "q8" } else { "f32" },
        args.seconds,
        runs.len(),
    );
    println!(
        "  {:<9} {:>10} {:>10} {:>10}",
        "stage", "median ms", "p95 ms", "best ms"
    );
    for (k, name) in ["features", "encoder", "decoder", "total"]
        .iter()
        .enumerate()
    {
        let mut v: Vec<f64> = runs.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        // Nearest-rank 95th percentile: with fewer than 20 runs it is the slowest run.
        let p95 = v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1];
        println!(
            "  {:<9} {:>10.1} {:>10.1} {:>10.1}",
            name,
            v[v.len() / 2] * 1e3,
            p95 * 1e3,
            v[0] * 1e3
        );
    }
    let mut totals: Vec<f64> = runs.iter().map(|r| r[3]).collect();
    totals.sort_by(f64::total_cmp);
    let median = totals[totals.len() / 2];
    println!(
        "  utterances/s {:.2} (median), {:.2} (best); {:.1}x real time",
        batch as f64 / median,
        batch as f64 / totals[0],
        batch as f64 * args.seconds / median
    );
    if let Some(workers) = args.workers {
        pool_throughput(
            &model,
            &refs,
            args,
            workers as usize,
            [rss_loaded, rss_warm],
        )?;
    }
    Ok(())
}

/// `--workers N`: the same calls spread over a pool of N workers sharing `model`.
fn pool_throughput(
    model: &emomon::model_scorer::LoadedModel,
    refs: &[&[f32]],
    args: &ScoreBenchArgs,
    workers: usize,
    [rss_loaded, rss_warm]: [Option<f64>; 2],
) -> anyhow::Result<()> {
    let plan = WorkerPlan::new(workers);
    let calls = args.repeat.max(1).div_ceil(workers) * workers;
    let mut jobs = Calls {
        left: calls,
        latencies: Vec::new(),
    };
    // A warm-up call per worker (each has its own thread pool), then the timed calls.
    let mut warm = Calls {
        left: workers,
        latencies: Vec::new(),
    };
    reset_peak_rss();
    workers::run_ordered(plan, &mut warm, |_| model.score(refs).map(|r| r.total))?;
    let started = Instant::now();
    workers::run_ordered(plan, &mut jobs, |_| model.score(refs).map(|r| r.total))?;
    let wall = started.elapsed().as_secs_f64();
    jobs.latencies.sort_by(f64::total_cmp);
    let utterances = (calls * refs.len()) as f64;
    println!(
        "pool: {} | {calls} calls of {} utterance(s) after {workers} warm-up call(s)",
        plan.describe(),
        refs.len()
    );
    println!(
        "  utterances/s {:.2} (wall {:.2} s); per call median {:.1} ms, worst {:.1} ms",
        utterances / wall,
        wall,
        jobs.latencies[jobs.latencies.len() / 2] * 1e3,
        jobs.latencies[jobs.latencies.len() - 1] * 1e3
    );
    let mb = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} MB"));
    println!(
        "  RSS after load {}; peak RSS scoring one call on one thread pool {}, on the pool {}",
        mb(rss_loaded),
        mb(rss_warm),
        mb(rss_mb("VmHWM:"))
    );
    Ok(())
}

/// `n` identical benchmark calls; their latencies as they finish.
struct Calls {
    left: usize,
    latencies: Vec<f64>,
}

impl workers::OrderedJobs for Calls {
    type Job = ();
    type Output = anyhow::Result<std::time::Duration>;

    fn next_job(&mut self) -> anyhow::Result<Option<()>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        Ok(Some(()))
    }

    fn finish(
        &mut self,
        _: (),
        output: Result<anyhow::Result<std::time::Duration>, String>,
    ) -> anyhow::Result<()> {
        let took = output.map_err(|panic| anyhow::anyhow!("the scorer panicked: {panic}"))??;
        self.latencies.push(took.as_secs_f64());
        Ok(())
    }
}

/// A memory figure of `/proc/self/status` (Linux): `VmRSS:` the resident set now,
/// `VmHWM:` its peak since the last [`reset_peak_rss`], in MB.
fn rss_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A deterministic voiced-speech stand-in: a 120–220 Hz glottal-like pulse train with
/// harmonics, syllable-rate amplitude modulation and a little noise.
fn synthetic_voice(n: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_u32;
    (0..n)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            let f0 = 170.0 + 50.0 * (2.0 * std::f32::consts::PI * 0.5 * t).sin();
            let phase = 2.0 * std::f32::consts::PI * f0 * t;
            let voiced: f32 = (1..8).map(|h| (phase * h as f32).sin() / h as f32).sum();
            let envelope = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state as f32 / u32::MAX as f32 - 0.5) * 0.02;
            0.1 * envelope * voiced + noise
        })
        .collect()
}

/// Resets the peak resident set (`VmHWM`) to the current one (Linux ≥ 4.0; elsewhere a
/// no-op, and the peaks then include loading).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
