//! The live pipeline's [`Scorer`] over a remote model. Forks share the model, its
//! client and runtime: a pool of N workers keeps at most N requests in flight.

use std::sync::Arc;

use super::RemoteModel;
use crate::model_scorer::{ScoredBatch, to_scores};
use crate::scoring::{ScoreError, Scorer, Scores};
use crate::utterance::Utterance;

/// [`Scorer`] that sends each utterance to the server.
pub struct RemoteScorer {
    model: Arc<RemoteModel>,
    method: &'static str,
}

impl RemoteScorer {
    /// Wraps an opened remote model.
    pub fn new(model: RemoteModel) -> Self {
        Self {
            method: model.method().as_str(),
            model: Arc::new(model),
        }
    }
}

impl Scorer for RemoteScorer {
    fn model(&self) -> &str {
        self.model.id()
    }

    fn method(&self) -> &str {
        self.method
    }

    /// `remote: host:port`: the session log and the dashboard say where audio goes.
    fn device(&self) -> &str {
        self.model.device()
    }

    fn labels(&self) -> &[String] {
        self.model.labels()
    }

    /// Failures (server down, overloaded, bad answers) come back as errors with the
    /// reason: the pipeline skips the utterance with it, counts it and goes on; the
    /// next utterance tries the server again.
    fn score(&mut self, batch: &[Arc<Utterance>]) -> Result<Vec<Scores>, ScoreError> {
        let started = std::time::Instant::now();
        let audio: Vec<&[f32]> = batch.iter().map(|u| &u.samples[..]).collect();
        let utterances = self
            .model
            .score(&audio)
            .map_err(|e| ScoreError(format!("remote scoring failed: {e}")))?;
        to_scores(ScoredBatch {
            utterances,
            times: Default::default(),
            total: started.elapsed(),
        })
    }

    fn fork(&self) -> Option<Box<dyn Scorer>> {
        Some(Box::new(Self {
            model: Arc::clone(&self.model),
            method: self.method,
        }))
    }
}
