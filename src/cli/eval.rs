//! `emomon eval`: the flags of an evaluation; the work is the library's
//! ([`emomon::eval::run`]), which writes the outputs; this prints its headline table
//! or comparison.

use std::path::PathBuf;

use clap::Args;
use emomon::eval::run::{EvalOptions, EvalReport, table};
use emomon::eval::strategy::Aggregate;
use emomon::workers::WorkerPlan;
use emomon_models::scorer::Method;

use super::model_args::{MethodArg, ModelArgs};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Manifest CSV: columns `path`, `dataset`, `label` (one label, `a=3;b=1` votes,
    /// or empty), optional `speaker` and `extra` (`arousal=…;valence=…`).
    #[arg(long, required_unless_present = "crema_votes")]
    pub manifest: Option<PathBuf>,
    /// Directory that relative audio paths are under [default: the manifest's directory].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// CREMA-D vote table (`tabulatedVotes.csv` or `voice_only_votes.csv`): its
    /// voice-only crowd votes become reference distributions of dataset `crema-d`.
    #[arg(long, requires = "crema_audio")]
    pub crema_votes: Option<PathBuf>,
    /// CREMA-D's `AudioWAV` directory (`<fileName>.wav` per clip), with --crema-votes.
    #[arg(long)]
    pub crema_audio: Option<PathBuf>,
    /// Only these datasets (comma-separated `dataset` values).
    #[arg(long, value_delimiter = ',')]
    pub datasets: Option<Vec<String>>,
    /// Every K-th clip only (after --datasets), for a quick evaluation of a spread sample.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub stride: u64,
    /// At most N clips (after --datasets and --stride).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Extra reference → model label renames, `from=to,…` (on top of the built-in
    /// anger=angry, happiness=happy, sadness=sad, fearful=fear, …).
    #[arg(long)]
    pub label_map: Option<String>,
    /// Evaluate each dataset over the labels it has (probabilities renormalised over
    /// them, at the model's temperature for that label set where it has one), as a
    /// classifier restricted to that dataset's label set would be.
    #[arg(long)]
    pub per_dataset_labels: bool,
    /// Score cache (JSON lines) [default: OUT/cache.jsonl].
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Output directory (created if missing).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Compare scoring methods in one run (comma-separated: first-token,
    /// token-average, text): each method's outputs go to OUT/<method>/, and
    /// OUT/comparison.md + comparison.json tabulate them. Overrides --method.
    /// Methods the model cannot run appear as rows saying why.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        help_heading = "Test-time scaling"
    )]
    pub methods: Option<Vec<MethodArg>>,
    /// Prompt ensemble: a file of questions (chat models) or answer prefixes
    /// (Whisper), one per line; empty lines and lines starting with `#` are skipped.
    /// Every clip is asked every question (with any --prompt too), its audio encoded
    /// once, and the answers combined with --aggregate.
    #[arg(long, value_name = "FILE", help_heading = "Test-time scaling")]
    pub prompts: Option<PathBuf>,
    /// Sample N answers per question at --sample-temperature instead of one greedy
    /// answer (first-token: N label draws from the label softmax, each a point mass).
    #[arg(long, value_name = "N", help_heading = "Test-time scaling",
          value_parser = clap::value_parser!(u64).range(1..10_001))]
    pub samples: Option<u64>,
    /// Softmax temperature of sampled tokens / label draws (> 0).
    #[arg(
        long,
        value_name = "T",
        default_value_t = 1.0,
        requires = "samples",
        help_heading = "Test-time scaling"
    )]
    pub sample_temperature: f32,
    /// Seed of the sampled answers: the same seed reproduces them exactly.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 0,
        requires = "samples",
        help_heading = "Test-time scaling"
    )]
    pub seed: u64,
    /// How a clip's answers (questions × samples) become one distribution:
    /// mean, confidence (mean weighted by each answer's top probability),
    /// best-of-n (the most confident answer), majority (share of answers whose top
    /// label each label is). Comma-separated to compare several (OUT/<aggregate>/).
    /// Only used with several questions or --samples.
    #[arg(long, value_delimiter = ',', default_value = "mean",
          value_parser = parse_aggregate, help_heading = "Test-time scaling")]
    pub aggregate: Vec<Aggregate>,
    /// Speaker-independent cross-validation of the default model: DIR holds fold-K/
    /// directories with `adapter.json`, `adapter.safetensors` and `heldout.csv` (as
    /// `scripts/default_model/train.py --export-folds DIR` writes them). Each clip is
    /// scored by the adapter of the fold that held it out; one summary pools all folds.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["methods", "prompts", "samples"])]
    pub folds: Option<PathBuf>,
    /// Scoring workers sharing one copy of the model, each with its share of the CPU
    /// threads; the outputs are the same for any number [default: one per two CPU
    /// threads, printed at start].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..256))]
    pub workers: Option<u64>,
    #[command(flatten)]
    pub model: ModelArgs,
}

fn parse_aggregate(s: &str) -> Result<Aggregate, String> {
    s.parse()
}

impl EvalArgs {
    /// The library's options these flags describe.
    pub fn options(&self) -> EvalOptions {
        EvalOptions {
            manifest: self.manifest.clone(),
            data_root: self.data_root.clone(),
            crema_votes: self.crema_votes.clone(),
            crema_audio: self.crema_audio.clone(),
            datasets: self.datasets.clone(),
            stride: self.stride,
            limit: self.limit,
            label_map: self.label_map.clone(),
            per_dataset_labels: self.per_dataset_labels,
            cache: self.cache.clone(),
            output: self.output.clone(),
            methods: self
                .methods
                .as_ref()
                .map(|m| m.iter().copied().map(Method::from).collect()),
            prompts: self.prompts.clone(),
            samples: self.samples,
            sample_temperature: self.sample_temperature,
            seed: self.seed,
            aggregate: self.aggregate.clone(),
            folds: self.folds.clone(),
            model: self.model.options(),
            workers: WorkerPlan::requested_or_default(self.workers.map(|w| w as usize)),
        }
    }
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let options = args.options();
    eprintln!("scoring with {}", options.workers.describe());
    match emomon::eval::run::run(&options)? {
        EvalReport::Single(summary) => print!("{}", table(&summary)),
        EvalReport::Comparison { markdown, path, .. } => {
            println!("{markdown}");
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
