//! `emomon report SESSION.jsonl -o report.html|report.svg`: a session for review.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use emomon::report::{self, SessionData};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Session log (JSONL) written by `emomon run`.
    pub session: PathBuf,
    #[command(flatten)]
    pub read: super::replay::LogReadArgs,
    /// Output file; the extension picks the format: `.html` (self-contained page
    /// with plots and tables), `.svg` or `.png` (the plots only).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let ext = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let loaded = emomon::replay::load(&args.session, args.read.into())?;
    for note in &loaded.notes {
        eprintln!("emomon: {}: {note}", args.session.display());
    }
    let data = SessionData::from_log(&loaded.log)
        .with_context(|| format!("{}: cannot build a report", args.session.display()))?;
    let title = format!("emomon session {}", file_name(&args.session));
    let bytes = match ext.as_deref() {
        Some("html" | "htm") => report::html(&data, &title).into_bytes(),
        Some("svg") => report::svg::standalone(&data, &title)?.into_bytes(),
        Some("png") => report::png::render(&data, &title)?,
        _ => bail!(
            "{}: unknown report format; use a .html, .svg or .png file name",
            args.output.display()
        ),
    };
    for note in &data.notes {
        eprintln!("emomon: {}: {note}", args.session.display());
    }
    std::fs::write(&args.output, bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "emomon: report of {} utterances written to {}",
        data.utterances.len(),
        args.output.display()
    );
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
