//! The interface between the live pipeline and whatever scores utterances
//! (an audio-language model from `emomon-models`, or a stand-in in tests).

use std::sync::Arc;

use crate::utterance::Utterance;

/// One utterance's emotion scores, in the scorer's label order.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Probabilities, summing to 1.
    pub probs: Vec<f32>,
    /// Raw label-token logits (empty for methods without logits).
    pub logits: Vec<f32>,
}

/// Why a batch could not be scored.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScoreError(pub String);

/// Scores batches of utterances. Runs on its own thread (it may own a GPU
/// device), so it must be `Send` but need not be `Sync`.
pub trait Scorer: Send {
    /// Model id, as logged.
    fn model(&self) -> &str;
    /// Scoring method (`first-token`, …), as logged.
    fn method(&self) -> &str;
    /// Compute device (`cpu`, `wgpu`), as logged.
    fn device(&self) -> &str;
    /// The label set, in the order of [`Scores::probs`].
    fn labels(&self) -> &[String];
    /// Largest batch worth forming when several utterances wait.
    fn max_batch(&self) -> usize {
        1
    }
    /// Scores every utterance of `batch`, in order.
    fn score(&mut self, batch: &[Arc<Utterance>]) -> Result<Vec<Scores>, ScoreError>;
    /// Another scorer sharing this one's weights (one copy in memory), for a worker
    /// pool; also how a worker whose scorer panicked gets a fresh one. `None` (the
    /// default) means this scorer cannot be shared: the pool then has one worker.
    fn fork(&self) -> Option<Box<dyn Scorer>> {
        None
    }
}
