//! Evaluation against human annotation (`emomon eval`, issue 5).
//!
//! * [`metrics`] — categorical, distributional, calibration and correlation
//!   metrics, each defined in its doc comment and checked against
//!   scikit-learn/SciPy reference values;
//! * [`crema`] — reader for CREMA-D crowd vote tables, mapping its six emotion
//!   codes to emomon label names.

pub mod crema;
pub mod metrics;
