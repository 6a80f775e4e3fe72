//! What the chat families (Qwen2-Audio, Voxtral) share: the prompt is the directory's
//! chat template rendered with one audio item and the question, its single audio
//! placeholder expanded to as many placeholders as the audio yields embeddings, and
//! the text tokenized without adding special tokens — as transformers' processors
//! build `input_ids`. The families differ only in features, audio encoder and how
//! many embeddings a length of audio yields ([`ChatModel`]).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use burn::prelude::*;

use super::AlmError;
use super::family::{CachedDecoding, Decoding, Family, Opening, last_row};
use super::setup::{check_vocab, load_tokenizer, mel_for, template_or, token_text};
use crate::chat::ChatTemplate;
use crate::mel::MelExtractor;
use crate::qwen2::{Qwen2, Qwen2Cache};
use crate::scorer::Form;
use crate::tokenizer::{HfTokenizer, TokenText};
use crate::whisper::token_tensor;
use crate::whisper_runner::StageTimes;

/// An audio encoder in front of a Qwen2/Llama decoder.
pub(crate) trait ChatModel: burn::module::Module + Send + Sync + Sized {
    /// The family's name in messages.
    const NAME: &'static str;
    /// transformers' default chat template, used when the directory has none.
    const TEMPLATE: &'static str;

    /// Loads the weights: the model, its text vocabulary size, audio placeholder token
    /// id and mel bins.
    fn load(dir: &Path, device: &Device) -> Result<(Self, ChatDims), AlmError>;

    /// Audio embeddings an utterance of `samples` samples yields.
    fn audio_tokens(samples: usize) -> Result<usize, AlmError>;

    /// The utterance's log-mel features as the processor computes them, and the valid
    /// frame count the encoder masks by (0 when unused).
    fn features(mel: &MelExtractor, utterance: &[f32]) -> Result<(TensorData, usize), AlmError>;

    /// Audio embeddings `[tokens, d]` of the features.
    fn encode_audio(&self, features: Tensor<3>, valid: usize) -> Result<Tensor<2>, AlmError>;

    /// Logits `[1, t, vocab]` of the prompt `ids` with `audio` spliced in at its
    /// placeholders.
    fn forward(
        &self,
        ids: &[u32],
        audio: Tensor<2>,
        cache: &mut Qwen2Cache,
    ) -> Result<Tensor<3>, AlmError>;

    /// The decoder that continues the answer.
    fn language_model(&self) -> &Qwen2;
}

/// What the chat layer needs from a model's config.json.
pub(crate) struct ChatDims {
    /// Text vocabulary size (rows of the embedding table).
    pub vocab_size: usize,
    /// The audio placeholder token id.
    pub audio_token: u32,
    /// Mel bins of the audio encoder.
    pub n_mels: usize,
}

/// A chat model opened from a directory with its prompt.
pub(crate) struct AudioChat<M> {
    model: M,
    mel: MelExtractor,
    tokenizer: HfTokenizer,
    template: ChatTemplate,
    prompt_text: String,
    audio_token: String,
    dir: PathBuf,
    device: Device,
}

impl<M: ChatModel> AudioChat<M> {
    /// Loads `dir` and renders the prompt for `question`.
    pub(crate) fn open(how: &Opening<'_>) -> Result<Self, AlmError> {
        let Opening {
            dir,
            question,
            options,
            device,
        } = *how;
        let tokenizer = load_tokenizer(dir)?;
        let (model, dims) = M::load(dir, device)?;
        check_vocab(&tokenizer, dims.vocab_size, dir)?;
        let model = if options.quantize {
            let (model, n) = crate::quant::quantize_linears(model, device);
            tracing::info!(matrices = n, "weights quantised to q8");
            model
        } else {
            model
        };
        let mut chat = Self {
            mel: mel_for(dir, dims.n_mels)?,
            template: template_or(dir, M::TEMPLATE, M::NAME)?,
            audio_token: token_text(&tokenizer, dims.audio_token, dir)?,
            tokenizer,
            model,
            prompt_text: String::new(),
            dir: dir.to_path_buf(),
            device: device.clone(),
        };
        chat.prompt_text = chat.prompt_with_audio(question)?;
        Ok(chat)
    }

    /// The chat prompt for `question` with its single audio placeholder.
    fn prompt_with_audio(&self, question: &str) -> Result<String, AlmError> {
        let text = self.template.render_audio_question(question)?;
        let n = text.matches(self.audio_token.as_str()).count();
        if n != 1 {
            return Err(AlmError::Invalid(format!(
                "{}: the chat prompt for {question:?} has {n} audio placeholders `{}`, expected 1:\n{text}",
                self.dir.display(),
                self.audio_token
            )));
        }
        Ok(text)
    }

    /// Input ids of `prompt` with the placeholder expanded for `samples` samples.
    fn expand(&self, prompt: &str, samples: usize) -> Result<Vec<u32>, AlmError> {
        let audio = self.audio_token.repeat(M::audio_tokens(samples)?);
        Ok(self
            .tokenizer
            .encode(&prompt.replace(&self.audio_token, &audio))?)
    }
}

impl<M: ChatModel> Family for AudioChat<M> {
    fn tokenizer(&self) -> &HfTokenizer {
        &self.tokenizer
    }

    fn default_forms(&self) -> Vec<Form> {
        vec![Form::Plain, Form::Capital]
    }

    fn prompt_text(&self) -> Option<&str> {
        Some(&self.prompt_text)
    }

    fn input_ids(&self, samples: usize) -> Result<Vec<u32>, AlmError> {
        self.expand(&self.prompt_text, samples)
    }

    fn question_ids(&self, question: &str, samples: usize) -> Result<Vec<u32>, AlmError> {
        self.expand(&self.prompt_with_audio(question)?, samples)
    }

    fn encode(&self, utterance: &[f32], times: &mut StageTimes) -> Result<Tensor<3>, AlmError> {
        let t = Instant::now();
        let (features, valid) = M::features(&self.mel, utterance)?;
        let features = Tensor::from_data(features, &self.device);
        times.features += t.elapsed();
        let t = Instant::now();
        let audio = self.model.encode_audio(features, valid)?;
        times.encoder += t.elapsed();
        let [n, d] = audio.dims();
        Ok(audio.reshape([1, n, d]))
    }

    fn prompt_pass(
        &self,
        audio: &Tensor<3>,
        ids: &[u32],
    ) -> Result<(Vec<f32>, Box<dyn Decoding + '_>), AlmError> {
        let [_, n, d] = audio.dims();
        let mut cache = Qwen2Cache::default();
        let logits = self
            .model
            .forward(ids, audio.clone().reshape([n, d]), &mut cache)?;
        let lm = self.model.language_model();
        let device = audio.device();
        let state = CachedDecoding {
            cache,
            step: Rc::new(move |cache: &mut Qwen2Cache, token| {
                let logits = lm
                    .forward(token_tensor(&[token], &device), cache)
                    .map_err(|e| AlmError::Invalid(e.to_string()))?;
                last_row(logits)
            }),
        };
        Ok((last_row(logits)?, Box::new(state)))
    }
}
