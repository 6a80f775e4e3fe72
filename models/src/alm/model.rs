//! [`EmotionModel`]: the one interface through which callers score with any model,
//! an [`AlmScorer`] over a Hugging Face directory or the built-in default model
//! ([`crate::default_model::DefaultScorer`]). What a model cannot do it says through
//! [`supports`](EmotionModel::supports), so callers never list it themselves.

use super::{AlmError, AlmScorer, BatchScores, EnsembleScores, Sampling};
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

    /// Scores one utterance with `method` under every question, greedily or with
    /// `sampling`; see [`AlmScorer::score_ensemble`].
    fn score_ensemble(
        &self,
        utterance: &[f32],
        method: Method,
        questions: &[String],
        sampling: Option<Sampling>,
    ) -> Result<EnsembleScores, AlmError>;
}

impl EmotionModel for AlmScorer {
    fn id(&self) -> &str {
        AlmScorer::id(self)
    }

    fn labels(&self) -> &[String] {
        AlmScorer::labels(self)
    }

    fn method(&self) -> Method {
        self.options().method
    }

    fn natural_batch(&self) -> usize {
        AlmScorer::natural_batch(self)
    }

    fn supports(&self, _method: Method, _ensemble: bool) -> Result<(), AlmError> {
        Ok(())
    }

    fn question_for(&self, method: Method) -> String {
        AlmScorer::question_for(self, method)
    }

    fn score(&self, utterances: &[&[f32]]) -> Result<BatchScores, AlmError> {
        AlmScorer::score(self, utterances)
    }

    fn score_ensemble(
        &self,
        utterance: &[f32],
        method: Method,
        questions: &[String],
        sampling: Option<Sampling>,
    ) -> Result<EnsembleScores, AlmError> {
        AlmScorer::score_ensemble(self, utterance, method, questions, sampling)
    }
}
