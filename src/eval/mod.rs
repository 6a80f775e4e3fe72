//! Evaluation against human annotation (`emomon eval`, issue 5).
//!
//! * [`metrics`] — categorical, distributional, calibration and correlation
//!   metrics, each defined in its doc comment and checked against
//!   scikit-learn/SciPy reference values;
//! * [`circumplex`] — valence/arousal coordinates of emotion labels (Glasgow
//!   Norms) for projecting distributions onto the circumplex;
//! * [`crema`] — reader for CREMA-D crowd vote tables, mapping its six emotion
//!   codes to emomon label names;
//! * [`manifest`] — reader for evaluation manifests (audio path, dataset,
//!   reference label or vote distribution, dimensional values);
//! * [`labels`] — explicit reference-label → model-label renames;
//! * [`cache`] — resumable per-clip score cache keyed by audio hash and scoring
//!   identity;
//! * [`report`] — per-dataset metrics from predictions and the markdown summary;
//! * [`plots`] — SVG confusion matrix and reliability diagram.

pub mod cache;
pub mod circumplex;
pub mod crema;
pub mod labels;
pub mod manifest;
pub mod metrics;
pub mod plots;
pub mod report;
