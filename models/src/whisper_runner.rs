//! Audio in, label distribution out, for Whisper-family models: log-mel front end,
//! encoder, one decoder pass over a fixed prompt, `first-token` scoring. This is the
//! glue the CLI and the worker pool call; each stage is timed so callers can report
//! per-stage latency.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::prelude::*;

use crate::mel::{MelConfig, MelError, MelExtractor, Padding};
use crate::scorer::{FirstTokenScorer, Form, LabelScores, ReadoutError, Verbaliser};
use crate::tokenizer::{HfTokenizer, TokenText, TokenizerError};
use crate::whisper::{Whisper, WhisperError};

/// Errors of the scoring pipeline.
#[derive(Debug, thiserror::Error)]
pub enum WhisperRunnerError {
    /// Model loading or inference failed.
    #[error(transparent)]
    Model(#[from] WhisperError),
    /// Front end failed.
    #[error(transparent)]
    Mel(#[from] MelError),
    /// Tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Scoring failed.
    #[error(transparent)]
    Score(#[from] ReadoutError),
    /// The model directory lacks something the pipeline needs.
    #[error("{0}")]
    Setup(String),
}

/// Time spent per stage for one call (a batch).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Log-mel features.
    pub features: Duration,
    /// Audio encoder.
    pub encoder: Duration,
    /// Decoder pass(es) over the prompt.
    pub decoder: Duration,
}

/// A Whisper model, its front end and tokenizer, with a fixed emotion prompt.
#[derive(Debug)]
pub struct WhisperRunner {
    model: Whisper,
    mel: MelExtractor,
    tokenizer: HfTokenizer,
    prompt: Vec<u32>,
    padding: Padding,
    device: Device,
}

impl WhisperRunner {
    /// Loads a HF Whisper directory (config.json, safetensors, tokenizer.json and, if
    /// present, preprocessor_config.json). The prompt starts with Whisper's decoder
    /// prefix (`<|startoftranscript|>`, then `<|en|><|transcribe|>` when the vocabulary
    /// has them, then `<|notimestamps|>`) followed by `prompt_text`.
    pub fn load(
        dir: &Path,
        prompt_text: &str,
        device: &Device,
    ) -> Result<Self, WhisperRunnerError> {
        Self::load_with(dir, prompt_text, device, false)
    }

    /// [`load`](Self::load), with the weights quantised for `--quant q8` as they are
    /// read when `q8` ([`Whisper::load_with`]): what [`quantize`](Self::quantize) after
    /// `load` gives, without holding the f32 weights first.
    pub fn load_with(
        dir: &Path,
        prompt_text: &str,
        device: &Device,
        q8: bool,
    ) -> Result<Self, WhisperRunnerError> {
        let model = Whisper::load_with(dir, device, q8)?;
        let mel_config = MelConfig::for_model_dir(dir, model.config.num_mel_bins)?;
        let mel = MelExtractor::new(mel_config)?;
        let tokenizer = HfTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let special = |t: &str| tokenizer.token_id(t);
        let sot = special("<|startoftranscript|>").ok_or_else(|| {
            WhisperRunnerError::Setup(format!("{}: no <|startoftranscript|> token", dir.display()))
        })?;
        let mut prompt = vec![sot];
        if let (Some(en), Some(task)) = (special("<|en|>"), special("<|transcribe|>"))
            && model.config.vocab_size > en.max(task) as usize
        {
            prompt.extend([en, task]);
        }
        prompt.extend(special("<|notimestamps|>"));
        prompt.extend(tokenizer.encode(prompt_text)?);
        Ok(Self {
            model,
            mel,
            tokenizer,
            prompt,
            padding: Padding::Chunk,
            device: device.clone(),
        })
    }

    /// Uses unpadded features (faster; not what Whisper was trained on, so scores differ
    /// from the padded reference).
    pub fn unpadded(mut self) -> Self {
        self.padding = Padding::None;
        self
    }

    /// Quantises linear weights to 8 bits (see [`crate::quant`]: the encoder's to the
    /// grouped int8 kernels on the CPU, encoder's and decoder's to burn's blocks
    /// elsewhere); returns how many matrices were quantised.
    pub fn quantize(&mut self) -> usize {
        crate::quant::quantize_whisper(&mut self.model, &self.device)
    }

    /// The decoder prompt token ids.
    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    /// The tokenizer (to build verbalisers).
    pub fn tokenizer(&self) -> &HfTokenizer {
        &self.tokenizer
    }

    /// The model.
    pub fn model(&self) -> &Whisper {
        &self.model
    }

    /// Vocabulary logits at the answer position for each utterance (16 kHz mono).
    /// Padded utterances are encoded and decoded as one batch; unpadded ones one by one.
    pub fn answer_logits(
        &self,
        utterances: &[&[f32]],
    ) -> Result<(Vec<Vec<f32>>, StageTimes), WhisperRunnerError> {
        self.answer_rows(utterances, None)
    }

    /// [`answer_logits`](Self::answer_logits) restricted to the vocabulary `rows` (in
    /// that order) when given: a `first-token` readout needs only its label tokens'
    /// rows of the output projection.
    pub fn answer_rows(
        &self,
        utterances: &[&[f32]],
        rows: Option<&[u32]>,
    ) -> Result<(Vec<Vec<f32>>, StageTimes), WhisperRunnerError> {
        let mut times = StageTimes::default();
        let mut out = Vec::with_capacity(utterances.len());
        let groups: Vec<&[&[f32]]> = match self.padding {
            Padding::Chunk => vec![utterances],
            Padding::None => utterances.chunks(1).collect(),
        };
        for group in groups {
            if group.is_empty() {
                continue;
            }
            let enc = self.encode(group, &mut times)?;
            let t = Instant::now();
            out.extend(match rows {
                Some(rows) => self.model.answer_rows(enc, &self.prompt, rows)?,
                None => self.model.answer_logits(enc, &self.prompt)?,
            });
            times.decoder += t.elapsed();
        }
        Ok((out, times))
    }

    /// Encoder states `[utterances, frames, d]` of a non-empty group of utterances (all
    /// the same length after padding, or a single one when unpadded); adds the feature and
    /// encoder time to `times`.
    pub fn encode(
        &self,
        group: &[&[f32]],
        times: &mut StageTimes,
    ) -> Result<Tensor<3>, WhisperRunnerError> {
        let feats = self.features(group, times)?;
        let t = Instant::now();
        let enc = self.model.encode(feats)?;
        times.encoder += t.elapsed();
        Ok(enc)
    }

    /// Log-mel features `[utterances, n_mels, frames]` of a non-empty group of
    /// utterances, as [`encode`](Self::encode) feeds them to the encoder; adds the
    /// feature time to `times`.
    pub fn features(
        &self,
        group: &[&[f32]],
        times: &mut StageTimes,
    ) -> Result<Tensor<3>, WhisperRunnerError> {
        let t = Instant::now();
        let mut data = Vec::new();
        let mut frames = None;
        for samples in group {
            let m = self.mel.compute(samples, self.padding)?;
            if frames.is_some_and(|f| f != m.n_frames) {
                return Err(WhisperRunnerError::Setup(
                    "unpadded utterances of different lengths cannot share a batch".into(),
                ));
            }
            frames = Some(m.n_frames);
            data.extend(m.data);
        }
        let feats = Tensor::from_data(
            TensorData::new(
                data,
                [group.len(), self.mel.config().n_mels, frames.unwrap_or(0)],
            ),
            &self.device,
        );
        times.features += t.elapsed();
        Ok(feats)
    }

    /// The compute device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether features are padded to Whisper's 30 s chunk.
    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// `first-token` scores of each utterance over `labels` (forms: leading space, lower
    /// case and capitalised), softmax at `temperature`.
    pub fn score_first_token<S: AsRef<str>>(
        &self,
        utterances: &[&[f32]],
        labels: &[S],
        temperature: f32,
    ) -> Result<(Vec<LabelScores>, StageTimes), WhisperRunnerError> {
        let verbaliser =
            Verbaliser::new(labels, &[Form::Space, Form::SpaceCapital], &self.tokenizer)?;
        let scorer = FirstTokenScorer::new(verbaliser, temperature)?;
        let tokens = scorer.readout_tokens();
        let (logits, times) = self.answer_rows(utterances, Some(&tokens))?;
        let scores = logits
            .iter()
            .map(|l| scorer.score_rows(&tokens, l))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((scores, times))
    }
}
