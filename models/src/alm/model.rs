//! [`EmotionModel`]: the one interface through which callers score with any model,
//! an [`AlmScorer`](super::AlmScorer) over a Hugging Face directory or the built-in default model
//! ([`crate::default_model::DefaultScorer`]). What a model cannot do it says through
//! [`supports`](EmotionModel::supports), so callers never list it themselves.

use super::{AlmError, BatchScores, EnsembleScores, Sampling};
use crate::scorer::Method;

/// A model that scores emotion in 16 kHz mono utterances. Scoring takes `&self`, so
/// one model can be shared by several workers.
pub trait EmotionModel: Send + Sync {
    /// Model id, as logged.
    fn id(&self) -> &str;

    /// Labels in output order.
    fn labels(&self) -> &[String];

    /// The method the model was opened with (what [`score`](Self::score) uses).
    fn method(&self) -> Method;

    /// Largest batch worth forming for [`score`](Self::score).
    fn natural_batch(&self) -> usize;

    /// `Ok` if the model can score with `method` (and, with `ensemble`, several
    /// questions or sampled answers); otherwise why not and what to use instead.
    fn supports(&self, method: Method, ensemble: bool) -> Result<(), AlmError>;

    /// The question `method` asks when none is given (empty for a model with a fixed
    /// prompt).
    fn question_for(&self, method: Method) -> String;

    /// Scores each utterance with the opened method and question.
    fn score(&self, utterances: &[&[f32]]) -> Result<BatchScores, AlmError>;

    /// The exponent `e` that makes [`score`](Self::score)'s distribution over
    /// [`labels`](Self::labels), restricted to the subset `labels` as `p^e` and
    /// renormalised, the distribution the model is calibrated for over exactly those
    /// labels. 1 (plain renormalisation) unless the model ships a temperature for that
    /// label set, as the default model's adapter does for each training dataset's.
    fn label_subset_exponent(&self, _labels: &[String]) -> f64 {
        1.0
    }

    /// Scores one utterance with `method` under every question, greedily or with
    /// `sampling` (`n` seeded samples per question). The audio is featurised and
    /// encoded once; each question then gets one prompt pass of the decoder, whose
    /// state every sample continues from.
    ///
    /// Samples: `token-average` and `text` draw every generated token from
    /// `softmax(logits / temperature)` over the vocabulary; `first-token` draws the
    /// answer label from `softmax(z / temperature)` over the label logits `z`, and each
    /// draw is a point mass on the drawn label (its `logits` are the label logits).
    /// Greedy answers equal [`score`](Self::score)'s for the same question.
    fn score_ensemble(
        &self,
        utterance: &[f32],
        method: Method,
        questions: &[String],
        sampling: Option<Sampling>,
    ) -> Result<EnsembleScores, AlmError>;
}
