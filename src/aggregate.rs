//! Rolling aggregation of emotion distributions: the `emomon-aggregate` crate,
//! re-exported here so the library's stages read `crate::aggregate::…`.
//!
//! It lives in its own small crate (plain math, no burn) because the dashboard
//! (`emomon-tui`) draws the same summaries and must build without the models; the
//! live run, replay, the headless summary, the report and the export all use this
//! one implementation (see the crate docs for the definitions and costs).

pub use emomon_aggregate::*;
