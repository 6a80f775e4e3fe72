//! Evaluation against human annotation (`emomon eval`, issue 5).
//!
//! * [`metrics`] — categorical, distributional, calibration and correlation
//!   metrics, each defined in its doc comment and checked against
//!   scikit-learn/SciPy reference values;
//! * [`circumplex`] — valence/arousal coordinates of emotion labels (Glasgow
//!   Norms) for projecting distributions onto the circumplex;
//! * [`crema`] — reader for CREMA-D crowd vote tables, mapping its six emotion
//!   codes to emomon label names;
//! * [`iemocap`] — reader for IEMOCAP's per-evaluator `EmoEvaluation` files;
//! * [`msp_podcast`] — reader for MSP-Podcast's per-annotator and consensus
//!   label files;
//! * [`manifest`] — reader for evaluation manifests (audio path, dataset,
//!   reference label or vote distribution, dimensional values);
//! * [`labels`] — explicit reference-label → model-label renames;
//! * [`cache`] — resumable per-clip score cache keyed by audio hash and scoring
//!   identity;
//! * [`report`] — per-dataset metrics from predictions and the markdown summary;
//! * [`plots`] — SVG confusion matrix and reliability diagram;
//! * [`strategy`] — test-time-scaling aggregators (mean, confidence-weighted,
//!   best-of-N, majority) over several answers per clip;
//! * [`compare`] — the method × strategy comparison table of `--methods`;
//! * [`run`] — the orchestration: select clips, score them (cached, on a worker
//!   pool), map labels, compute the metrics and write the outputs;
//! * `table` — the CSV parsing the readers share (the `csv` crate).

pub mod cache;
pub mod circumplex;
pub mod compare;
pub mod crema;
pub mod iemocap;
pub mod labels;
pub mod manifest;
pub mod metrics;
pub mod msp_podcast;
pub mod plots;
pub mod report;
pub mod run;
pub mod strategy;
mod table;
