//! `emomon export SESSION.jsonl --csv [-o FILE]`: one CSV row per scored utterance.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use emomon::report::{SessionData, csv::write_csv};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Session log (JSONL) written by `emomon run`.
    pub session: PathBuf,
    #[command(flatten)]
    pub read: super::replay::LogReadArgs,
    /// Write CSV (the only export format so far; required so scripts say what they expect).
    #[arg(long, required = true)]
    pub csv: bool,
    /// Output file. Default: standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let loaded = emomon::replay::load(&args.session, args.read.into())?;
    for note in &loaded.notes {
        eprintln!("emomon: {}: {note}", args.session.display());
    }
    let data = SessionData::from_log(&loaded.log)
        .with_context(|| format!("{}: cannot export", args.session.display()))?;
    for note in &data.notes {
        eprintln!("emomon: {}: {note}", args.session.display());
    }
    match &args.output {
        Some(path) => {
            let mut bytes = Vec::new();
            write_csv(&data, &mut bytes)?;
            std::fs::write(path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "emomon: {} utterance rows written to {}",
                data.utterances.len(),
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            match write_csv(&data, &mut out).and_then(|()| out.flush()) {
                // `| head` closed the pipe: the reader has what it wanted.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("writing to standard output")?,
            }
        }
    }
    Ok(())
}
