//! `emomon bench …`: throughput measurements (benchmarks, not tests).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::{Args, Subcommand};
use emomon::audio::file::FileSource;
use emomon::capture::run_capture;

use super::frontend_args::FrontEndArgs;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// File → decode → 16 kHz mono → VAD → utterances, on one thread, as a multiple of real time.
    Frontend(FrontendBenchArgs),
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
