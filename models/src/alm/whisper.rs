//! The Whisper family (`WhisperForConditionalGeneration`): the question is an answer
//! prefix after Whisper's decoder prompt, the label word the next token. `first-token`
//! runs a padded batch in one encoder and one decoder pass, computing only the label
//! rows of the output projection.

use std::rc::Rc;

use burn::prelude::*;

use super::family::{CachedDecoding, Decoding, Family, Opening, Rows, vector};
use super::{AlmError, truncate_30s};
use crate::mel::Padding;
use crate::scorer::Form;
use crate::tokenizer::{HfTokenizer, TokenText};
use crate::whisper::{DecoderCache, token_tensor};
use crate::whisper_runner::{StageTimes, WhisperRunner};

/// Padded utterances scored in one forward pass.
const BATCH: usize = 8;

/// A Whisper model with its decoder prompt.
pub(crate) struct WhisperFamily {
    runner: WhisperRunner,
    /// The decoder prompt before the question's tokens, so that other questions can be
    /// asked without reloading.
    prefix: Vec<u32>,
}

impl WhisperFamily {
    /// Loads `dir` with `question` as the answer prefix.
    pub(crate) fn open(how: &Opening<'_>) -> Result<Self, AlmError> {
        let question = how.question;
        let q8 = how.options.quantize;
        let mut runner = WhisperRunner::load_with(how.dir, question, how.device, q8)?;
        if !how.options.pad_whisper {
            runner = runner.unpadded();
        }
        if q8 {
            tracing::info!("weights quantised to q8 while loading");
        }
        let asked = runner.tokenizer().encode(question)?.len();
        let prompt = runner.prompt();
        let prefix = prompt[..prompt.len().saturating_sub(asked)].to_vec();
        Ok(Self { runner, prefix })
    }
}

impl Family for WhisperFamily {
    fn tokenizer(&self) -> &HfTokenizer {
        self.runner.tokenizer()
    }

    fn default_forms(&self) -> Vec<Form> {
        vec![Form::Space, Form::SpaceCapital]
    }

    fn input_ids(&self, _samples: usize) -> Result<Vec<u32>, AlmError> {
        Ok(self.runner.prompt().to_vec())
    }

    fn question_ids(&self, question: &str, _samples: usize) -> Result<Vec<u32>, AlmError> {
        let mut ids = self.prefix.clone();
        ids.extend(self.runner.tokenizer().encode(question)?);
        Ok(ids)
    }

    fn encode(&self, utterance: &[f32], times: &mut StageTimes) -> Result<Tensor<3>, AlmError> {
        Ok(self.runner.encode(&[truncate_30s(utterance)], times)?)
    }

    fn prompt_pass(
        &self,
        audio: &Tensor<3>,
        ids: &[u32],
    ) -> Result<(Vec<f32>, Box<dyn Decoding + '_>), AlmError> {
        let decoder = &self.runner.model().decoder;
        let mut cache = decoder.start(audio.clone());
        let device = audio.device();
        let logits = decoder.forward_last(token_tensor(ids, &device), &mut cache)?;
        let state = CachedDecoding {
            cache,
            step: Rc::new(move |cache: &mut DecoderCache, token| {
                let input = token_tensor(&[token], &device);
                vector(decoder.forward_last(input, cache)?)
            }),
        };
        Ok((vector(logits)?, Box::new(state)))
    }

    fn natural_batch(&self) -> usize {
        match self.runner.padding() {
            Padding::Chunk => BATCH,
            Padding::None => 1,
        }
    }

    fn answer_rows(&self, utterances: &[&[f32]], rows: &[u32], times: &mut StageTimes) -> Rows {
        let prompt_tokens = self.runner.prompt().len();
        let mut out = Vec::with_capacity(utterances.len());
        for chunk in utterances.chunks(self.natural_batch()) {
            let truncated: Vec<&[f32]> = chunk.iter().map(|u| truncate_30s(u)).collect();
            let (logits, t) = self.runner.answer_rows(&truncated, Some(rows))?;
            times.features += t.features;
            times.encoder += t.encoder;
            times.decoder += t.decoder;
            out.extend(logits.into_iter().map(|l| (l, prompt_tokens)));
        }
        Ok(out)
    }
}
