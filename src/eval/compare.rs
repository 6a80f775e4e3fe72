//! The method comparison of `emomon eval --methods` (arXiv 2602.03873's central
//! table): one row per scoring method and test-time-scaling strategy, with the
//! headline metrics of its run, or why the model could not run it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::report::{GroupSummary, Summary};

/// Headline metrics of one group of clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowMetrics {
    /// Clips in the group.
    pub n_items: usize,
    /// Clips without a distribution (unreadable audio or answers).
    pub n_failed: usize,
    /// Accuracy.
    pub accuracy: Option<f64>,
    /// Unweighted average recall.
    pub uar: Option<f64>,
    /// Macro-F1.
    pub macro_f1: Option<f64>,
    /// Expected calibration error (10 bins).
    pub ece: Option<f64>,
    /// Mean Jensen–Shannon divergence to reference distributions (nats).
    pub js_divergence: Option<f64>,
    /// Mean Bhattacharyya coefficient with reference distributions.
    pub bhattacharyya: Option<f64>,
}

impl RowMetrics {
    /// The headline numbers of `g`.
    pub fn of(g: &GroupSummary) -> Self {
        Self {
            n_items: g.n_items,
            n_failed: g.n_failed,
            accuracy: g.accuracy,
            uar: g.uar,
            macro_f1: g.macro_f1,
            ece: g.ece,
            js_divergence: g.distribution.as_ref().map(|d| d.js_divergence),
            bhattacharyya: g.distribution.as_ref().map(|d| d.bhattacharyya),
        }
    }
}

/// One method × strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// Scoring method.
    pub method: String,
    /// Aggregation (`None`: one greedy answer per clip).
    pub aggregate: Option<String>,
    /// The strategy in words (questions, samples, aggregation).
    pub strategy: String,
    /// Where the run's outputs are, relative to the comparison's directory.
    pub output: Option<String>,
    /// Over all clips (`None` when the row did not run).
    pub overall: Option<RowMetrics>,
    /// Per dataset.
    #[serde(default)]
    pub datasets: BTreeMap<String, RowMetrics>,
    /// Answers read (clips × questions × samples, unreadable audio excluded).
    pub answers: usize,
    /// Answers whose text could not be read as a distribution (`text`).
    pub unparseable: usize,
    /// Mean model time per clip over the clips that have one (cached clips keep the
    /// time measured when they were scored), milliseconds.
    pub mean_latency_ms: Option<f64>,
    /// Why this row has no results (a method the model cannot run, or nothing scored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_run: Option<String>,
}

impl ComparisonRow {
    /// A row of a finished run.
    pub fn from_summary(
        summary: &Summary,
        method: &str,
        aggregate: Option<&str>,
        strategy: String,
        output: String,
    ) -> Self {
        Self {
            method: method.to_string(),
            aggregate: aggregate.map(str::to_string),
            strategy,
            output: Some(output),
            overall: Some(RowMetrics::of(&summary.overall)),
            datasets: summary
                .datasets
                .iter()
                .map(|(k, g)| (k.clone(), RowMetrics::of(g)))
                .collect(),
            answers: 0,
            unparseable: 0,
            mean_latency_ms: None,
            not_run: None,
        }
    }

    /// A row that could not run, saying why.
    pub fn not_run(method: &str, aggregate: Option<&str>, strategy: String, why: String) -> Self {
        Self {
            method: method.to_string(),
            aggregate: aggregate.map(str::to_string),
            strategy,
            output: None,
            overall: None,
            datasets: BTreeMap::new(),
            answers: 0,
            unparseable: 0,
            mean_latency_ms: None,
            not_run: Some(why),
        }
    }
}

/// `comparison.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Model id.
    pub model: String,
    /// The model's labels.
    pub labels: Vec<String>,
    /// Whether each dataset was evaluated over its own labels.
    pub per_dataset_labels: bool,
    /// Clips evaluated per row.
    pub n_items: usize,
    /// One per method × strategy, in the order run.
    pub rows: Vec<ComparisonRow>,
}

/// `text` as one table cell: pipes escaped, line breaks flattened, at most 200
/// characters (comparison.json has the whole message).
fn cell(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out: String = flat.chars().take(200).collect();
    if flat.chars().count() > 200 {
        out.push('…');
    }
    out.replace('|', "\\|")
}

fn num(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

/// `comparison.md`: the overall table, then accuracy / UAR per dataset.
pub fn markdown(c: &Comparison) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# emomon eval: method comparison\n\nModel `{}`, labels {}{}, {} clip(s) per row.\n",
        c.model,
        c.labels.join(", "),
        if c.per_dataset_labels {
            " (each dataset over its own labels)"
        } else {
            ""
        },
        c.n_items
    );
    let _ = writeln!(
        md,
        "| method | strategy | accuracy | UAR | macro-F1 | ECE | JSD | BC | unparseable | mean latency (ms) | note |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &c.rows {
        let m = r.overall.as_ref();
        let f = |g: fn(&RowMetrics) -> Option<f64>| num(m.and_then(g));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.method,
            r.strategy,
            f(|m| m.accuracy),
            f(|m| m.uar),
            f(|m| m.macro_f1),
            f(|m| m.ece),
            f(|m| m.js_divergence),
            f(|m| m.bhattacharyya),
            if r.not_run.is_some() && r.answers == 0 {
                "–".to_string()
            } else {
                format!("{}/{}", r.unparseable, r.answers)
            },
            r.mean_latency_ms.map_or("–".into(), |v| format!("{v:.0}")),
            r.not_run.as_deref().map(cell).unwrap_or_default()
        );
    }
    let datasets: Vec<&String> = {
        let mut d: Vec<&String> = c.rows.iter().flat_map(|r| r.datasets.keys()).collect();
        d.sort();
        d.dedup();
        d
    };
    if !datasets.is_empty() {
        let _ = writeln!(md, "\n## Accuracy / UAR per dataset\n");
        let _ = write!(md, "| method | strategy |");
        for d in &datasets {
            let _ = write!(md, " {d} |");
        }
        let _ = write!(md, "\n|---|---|");
        for _ in &datasets {
            let _ = write!(md, "---|");
        }
        md.push('\n');
        for r in &c.rows {
            let _ = write!(md, "| {} | {} |", r.method, r.strategy);
            for d in &datasets {
                let cell = r.datasets.get(*d).map_or("–".to_string(), |m| {
                    format!("{} / {}", num(m.accuracy), num(m.uar))
                });
                let _ = write!(md, " {cell} |");
            }
            md.push('\n');
        }
    }
    let _ = writeln!(
        md,
        "\nJSD: mean Jensen–Shannon divergence (nats) and BC: mean Bhattacharyya coefficient \
         against reference vote distributions (– without them). Unparseable: answers that \
         could not be read as a distribution, of all answers. Latency: model time per clip."
    );
    md
}
