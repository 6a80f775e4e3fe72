//! `emomon manifest`: turn a corpus's own annotation files into the manifest
//! CSV that `emomon eval --manifest` reads (per-clip vote distributions,
//! dimensional values, speakers), so evaluating on IEMOCAP, MSP-Podcast or
//! CREMA-D needs no corpus-specific flags in `eval`. Users bring the corpora;
//! nothing is downloaded.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use emomon::eval::crema::read_votes;
use emomon::eval::iemocap;
use emomon::eval::manifest::{ManifestRow, Reference, crema_items, write_manifest};
use emomon::eval::msp_podcast::{self, LabelsKind};

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// IEMOCAP: read Session*/dialog/EmoEvaluation/*.txt under --root; one row per
    /// turn with the evaluators' votes, valence/arousal/dominance (rescaled from 1–5
    /// to −1…+1) and the speaking actor; audio Session*/sentences/wav/<dialog>/<turn>.wav.
    Iemocap(IemocapArgs),
    /// MSP-Podcast: read labels_detailed.csv (one row per annotator → votes) or
    /// labels_consensus.csv (one consensus class per clip); valence/arousal/dominance
    /// rescaled from 1–7 to −1…+1; audio <--audio>/<FileName>.
    MspPodcast(MspPodcastArgs),
    /// CREMA-D: read a tabulatedVotes.csv-style vote table; one row per clip with
    /// its voice-only crowd votes; audio <--audio>/<fileName>.wav.
    CremaD(CremaArgs),
}

/// Options every corpus shares.
#[derive(Debug, Args)]
pub struct Output {
    /// Manifest CSV to write (path,dataset,speaker,label,extra).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Value of the `dataset` column (default: the corpus name).
    #[arg(long)]
    pub dataset: Option<String>,
}

#[derive(Debug, Args)]
pub struct IemocapArgs {
    /// The IEMOCAP release directory (holding Session1 … Session5).
    #[arg(long)]
    pub root: PathBuf,
    /// Leave out the actors' self-evaluations (C-F*/C-M* lines); by default they
    /// count as votes like the external evaluators'.
    #[arg(long)]
    pub no_self_evaluation: bool,
    #[command(flatten)]
    pub out: Output,
}

#[derive(Debug, Args)]
pub struct MspPodcastArgs {
    /// labels_detailed.csv (FileName, EmoClass_Major[, EmoAct, EmoVal, EmoDom]) or
    /// labels_consensus.csv (FileName, EmoClass[, EmoAct, EmoVal, EmoDom, SpkrID,
    /// Split_Set]).
    #[arg(long)]
    pub labels: PathBuf,
    /// With a per-annotator --labels file: labels_consensus.csv, for speakers, the
    /// split and the released dimensional values.
    #[arg(long)]
    pub consensus: Option<PathBuf>,
    /// The directory holding the audio (<FileName>, e.g. Audios/).
    #[arg(long)]
    pub audio: PathBuf,
    /// Keep only clips of this Split_Set (e.g. Test1); needs a consensus file.
    #[arg(long)]
    pub split: Option<String>,
    #[command(flatten)]
    pub out: Output,
}

#[derive(Debug, Args)]
pub struct CremaArgs {
    /// tabulatedVotes.csv or voice_only_votes.csv.
    #[arg(long)]
    pub votes: PathBuf,
    /// CREMA-D's AudioWAV directory.
    #[arg(long)]
    pub audio: PathBuf,
    #[command(flatten)]
    pub out: Output,
}

pub fn run(command: &ManifestCommand) -> anyhow::Result<()> {
    match command {
        ManifestCommand::Iemocap(args) => iemocap_manifest(args),
        ManifestCommand::MspPodcast(args) => msp_manifest(args),
        ManifestCommand::CremaD(args) => crema_manifest(args),
    }
}

/// `dir` made absolute (without resolving links), so the manifest works from
/// wherever it is read.
fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

fn iemocap_manifest(args: &IemocapArgs) -> anyhow::Result<()> {
    let root = absolute(&args.root)?;
    let turns = iemocap::read_root(&root, !args.no_self_evaluation)?;
    let dataset = args.out.dataset.as_deref().unwrap_or("iemocap");
    let rows: Vec<ManifestRow> = turns
        .iter()
        .map(|t| t.manifest_row(&root, dataset))
        .collect();
    let evaluations: usize = turns.iter().map(|t| t.n_evaluations).sum();
    finish(
        &args.out.output,
        &rows,
        &format!(
            "from {evaluations} categorical evaluation(s) under {}",
            root.display()
        ),
    )
}

fn msp_manifest(args: &MspPodcastArgs) -> anyhow::Result<()> {
    let (kind, mut clips) = msp_podcast::read_labels(&args.labels)?;
    if let Some(path) = &args.consensus {
        let (ckind, consensus) = msp_podcast::read_labels(path)?;
        if ckind != LabelsKind::Consensus {
            anyhow::bail!(
                "--consensus {}: expected a labels_consensus.csv layout (an `EmoClass` column), \
                 found per-annotator rows (`EmoClass_Major`)",
                path.display()
            );
        }
        if kind != LabelsKind::PerAnnotator {
            anyhow::bail!(
                "--consensus is for completing a per-annotator --labels file; {} is already a \
                 consensus file",
                args.labels.display()
            );
        }
        msp_podcast::merge_consensus(&mut clips, &consensus);
    }
    if let Some(split) = &args.split {
        if clips.iter().all(|c| c.split.is_none()) {
            anyhow::bail!(
                "--split {split}: no Split_Set column read (give labels_consensus.csv as --labels \
                 or --consensus)"
            );
        }
        clips.retain(|c| c.split.as_deref() == Some(split.as_str()));
        if clips.is_empty() {
            anyhow::bail!("--split {split}: no clip has that Split_Set");
        }
    }
    let audio = absolute(&args.audio)?;
    let dataset = args.out.dataset.as_deref().unwrap_or("msp-podcast");
    let rows: Vec<ManifestRow> = clips
        .iter()
        .map(|c| c.manifest_row(&audio, dataset))
        .collect();
    let source = match kind {
        LabelsKind::PerAnnotator => {
            let n: usize = clips.iter().map(|c| c.n_rows).sum();
            format!("from {n} annotator row(s) of {}", args.labels.display())
        }
        LabelsKind::Consensus => format!("from the consensus labels of {}", args.labels.display()),
    };
    finish(&args.out.output, &rows, &source)
}

fn crema_manifest(args: &CremaArgs) -> anyhow::Result<()> {
    let votes = read_votes(&args.votes)?;
    let audio = absolute(&args.audio)?;
    let mut rows: Vec<ManifestRow> = crema_items(&votes, &audio)
        .iter()
        .map(ManifestRow::from)
        .collect();
    if let Some(d) = &args.out.dataset {
        for r in &mut rows {
            r.dataset = d.clone();
        }
    }
    if rows.is_empty() {
        anyhow::bail!("{}: no voice-only rows", args.votes.display());
    }
    finish(
        &args.out.output,
        &rows,
        &format!("from the voice-only votes of {}", args.votes.display()),
    )
}

/// Writes the manifest and says what it holds, including audio files that
/// are not there (the manifest is still written: eval reports such clips
/// one by one, and the audio may live elsewhere when the manifest is used).
fn finish(output: &Path, rows: &[ManifestRow], source: &str) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    write_manifest(rows, &mut buf)?;
    std::fs::write(output, buf).with_context(|| format!("cannot write {}", output.display()))?;
    let without = rows
        .iter()
        .filter(|r| r.reference == Reference::None)
        .count();
    let missing: Vec<&ManifestRow> = rows
        .iter()
        .filter(|r| !Path::new(&r.path).is_file())
        .collect();
    eprintln!(
        "wrote {} clip(s) to {} {source}; {without} without a categorical reference",
        rows.len(),
        output.display()
    );
    if let Some(first) = missing.first() {
        eprintln!(
            "note: {} audio file(s) not found (first: {}); emomon eval will report them per clip",
            missing.len(),
            first.path
        );
    }
    Ok(())
}
