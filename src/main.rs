//! The `emomon` command line.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Listen to speech and see how its emotion is heard: a distribution over
/// emotions per utterance and over the session, offline, in the terminal.
#[derive(Debug, Parser)]
#[command(name = "emomon", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log verbosity for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "EMOMON_LOG")]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cut speech into timed utterances (file or microphone) and print them.
    Segment(cli::segment::SegmentArgs),
    /// List audio input devices and their formats.
    Devices,
    /// Play a recorded session log through the dashboard.
    Replay(emomon::replay::ReplayArgs),
    /// Measure throughput of emomon's stages.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        Command::Segment(args) => cli::segment::run(args),
        Command::Devices => cli::devices::run(),
        Command::Replay(args) => emomon::replay::run(args),
        Command::Bench(command) => cli::bench::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("emomon: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
