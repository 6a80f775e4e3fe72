//! The small interface each model family implements. A family turns audio into what
//! its decoder consumes and a question into input ids, runs the prompt pass, and
//! steps its KV cache one token at a time; everything else (input checks, label
//! readout, the generation loop, ensembles and sampling) is the same for every family
//! and lives once in [`super::answer`].

use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use burn::prelude::*;

use super::{AlmError, AlmOptions};
use crate::scorer::Form;
use crate::tokenizer::HfTokenizer;
use crate::whisper_runner::StageTimes;

/// Each utterance's logits of the asked vocabulary rows, with its prompt length.
pub(crate) type Rows = Result<Vec<(Vec<f32>, usize)>, AlmError>;

/// What a family is opened with.
pub(crate) struct Opening<'a> {
    /// The model directory.
    pub dir: &'a Path,
    /// The question (chat) or answer prefix (Whisper) the prompt is built from.
    pub question: &'a str,
    /// Quantisation and padding options.
    pub options: &'a AlmOptions,
    /// Where the weights go.
    pub device: &'a Device,
}

/// One model family (Whisper, Qwen2-Audio, Voxtral) opened from a directory.
pub(crate) trait Family: Send + Sync {
    /// The tokenizer (label verbalisers, decoding answers).
    fn tokenizer(&self) -> &HfTokenizer;

    /// Label surface forms when the options name none: where the label word stands
    /// after the family's prompt.
    fn default_forms(&self) -> Vec<Form>;

    /// The rendered chat prompt with a single audio placeholder, for chat models.
    fn prompt_text(&self) -> Option<&str> {
        None
    }

    /// Model input ids for the question the model was opened with and an utterance of
    /// `samples` samples.
    fn input_ids(&self, samples: usize) -> Result<Vec<u32>, AlmError>;

    /// Model input ids for any `question`; equal to [`input_ids`](Self::input_ids) for
    /// the model's own question.
    fn question_ids(&self, question: &str, samples: usize) -> Result<Vec<u32>, AlmError>;

    /// An utterance's audio as the decoder consumes it, `[1, n, d]` (Whisper's encoder
    /// states, or a chat model's audio embeddings); adds feature and encoder time.
    fn encode(&self, utterance: &[f32], times: &mut StageTimes) -> Result<Tensor<3>, AlmError>;

    /// Feeds the prompt `ids` with the encoded `audio`: the last position's logits and
    /// the decoder, ready to continue.
    fn prompt_pass(
        &self,
        audio: &Tensor<3>,
        ids: &[u32],
    ) -> Result<(Vec<f32>, Box<dyn Decoding + '_>), AlmError>;

    /// Largest `first-token` batch that runs as one forward pass.
    fn natural_batch(&self) -> usize {
        1
    }

    /// The logits of vocabulary `rows` at the answer position of the model's own
    /// question, with the prompt length, for each utterance. By default one utterance
    /// at a time through [`encode`](Self::encode) and [`prompt_pass`](Self::prompt_pass);
    /// a family that can batch, or compute only those rows, does so.
    fn answer_rows(&self, utterances: &[&[f32]], rows: &[u32], times: &mut StageTimes) -> Rows {
        let mut out = Vec::with_capacity(utterances.len());
        for u in utterances {
            let ids = self.input_ids(u.len())?;
            let audio = self.encode(u, times)?;
            let t = Instant::now();
            let (last, _) = self.prompt_pass(&audio, &ids)?;
            times.decoder += t.elapsed();
            // A row past the vocabulary is NaN, which the readout names by label.
            let picked = rows
                .iter()
                .map(|&r| last.get(r as usize).copied().unwrap_or(f32::NAN))
                .collect();
            out.push((picked, ids.len()));
        }
        Ok(out)
    }
}

/// A decoder after its prompt pass.
pub(crate) trait Decoding {
    /// Feeds `token` and returns the next position's vocabulary logits.
    fn step(&mut self, token: u32) -> Result<Vec<f32>, AlmError>;

    /// An independent copy of the state (each sampled answer continues its own).
    fn fork(&self) -> Box<dyn Decoding + '_>;
}

/// Feeds one token through a family's decoder, updating its KV cache `C`.
pub(crate) type StepFn<'a, C> = Rc<dyn Fn(&mut C, u32) -> Result<Vec<f32>, AlmError> + 'a>;

/// A decoder as every family has one: its KV cache and how to step it. Forking
/// clones the cache.
pub(crate) struct CachedDecoding<'a, C> {
    /// The cache after the prompt (and the tokens fed since).
    pub cache: C,
    /// One decoder step.
    pub step: StepFn<'a, C>,
}

impl<C: Clone> Decoding for CachedDecoding<'_, C> {
    fn step(&mut self, token: u32) -> Result<Vec<f32>, AlmError> {
        (self.step)(&mut self.cache, token)
    }

    fn fork(&self) -> Box<dyn Decoding + '_> {
        Box::new(CachedDecoding {
            cache: self.cache.clone(),
            step: Rc::clone(&self.step),
        })
    }
}

/// The single row of a `[1, vocab]` tensor.
pub(crate) fn vector(logits: Tensor<2>) -> Result<Vec<f32>, AlmError> {
    logits
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| AlmError::Invalid(format!("reading logits: {e:?}")))
}

/// The last position's logits of `[1, t, vocab]`.
pub(crate) fn last_row(logits: Tensor<3>) -> Result<Vec<f32>, AlmError> {
    let [_, t, _] = logits.dims();
    logits
        .slice(s![0..1, t - 1..t, ..])
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| AlmError::Invalid(format!("reading logits: {e:?}")))
}
