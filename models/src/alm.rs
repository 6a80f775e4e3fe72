//! One entry point for every supported audio-language model: open a Hugging Face
//! directory (or a cached model id), detect the family from `config.json`'s
//! `architectures`, and score batches of 16 kHz utterances with any method.
//!
//! | `architectures[0]` | model | prompt |
//! |---|---|---|
//! | `WhisperForConditionalGeneration` | [`WhisperPipeline`] | decoder prefix + `prompt` (an answer prefix such as " The speaker sounds") |
//! | `Qwen2AudioForConditionalGeneration` | [`Qwen2Audio`] | the directory's chat template (else transformers' default Qwen2-Audio template), audio first, then the question |
//! | `VoxtralForConditionalGeneration` | [`Voxtral`] | the directory's chat template (else [`VOXTRAL_TEMPLATE`]) |
//!
//! Chat prompts are built as transformers' processors build them: the template is
//! rendered with one audio item, then the single audio placeholder is replaced by as
//! many placeholders as the audio yields embeddings, and the text is tokenized without
//! adding special tokens. So the `input_ids` here equal
//! `processor(text=processor.apply_chat_template(conv, add_generation_prompt=True,
//! tokenize=False), audio=…)`'s.
//!
//! Methods (see [`crate::scorer`]): `first-token` reads the answer position of one
//! forward pass; `token-average` and `text` decode greedily (at most
//! [`AlmOptions::max_new_tokens`], stopping at the model's end-of-turn token).
//! Whisper's `first-token` runs a whole batch in one encoder and one decoder pass; the
//! chat models and the generating methods go one utterance at a time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::prelude::*;
use serde_json::Value;

use crate::chat::{ChatError, ChatTemplate, QWEN2_AUDIO_TEMPLATE, VOXTRAL_TEMPLATE};
use crate::hub::{self, HubError};
use crate::mel::{MelConfig, MelError, MelExtractor, Padding};
use crate::pipeline::{PipelineError, StageTimes, WhisperPipeline};
use crate::qwen2::{Qwen2, Qwen2Cache};
use crate::qwen2_audio::{AudioLengths, Qwen2Audio, Qwen2AudioError};
use crate::safetensors_load::{LoadError, read_json};
use crate::scorer::{
    FirstTokenScorer, Form, LabelScores, Method, SampleRng, ScoreError, TokenAverageScorer,
    Unparseable, Verbaliser, parse_distribution, sample_index,
};
use crate::tokenizer::{HfTokenizer, TokenText, TokenizerError};
use crate::voxtral::Voxtral;
use crate::whisper::DecoderCache;

/// The default label set (DESIGN.md, "Scoring an utterance").
pub const DEFAULT_LABELS: [&str; 7] = [
    "neutral", "happy", "sad", "angry", "fear", "disgust", "surprise",
];

/// Whisper's default answer prefix: the label word is the next token.
pub const WHISPER_PROMPT: &str = " The speaker sounds";

/// Input audio rate of every supported model.
pub const SAMPLE_RATE: usize = 16_000;

/// Shortest utterance accepted (0.1 s): shorter input has too few mel frames for the
/// audio encoders' convolutions and pooling.
pub const MIN_SAMPLES: usize = SAMPLE_RATE / 10;

/// Errors of opening a model or scoring with it.
#[derive(Debug, thiserror::Error)]
pub enum AlmError {
    /// The model could not be located.
    #[error(transparent)]
    Hub(Box<HubError>),
    /// config.json names an architecture emomon does not implement.
    #[error(
        "{path}: architecture {found} is not supported; emomon runs WhisperForConditionalGeneration, \
         Qwen2AudioForConditionalGeneration and VoxtralForConditionalGeneration"
    )]
    Architecture {
        /// The config.json read.
        path: PathBuf,
        /// What it says (or `none`).
        found: String,
    },
    /// Reading config or weights failed (missing, mis-shaped and unused tensors are named).
    #[error(transparent)]
    Load(Box<LoadError>),
    /// The Whisper pipeline failed.
    #[error(transparent)]
    Whisper(Box<PipelineError>),
    /// The Qwen2-Audio or Voxtral model failed.
    #[error(transparent)]
    Chat(Box<Qwen2AudioError>),
    /// The chat template could not be found or rendered.
    #[error(transparent)]
    Template(Box<ChatError>),
    /// Tokenizer failure.
    #[error(transparent)]
    Tokenizer(Box<TokenizerError>),
    /// Front-end failure.
    #[error(transparent)]
    Mel(Box<MelError>),
    /// Label set or scoring failure.
    #[error(transparent)]
    Score(Box<ScoreError>),
    /// Anything else that is wrong with the directory or the input.
    #[error("{0}")]
    Invalid(String),
}

// Boxed so that `Result<_, AlmError>` stays small (clippy::result_large_err); `?` still
// converts every source error.
macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for AlmError {
            fn from(e: $ty) -> Self {
                Self::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(
    Hub(HubError),
    Load(LoadError),
    Whisper(PipelineError),
    Chat(Qwen2AudioError),
    Template(ChatError),
    Tokenizer(TokenizerError),
    Mel(MelError),
    Score(ScoreError),
);

/// Which model family a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `WhisperForConditionalGeneration`.
    Whisper,
    /// `Qwen2AudioForConditionalGeneration`.
    Qwen2Audio,
    /// `VoxtralForConditionalGeneration`.
    Voxtral,
}

impl Architecture {
    /// Reads `config.json`'s `architectures` in `dir`.
    pub fn detect(dir: &Path) -> Result<Self, AlmError> {
        let path = dir.join("config.json");
        if !dir.is_dir() {
            return Err(AlmError::Invalid(format!(
                "{}: model directory does not exist",
                dir.display()
            )));
        }
        let config: Value = read_json(&path)?;
        let names: Vec<&str> = config
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for name in &names {
            match *name {
                "WhisperForConditionalGeneration" => return Ok(Self::Whisper),
                "Qwen2AudioForConditionalGeneration" => return Ok(Self::Qwen2Audio),
                "VoxtralForConditionalGeneration" => return Ok(Self::Voxtral),
                _ => {}
            }
        }
        Err(AlmError::Architecture {
            path,
            found: if names.is_empty() {
                "none (no `architectures` list)".into()
            } else {
                names.join(", ")
            },
        })
    }

    /// The HF class name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whisper => "WhisperForConditionalGeneration",
            Self::Qwen2Audio => "Qwen2AudioForConditionalGeneration",
            Self::Voxtral => "VoxtralForConditionalGeneration",
        }
    }
}

/// How to score.
#[derive(Debug, Clone)]
pub struct AlmOptions {
    /// Scoring method.
    pub method: Method,
    /// Labels, in output order.
    pub labels: Vec<String>,
    /// Replaces the question (chat models) or the answer prefix (Whisper); `None` = the
    /// default for the method (see [`default_question`]).
    pub prompt: Option<String>,
    /// Softmax temperature of `first-token` (> 0).
    pub temperature: f32,
    /// Most tokens generated by `token-average` and `text`.
    pub max_new_tokens: usize,
    /// Label surface forms; `None` = by family: `" x"`, `" X"` after Whisper's prefix,
    /// `"x"`, `"X"` at the start of a chat answer.
    pub forms: Option<Vec<Form>>,
    /// Whisper only: pad features to 30 s as Whisper was trained (and transformers does
    /// by default). `false` is faster and changes the scores.
    pub pad_whisper: bool,
    /// Store `Linear` weights as 8-bit blocks ([`crate::quant`]).
    pub quantize: bool,
}

impl Default for AlmOptions {
    fn default() -> Self {
        Self {
            method: Method::FirstToken,
            labels: DEFAULT_LABELS.iter().map(|s| s.to_string()).collect(),
            prompt: None,
            temperature: 1.0,
            max_new_tokens: 16,
            forms: None,
            pad_whisper: true,
            quantize: false,
        }
    }
}

/// The question asked when no `--prompt` is given.
pub fn default_question(arch: Architecture, method: Method, labels: &[String]) -> String {
    if arch == Architecture::Whisper {
        return WHISPER_PROMPT.to_string();
    }
    let list = labels.join(", ");
    match method {
        Method::Text => format!(
            "How strongly does the speaker express each of these emotions: {list}? \
             Answer only with percentages that sum to 100, like \"{} 60%, {} 40%\".",
            labels.first().map_or("happy", String::as_str),
            labels.get(1).map_or("sad", String::as_str)
        ),
        _ => format!("Which emotion does the speaker express: {list}? Answer with one word."),
    }
}

/// One utterance's result.
#[derive(Debug, Clone)]
pub struct UtteranceScore {
    /// The distribution, or why the generated text could not be read (`text` only).
    pub scores: Result<LabelScores, Unparseable>,
    /// Generated answer (`token-average`, `text`): token ids and their text.
    pub generated: Option<(Vec<u32>, String)>,
    /// Length of the model input (prompt with audio placeholders), tokens.
    pub prompt_tokens: usize,
}

/// Results of one batch, in input order, with per-stage times.
#[derive(Debug, Clone)]
pub struct BatchScores {
    /// One per utterance.
    pub utterances: Vec<UtteranceScore>,
    /// Time per stage, summed over the batch.
    pub times: StageTimes,
    /// Wall time of the whole call.
    pub total: Duration,
}

enum Family {
    Whisper(WhisperPipeline),
    Qwen2Audio {
        model: Qwen2Audio,
        mel: MelExtractor,
        tokenizer: HfTokenizer,
        template: ChatTemplate,
        prompt_text: String,
        audio_token: String,
    },
    Voxtral {
        model: Voxtral,
        mel: MelExtractor,
        tokenizer: HfTokenizer,
        template: ChatTemplate,
        prompt_text: String,
        audio_token: String,
    },
}

/// An opened model with its tokenizer, prompt and scorer, ready to score audio.
pub struct AlmScorer {
    id: String,
    dir: PathBuf,
    arch: Architecture,
    family: Family,
    options: AlmOptions,
    question: String,
    first_token: FirstTokenScorer,
    token_average: TokenAverageScorer,
    eos: Vec<u32>,
    /// Whisper: the decoder prompt before the question's tokens (so that other
    /// questions can be asked without reloading); empty for chat models.
    whisper_prefix: Vec<u32>,
    device: Device,
}

impl std::fmt::Debug for AlmScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlmScorer")
            .field("id", &self.id)
            .field("arch", &self.arch)
            .field("method", &self.options.method)
            .finish_non_exhaustive()
    }
}

impl AlmScorer {
    /// Opens `spec` (a directory, or an `org/name[@rev]` id already in the hf-hub
    /// cache) on `device`, checks the label set against its tokenizer and builds the
    /// prompt. Nothing is downloaded.
    pub fn open(spec: &str, options: AlmOptions, device: &Device) -> Result<Self, AlmError> {
        let dir = hub::resolve_model(spec, hub::cache_dir().as_deref())?;
        let arch = Architecture::detect(&dir)?;
        if !(options.temperature.is_finite() && options.temperature > 0.0) {
            return Err(ScoreError::Temperature(options.temperature).into());
        }
        if options.method != Method::FirstToken && options.max_new_tokens == 0 {
            return Err(AlmError::Invalid(format!(
                "{} needs at least one generated token (max_new_tokens is 0)",
                options.method
            )));
        }
        let question = options
            .prompt
            .clone()
            .unwrap_or_else(|| default_question(arch, options.method, &options.labels));
        let family = match arch {
            Architecture::Whisper => {
                let mut p = WhisperPipeline::load(&dir, &question, device)?;
                if !options.pad_whisper {
                    p = p.unpadded();
                }
                if options.quantize {
                    let n = p.quantize();
                    tracing::info!(matrices = n, "weights quantised to q8");
                }
                Family::Whisper(p)
            }
            Architecture::Qwen2Audio => {
                let tokenizer = load_tokenizer(&dir)?;
                let (config, model) = Qwen2Audio::load(&dir, device)?;
                check_vocab(&tokenizer, config.text_config.vocab_size, &dir)?;
                let model = maybe_quantize(model, options.quantize, device);
                let template = template_or(&dir, QWEN2_AUDIO_TEMPLATE, "Qwen2-Audio")?;
                let audio_token = token_text(&tokenizer, config.audio_token_index, &dir)?;
                let prompt_text = template.render_audio_question(&question)?;
                Family::Qwen2Audio {
                    mel: mel_for(&dir, config.audio_config.num_mel_bins)?,
                    model,
                    tokenizer,
                    template,
                    prompt_text,
                    audio_token,
                }
            }
            Architecture::Voxtral => {
                let tokenizer = load_tokenizer(&dir)?;
                let (config, model) = Voxtral::load(&dir, device)?;
                check_vocab(&tokenizer, config.text_config.vocab_size, &dir)?;
                let model = maybe_quantize(model, options.quantize, device);
                let template = template_or(&dir, VOXTRAL_TEMPLATE, "Voxtral")?;
                let audio_token = token_text(&tokenizer, config.audio_token_id, &dir)?;
                let prompt_text = template.render_audio_question(&question)?;
                Family::Voxtral {
                    mel: mel_for(&dir, config.audio_config.num_mel_bins)?,
                    model,
                    tokenizer,
                    template,
                    prompt_text,
                    audio_token,
                }
            }
        };
        let tokenizer: &HfTokenizer = match &family {
            Family::Whisper(p) => p.tokenizer(),
            Family::Qwen2Audio { tokenizer, .. } | Family::Voxtral { tokenizer, .. } => tokenizer,
        };
        if let Family::Qwen2Audio {
            prompt_text,
            audio_token,
            ..
        }
        | Family::Voxtral {
            prompt_text,
            audio_token,
            ..
        } = &family
        {
            let n = prompt_text.matches(audio_token.as_str()).count();
            if n != 1 {
                return Err(AlmError::Invalid(format!(
                    "{}: the chat prompt has {n} audio placeholders `{audio_token}`, expected 1:\n{prompt_text}",
                    dir.display()
                )));
            }
        }
        let forms = options.forms.clone().unwrap_or_else(|| match arch {
            Architecture::Whisper => vec![Form::Space, Form::SpaceCapital],
            _ => vec![Form::Plain, Form::Capital],
        });
        let verbaliser = Verbaliser::new(&options.labels, &forms, tokenizer)?;
        let eos = eos_tokens(&dir, arch, tokenizer)?;
        let whisper_prefix = match &family {
            Family::Whisper(p) => {
                let asked = p.tokenizer().encode(&question)?.len();
                p.prompt()[..p.prompt().len().saturating_sub(asked)].to_vec()
            }
            _ => Vec::new(),
        };
        Ok(Self {
            id: spec.to_string(),
            dir,
            arch,
            first_token: FirstTokenScorer::new(verbaliser.clone(), options.temperature)?,
            token_average: TokenAverageScorer::new(verbaliser),
            family,
            options,
            question,
            eos,
            whisper_prefix,
            device: device.clone(),
        })
    }

    /// The model as named by the caller.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The resolved model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model family.
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// The options in force.
    pub fn options(&self) -> &AlmOptions {
        &self.options
    }

    /// The question (chat models) or answer prefix (Whisper) in use.
    pub fn question(&self) -> &str {
        &self.question
    }

    /// The rendered chat prompt with a single audio placeholder (chat models), or
    /// `None` for Whisper.
    pub fn prompt_text(&self) -> Option<&str> {
        match &self.family {
            Family::Whisper(_) => None,
            Family::Qwen2Audio { prompt_text, .. } | Family::Voxtral { prompt_text, .. } => {
                Some(prompt_text)
            }
        }
    }

    /// Labels in output order.
    pub fn labels(&self) -> &[String] {
        &self.options.labels
    }

    /// The verbaliser (label → tokens).
    pub fn verbaliser(&self) -> &Verbaliser {
        self.first_token.verbaliser()
    }

    /// Tokens that end generation.
    pub fn eos_tokens(&self) -> &[u32] {
        &self.eos
    }

    /// The compute device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Largest batch that runs as one forward pass (Whisper `first-token`, padded);
    /// everything else goes one utterance at a time.
    pub fn natural_batch(&self) -> usize {
        match (&self.family, self.options.method) {
            (Family::Whisper(p), Method::FirstToken) if p.padding() == Padding::Chunk => 8,
            _ => 1,
        }
    }

    /// Model input ids for an utterance of `samples` samples (chat models: the prompt
    /// with the audio placeholder expanded; Whisper: the decoder prompt).
    pub fn input_ids(&self, samples: usize) -> Result<Vec<u32>, AlmError> {
        match &self.family {
            Family::Whisper(p) => Ok(p.prompt().to_vec()),
            Family::Qwen2Audio {
                tokenizer,
                prompt_text,
                audio_token,
                ..
            } => {
                let n = qwen2_audio_lengths(samples)?.tokens;
                Ok(tokenizer.encode(&prompt_text.replace(audio_token, &audio_token.repeat(n)))?)
            }
            Family::Voxtral {
                tokenizer,
                prompt_text,
                audio_token,
                ..
            } => {
                let n = voxtral_chunks(samples) * VOXTRAL_TOKENS_PER_CHUNK;
                Ok(tokenizer.encode(&prompt_text.replace(audio_token, &audio_token.repeat(n)))?)
            }
        }
    }

    /// Scores each utterance (16 kHz mono samples). Audio beyond 30 s is ignored by
    /// Whisper and Qwen2-Audio (as their processors truncate); Voxtral encodes every
    /// 30 s chunk.
    pub fn score(&self, utterances: &[&[f32]]) -> Result<BatchScores, AlmError> {
        let started = Instant::now();
        for (i, u) in utterances.iter().enumerate() {
            if u.len() < MIN_SAMPLES {
                return Err(AlmError::Invalid(format!(
                    "utterance {i} has {} samples ({:.3} s); at least {MIN_SAMPLES} (0.1 s at 16 kHz) are needed",
                    u.len(),
                    u.len() as f64 / SAMPLE_RATE as f64
                )));
            }
        }
        let mut times = StageTimes::default();
        let mut out = Vec::with_capacity(utterances.len());
        match (&self.family, self.options.method) {
            (Family::Whisper(p), Method::FirstToken) => {
                let prompt_tokens = p.prompt().len();
                // Only the label tokens' rows of the output projection are computed.
                let rows = self.first_token.readout_tokens();
                for chunk in utterances.chunks(self.natural_batch().max(1)) {
                    let truncated: Vec<&[f32]> = chunk.iter().map(|u| truncate_30s(u)).collect();
                    let (logits, t) = p.answer_rows(&truncated, Some(&rows))?;
                    add_times(&mut times, t);
                    for l in logits {
                        out.push(UtteranceScore {
                            scores: Ok(self.first_token.score_rows(&rows, &l)?),
                            generated: None,
                            prompt_tokens,
                        });
                    }
                }
            }
            (Family::Whisper(p), method) => {
                for u in utterances {
                    let enc = p.encode(&[truncate_30s(u)], &mut times)?;
                    let t = Instant::now();
                    let greedy = p
                        .model()
                        .greedy(
                            enc,
                            p.prompt(),
                            self.options.max_new_tokens,
                            self.eos.first().copied(),
                        )
                        .map_err(PipelineError::from)?;
                    times.decoder += t.elapsed();
                    out.push(self.finish_generated(
                        method,
                        greedy.tokens,
                        &greedy.logits,
                        p.tokenizer(),
                        p.prompt().len(),
                    )?);
                }
            }
            (Family::Qwen2Audio { .. } | Family::Voxtral { .. }, method) => {
                for u in utterances {
                    out.push(self.score_chat(u, method, &mut times)?);
                }
            }
        }
        Ok(BatchScores {
            utterances: out,
            times,
            total: started.elapsed(),
        })
    }

    /// One utterance through Qwen2-Audio or Voxtral: features, audio embeddings, the
    /// chat prompt with the audio spliced in, then the method's readout.
    fn score_chat(
        &self,
        u: &[f32],
        method: Method,
        times: &mut StageTimes,
    ) -> Result<UtteranceScore, AlmError> {
        let ids = self.input_ids(u.len())?;
        let audio = self.chat_audio(u, times)?;
        let t = Instant::now();
        let mut cache = Qwen2Cache::default();
        let (logits, lm, tokenizer) = match &self.family {
            Family::Qwen2Audio {
                model, tokenizer, ..
            } => (
                model.forward(&ids, audio, &mut cache)?,
                model.language_model(),
                tokenizer,
            ),
            Family::Voxtral {
                model, tokenizer, ..
            } => (
                model.forward(&ids, audio, &mut cache)?,
                model.language_model(),
                tokenizer,
            ),
            Family::Whisper(_) => return Err(not_chat()),
        };
        let r = self.decode_chat(
            method,
            lm,
            logits,
            &mut cache,
            tokenizer,
            ids.len(),
            &mut |l: &[f32]| crate::whisper::argmax(l),
        );
        times.decoder += t.elapsed();
        r
    }

    /// Qwen2-Audio's or Voxtral's audio embeddings of one utterance (features, then the
    /// audio encoder); adds the stage times to `times`.
    fn chat_audio(&self, u: &[f32], times: &mut StageTimes) -> Result<Tensor<2>, AlmError> {
        let t = Instant::now();
        let (feats, valid) = match &self.family {
            Family::Qwen2Audio { mel, .. } => {
                let u = truncate_30s(u);
                let m = mel.compute(u, Padding::Chunk)?;
                let valid = u.len().div_ceil(mel.config().hop).min(m.n_frames);
                (TensorData::new(m.data, [1, m.n_mels, m.n_frames]), valid)
            }
            Family::Voxtral { mel, .. } => {
                // As Voxtral's processor: the audio zero-padded to whole 30 s chunks,
                // one log-mel over all of it (STFT windows span chunk boundaries; one
                // max-8 floor for the utterance), then cut into 3000-frame chunks.
                let chunk = mel.config().chunk_samples();
                let chunks = voxtral_chunks(u.len());
                let mut padded = u.to_vec();
                padded.resize(chunks * chunk, 0.0);
                let m = mel.compute(&padded, Padding::None)?;
                let per = m.n_frames / chunks;
                let mut data = Vec::with_capacity(m.data.len());
                for c in 0..chunks {
                    for row in m.data.chunks_exact(m.n_frames) {
                        data.extend_from_slice(&row[c * per..(c + 1) * per]);
                    }
                }
                (TensorData::new(data, [chunks, m.n_mels, per]), 0)
            }
            Family::Whisper(_) => return Err(not_chat()),
        };
        let feats = Tensor::from_data(feats, &self.device);
        times.features += t.elapsed();
        let t = Instant::now();
        let audio = match &self.family {
            Family::Qwen2Audio { model, .. } => model.encode_audio(feats, valid)?,
            Family::Voxtral { model, .. } => model.encode_audio(feats)?,
            Family::Whisper(_) => return Err(not_chat()),
        };
        times.encoder += t.elapsed();
        Ok(audio)
    }

    /// From the prompt's logits `[1, t, vocab]`: the first-token score, or generation
    /// (each token chosen by `pick`: argmax for greedy) continued with the KV cache and
    /// the generated answer scored.
    #[allow(clippy::too_many_arguments)]
    fn decode_chat(
        &self,
        method: Method,
        lm: &Qwen2,
        logits: Tensor<3>,
        cache: &mut Qwen2Cache,
        tokenizer: &HfTokenizer,
        prompt_tokens: usize,
        pick: &mut dyn FnMut(&[f32]) -> u32,
    ) -> Result<UtteranceScore, AlmError> {
        let last = last_row(logits)?;
        self.continue_chat(method, lm, last, cache, tokenizer, prompt_tokens, pick)
    }

    /// [`decode_chat`](Self::decode_chat) from the prompt's last logits `last`.
    #[allow(clippy::too_many_arguments)]
    fn continue_chat(
        &self,
        method: Method,
        lm: &Qwen2,
        mut last: Vec<f32>,
        cache: &mut Qwen2Cache,
        tokenizer: &HfTokenizer,
        prompt_tokens: usize,
        pick: &mut dyn FnMut(&[f32]) -> u32,
    ) -> Result<UtteranceScore, AlmError> {
        if method == Method::FirstToken {
            return Ok(UtteranceScore {
                scores: Ok(self.first_token.score(&last)?),
                generated: None,
                prompt_tokens,
            });
        }
        let mut tokens = Vec::new();
        let mut steps = Vec::new();
        for step in 0..self.options.max_new_tokens {
            let next = pick(&last);
            tokens.push(next);
            steps.push(std::mem::take(&mut last));
            if self.eos.contains(&next) || step + 1 == self.options.max_new_tokens {
                break;
            }
            let input = crate::whisper::token_tensor(&[next], &self.device);
            let l = lm
                .forward(input, cache)
                .map_err(|e| AlmError::Invalid(e.to_string()))?;
            last = last_row(l)?;
        }
        self.finish_generated(method, tokens, &steps, tokenizer, prompt_tokens)
    }

    /// Scores a generated answer: `token-average` over the step logits, or `text` by
    /// parsing the decoded answer (end-of-turn tokens dropped).
    fn finish_generated(
        &self,
        method: Method,
        tokens: Vec<u32>,
        steps: &[Vec<f32>],
        tokenizer: &HfTokenizer,
        prompt_tokens: usize,
    ) -> Result<UtteranceScore, AlmError> {
        let content: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|t| !self.eos.contains(t))
            .collect();
        let text = tokenizer.decode(&content)?;
        let scores = match method {
            Method::TokenAverage => Ok(self.token_average.score(steps)?),
            Method::Text => parse_distribution(&text, &self.options.labels),
            Method::FirstToken => Ok(self.first_token.score(&steps[0])?),
        };
        Ok(UtteranceScore {
            scores,
            generated: Some((tokens, text)),
            prompt_tokens,
        })
    }
}

/// N sampled answers per question instead of one greedy answer (test-time scaling,
/// arXiv 2602.03873; docs/test-time-scaling.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Answers per question (at least 1).
    pub n: usize,
    /// Softmax temperature of every draw (finite, > 0).
    pub temperature: f32,
    /// Seed; each answer's stream is [`SampleRng::for_answer`]`(seed, question, index)`.
    pub seed: u64,
}

/// One utterance scored under several questions and/or samples.
#[derive(Debug, Clone)]
pub struct EnsembleScores {
    /// `answers[q][s]`: question `q`'s answer `s` (one per question when greedy).
    pub answers: Vec<Vec<UtteranceScore>>,
    /// Time per stage: the features and encoder once, the decoder summed over answers.
    pub times: StageTimes,
    /// Wall time of the whole call.
    pub total: Duration,
}

/// An utterance's audio encoded once, shared by every question and sample.
enum Encoded {
    /// Whisper encoder states `[1, frames, d]`.
    Whisper(Tensor<3>),
    /// Qwen2-Audio / Voxtral audio embeddings `[tokens, d]`.
    Chat(Tensor<2>),
}

/// The decoder state after a question's prompt pass; cloned for each sample.
#[derive(Clone)]
enum PromptState {
    Whisper(DecoderCache),
    Chat(Qwen2Cache),
}

impl AlmScorer {
    /// The question `method` asks: `AlmOptions::prompt` if set, else
    /// [`default_question`] (chat models ask `text` for percentages).
    pub fn question_for(&self, method: Method) -> String {
        self.options
            .prompt
            .clone()
            .unwrap_or_else(|| default_question(self.arch, method, &self.options.labels))
    }

    /// Model input ids for `question` and an utterance of `samples` samples: Whisper's
    /// decoder prefix followed by the question, or the chat template rendered with the
    /// question and the audio placeholder expanded. For the scorer's own question this
    /// equals [`input_ids`](Self::input_ids).
    pub fn question_ids(&self, question: &str, samples: usize) -> Result<Vec<u32>, AlmError> {
        match &self.family {
            Family::Whisper(p) => {
                let mut ids = self.whisper_prefix.clone();
                ids.extend(p.tokenizer().encode(question)?);
                Ok(ids)
            }
            Family::Qwen2Audio {
                tokenizer,
                template,
                audio_token,
                ..
            } => {
                let text = self.chat_prompt(template, question, audio_token)?;
                let n = qwen2_audio_lengths(samples)?.tokens;
                Ok(tokenizer.encode(&text.replace(audio_token, &audio_token.repeat(n)))?)
            }
            Family::Voxtral {
                tokenizer,
                template,
                audio_token,
                ..
            } => {
                let text = self.chat_prompt(template, question, audio_token)?;
                let n = voxtral_chunks(samples) * VOXTRAL_TOKENS_PER_CHUNK;
                Ok(tokenizer.encode(&text.replace(audio_token, &audio_token.repeat(n)))?)
            }
        }
    }

    /// The chat prompt for `question` with its single audio placeholder.
    fn chat_prompt(
        &self,
        template: &ChatTemplate,
        question: &str,
        audio_token: &str,
    ) -> Result<String, AlmError> {
        let text = template.render_audio_question(question)?;
        let n = text.matches(audio_token).count();
        if n != 1 {
            return Err(AlmError::Invalid(format!(
                "{}: the chat prompt for {question:?} has {n} audio placeholders `{audio_token}`, expected 1",
                self.dir.display()
            )));
        }
        Ok(text)
    }

    /// Scores one utterance with `method` under every question in `questions`, greedily
    /// (`sampling: None`) or with `sampling.n` seeded samples per question. The audio is
    /// featurised and encoded once; each question then gets one prompt pass of the
    /// decoder, whose state every sample continues from.
    ///
    /// Samples: `token-average` and `text` draw every generated token from
    /// `softmax(logits / temperature)` over the vocabulary; `first-token` draws the
    /// answer label from `softmax(z / temperature)` over the label logits `z`, and each
    /// draw is a point mass on the drawn label (its `logits` are the label logits).
    /// Greedy answers equal [`score`](Self::score)'s for the same question.
    pub fn score_ensemble(
        &self,
        utterance: &[f32],
        method: Method,
        questions: &[String],
        sampling: Option<Sampling>,
    ) -> Result<EnsembleScores, AlmError> {
        let started = Instant::now();
        if utterance.len() < MIN_SAMPLES {
            return Err(AlmError::Invalid(format!(
                "the utterance has {} samples; at least {MIN_SAMPLES} (0.1 s at 16 kHz) are needed",
                utterance.len()
            )));
        }
        if questions.is_empty() {
            return Err(AlmError::Invalid(
                "no question to ask (empty prompt list)".into(),
            ));
        }
        if method != Method::FirstToken && self.options.max_new_tokens == 0 {
            return Err(AlmError::Invalid(format!(
                "{method} needs at least one generated token (max_new_tokens is 0)"
            )));
        }
        if let Some(s) = sampling {
            if s.n == 0 {
                return Err(AlmError::Invalid(
                    "sampling needs at least one sample".into(),
                ));
            }
            if !(s.temperature.is_finite() && s.temperature > 0.0) {
                return Err(ScoreError::Temperature(s.temperature).into());
            }
        }
        let mut times = StageTimes::default();
        let encoded = match &self.family {
            Family::Whisper(p) => {
                Encoded::Whisper(p.encode(&[truncate_30s(utterance)], &mut times)?)
            }
            _ => Encoded::Chat(self.chat_audio(utterance, &mut times)?),
        };
        let mut answers = Vec::with_capacity(questions.len());
        for q in questions {
            let ids = self.question_ids(q, utterance.len())?;
            let t = Instant::now();
            answers.push(self.answer(&encoded, method, q, &ids, sampling)?);
            times.decoder += t.elapsed();
        }
        Ok(EnsembleScores {
            answers,
            times,
            total: started.elapsed(),
        })
    }

    /// One question's answers: the prompt pass, then the greedy answer or each sample.
    fn answer(
        &self,
        encoded: &Encoded,
        method: Method,
        question: &str,
        ids: &[u32],
        sampling: Option<Sampling>,
    ) -> Result<Vec<UtteranceScore>, AlmError> {
        let (last, state) = self.prompt_pass(encoded, ids)?;
        if method == Method::FirstToken {
            let scores = self.first_token.score(&last)?;
            let Some(s) = sampling else {
                return Ok(vec![UtteranceScore {
                    scores: Ok(scores),
                    generated: None,
                    prompt_tokens: ids.len(),
                }]);
            };
            let mut out = Vec::with_capacity(s.n);
            for k in 0..s.n {
                let mut rng = SampleRng::for_answer(s.seed, question, k);
                let drawn =
                    sample_index(&scores.logits, s.temperature, &mut rng).ok_or_else(|| {
                        AlmError::Invalid("no finite label logit to sample from".into())
                    })?;
                let probs = (0..scores.labels.len())
                    .map(|i| if i == drawn { 1.0 } else { 0.0 })
                    .collect();
                out.push(UtteranceScore {
                    scores: Ok(LabelScores::new(
                        scores.labels.clone(),
                        Method::FirstToken,
                        scores.logits.clone(),
                        probs,
                    )),
                    generated: None,
                    prompt_tokens: ids.len(),
                });
            }
            return Ok(out);
        }
        let runs = sampling.map_or(1, |s| s.n);
        let mut out = Vec::with_capacity(runs);
        for k in 0..runs {
            let mut rng =
                sampling.map(|s| (SampleRng::for_answer(s.seed, question, k), s.temperature));
            let mut pick = |l: &[f32]| match &mut rng {
                None => crate::whisper::argmax(l),
                Some((rng, t)) => {
                    sample_index(l, *t, rng).map_or_else(|| crate::whisper::argmax(l), |i| i as u32)
                }
            };
            let mut state = state.clone();
            out.push(self.generate(method, last.clone(), &mut state, ids.len(), &mut pick)?);
        }
        Ok(out)
    }

    /// Feeds the prompt `ids` (with the encoded audio) and returns the last position's
    /// logits and the decoder state.
    fn prompt_pass(
        &self,
        encoded: &Encoded,
        ids: &[u32],
    ) -> Result<(Vec<f32>, PromptState), AlmError> {
        match (&self.family, encoded) {
            (Family::Whisper(p), Encoded::Whisper(states)) => {
                let decoder = &p.model().decoder;
                let mut cache = decoder.start(states.clone());
                let logits = decoder
                    .forward_last(crate::whisper::token_tensor(ids, &self.device), &mut cache)
                    .map_err(PipelineError::from)?;
                Ok((vector(logits)?, PromptState::Whisper(cache)))
            }
            (Family::Qwen2Audio { model, .. }, Encoded::Chat(audio)) => {
                let mut cache = Qwen2Cache::default();
                let logits = model.forward(ids, audio.clone(), &mut cache)?;
                Ok((last_row(logits)?, PromptState::Chat(cache)))
            }
            (Family::Voxtral { model, .. }, Encoded::Chat(audio)) => {
                let mut cache = Qwen2Cache::default();
                let logits = model.forward(ids, audio.clone(), &mut cache)?;
                Ok((last_row(logits)?, PromptState::Chat(cache)))
            }
            _ => Err(AlmError::Invalid(
                "internal: encoded audio does not match the model family".into(),
            )),
        }
    }

    /// Generates an answer from the prompt's last logits `last` and decoder `state`,
    /// each token chosen by `pick`, and scores it with `method`.
    fn generate(
        &self,
        method: Method,
        mut last: Vec<f32>,
        state: &mut PromptState,
        prompt_tokens: usize,
        pick: &mut dyn FnMut(&[f32]) -> u32,
    ) -> Result<UtteranceScore, AlmError> {
        match (&self.family, state) {
            (Family::Whisper(p), PromptState::Whisper(cache)) => {
                // As `Whisper::greedy`: stop after the first end-of-text token.
                let eos = self.eos.first().copied();
                let mut tokens = Vec::new();
                let mut steps = Vec::new();
                for step in 0..self.options.max_new_tokens {
                    let next = pick(&last);
                    tokens.push(next);
                    steps.push(std::mem::take(&mut last));
                    if Some(next) == eos || step + 1 == self.options.max_new_tokens {
                        break;
                    }
                    let input = crate::whisper::token_tensor(&[next], &self.device);
                    let l = p
                        .model()
                        .decoder
                        .forward_last(input, cache)
                        .map_err(PipelineError::from)?;
                    last = vector(l)?;
                }
                self.finish_generated(method, tokens, &steps, p.tokenizer(), prompt_tokens)
            }
            (
                Family::Qwen2Audio {
                    model, tokenizer, ..
                },
                PromptState::Chat(cache),
            ) => self.continue_chat(
                method,
                model.language_model(),
                last,
                cache,
                tokenizer,
                prompt_tokens,
                pick,
            ),
            (
                Family::Voxtral {
                    model, tokenizer, ..
                },
                PromptState::Chat(cache),
            ) => self.continue_chat(
                method,
                model.language_model(),
                last,
                cache,
                tokenizer,
                prompt_tokens,
                pick,
            ),
            _ => Err(AlmError::Invalid(
                "internal: decoder state does not match the model family".into(),
            )),
        }
    }
}

/// The single row of a `[1, vocab]` tensor.
fn vector(logits: Tensor<2>) -> Result<Vec<f32>, AlmError> {
    logits
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| AlmError::Invalid(format!("reading logits: {e:?}")))
}

fn maybe_quantize<M: burn::module::Module>(model: M, quantize: bool, device: &Device) -> M {
    if !quantize {
        return model;
    }
    let (model, n) = crate::quant::quantize_linears(model, device);
    tracing::info!(matrices = n, "weights quantised to q8");
    model
}

/// Audio tokens per 30 s chunk for Voxtral (1500 encoder frames, stacked ×4).
const VOXTRAL_TOKENS_PER_CHUNK: usize = 375;

fn not_chat() -> AlmError {
    AlmError::Invalid("Whisper is not a chat model".into())
}

fn voxtral_chunks(samples: usize) -> usize {
    samples.div_ceil(30 * SAMPLE_RATE).max(1)
}

fn qwen2_audio_lengths(samples: usize) -> Result<AudioLengths, AlmError> {
    let frames = samples.min(30 * SAMPLE_RATE).div_ceil(160);
    AudioLengths::from_frames(frames).ok_or_else(|| {
        AlmError::Invalid(format!("{samples} samples are too short for Qwen2-Audio"))
    })
}

fn truncate_30s(u: &[f32]) -> &[f32] {
    &u[..u.len().min(30 * SAMPLE_RATE)]
}

fn add_times(total: &mut StageTimes, t: StageTimes) {
    total.features += t.features;
    total.encoder += t.encoder;
    total.decoder += t.decoder;
}

/// `tokenizer.json`, else Mistral's `tekken.json` (what Voxtral checkpoints ship).
fn load_tokenizer(dir: &Path) -> Result<HfTokenizer, AlmError> {
    HfTokenizer::from_dir(dir).ok_or_else(|| {
        AlmError::Invalid(format!(
            "{}: missing tokenizer.json (or Mistral's tekken.json); the model directory needs its tokenizer",
            dir.display()
        ))
    })?
    .map_err(AlmError::from)
}

fn mel_for(dir: &Path, n_mels: usize) -> Result<MelExtractor, AlmError> {
    let config = MelConfig::for_model_dir(dir, n_mels)?;
    Ok(MelExtractor::new(config)?)
}

fn template_or(dir: &Path, fallback: &str, family: &str) -> Result<ChatTemplate, AlmError> {
    if let Some(t) = ChatTemplate::from_dir(dir)? {
        return Ok(t);
    }
    tracing::info!(dir = %dir.display(), "no chat template in the model directory; using the built-in {family} template");
    let mut t = ChatTemplate::new(fallback, format!("built-in {family} template"));
    let config = dir.join("tokenizer_config.json");
    if config.is_file()
        && let Ok(v) = read_json::<Value>(&config)
    {
        t = t.with_special_tokens(&v);
    }
    Ok(t)
}

/// Every token id the tokenizer can produce must have an embedding row; a tokenizer
/// from another checkpoint would otherwise index past the table.
fn check_vocab(tokenizer: &HfTokenizer, model_vocab: usize, dir: &Path) -> Result<(), AlmError> {
    let ids = tokenizer.vocab_size();
    if ids > model_vocab {
        return Err(AlmError::Invalid(format!(
            "{}: the tokenizer has {ids} token ids but config.json's text vocab_size is \
             {model_vocab}; the tokenizer file does not belong to these weights",
            dir.display()
        )));
    }
    Ok(())
}

fn token_text(tokenizer: &HfTokenizer, id: u32, dir: &Path) -> Result<String, AlmError> {
    tokenizer.id_to_token(id).ok_or_else(|| {
        AlmError::Invalid(format!(
            "{}: the audio token id {id} from config.json is not in the tokenizer",
            dir.display()
        ))
    })
}

/// End-of-generation tokens: generation_config.json's `eos_token_id` (a number or a
/// list), else config.json's (top level or `text_config`), else the family's usual
/// end-of-turn token strings found in the vocabulary.
fn eos_tokens(
    dir: &Path,
    arch: Architecture,
    tokenizer: &HfTokenizer,
) -> Result<Vec<u32>, AlmError> {
    let ids = |v: Option<&Value>| -> Vec<u32> {
        match v {
            Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_u64)
                .map(|n| n as u32)
                .collect(),
            _ => Vec::new(),
        }
    };
    let gen_path = dir.join("generation_config.json");
    if gen_path.is_file() {
        let v: Value = read_json(&gen_path)?;
        let found = ids(v.get("eos_token_id"));
        if !found.is_empty() {
            return Ok(found);
        }
    }
    let config: Value = read_json(&dir.join("config.json"))?;
    let mut found = ids(config.get("eos_token_id"));
    if found.is_empty() {
        found = ids(config
            .get("text_config")
            .and_then(|t| t.get("eos_token_id")));
    }
    if found.is_empty() {
        let names: &[&str] = match arch {
            Architecture::Whisper => &["<|endoftext|>"],
            Architecture::Qwen2Audio => &["<|im_end|>", "<|endoftext|>"],
            Architecture::Voxtral => &["</s>"],
        };
        found = names.iter().filter_map(|n| tokenizer.token_id(n)).collect();
    }
    Ok(found)
}

/// The last position's logits of `[1, t, vocab]`.
fn last_row(logits: Tensor<3>) -> Result<Vec<f32>, AlmError> {
    let [_, t, _] = logits.dims();
    logits
        .slice(s![0..1, t - 1..t, ..])
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| AlmError::Invalid(format!("reading logits: {e:?}")))
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// burn's `flex` CPU backend (SIMD, rayon threads).
    Cpu,
    /// burn's wgpu backend (GPU, or lavapipe in CI); needs the `wgpu` feature.
    Wgpu,
}

impl DeviceKind {
    /// `cpu` or `wgpu`, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
        }
    }
}

/// The burn device for `kind`; `wgpu` fails with a clear message when this build lacks
/// the `wgpu` feature.
pub fn open_device(kind: DeviceKind) -> Result<Device, AlmError> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => Ok(Device::wgpu(Default::default())),
        #[cfg(not(feature = "wgpu"))]
        DeviceKind::Wgpu => Err(AlmError::Invalid(
            "this emomon was built without GPU support (the `wgpu` cargo feature); use --device cpu \
             or rebuild with `--features wgpu`"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    /// 1.5 s of a deterministic tone with noise.
    fn audio() -> Vec<f32> {
        let mut seed = 99u32;
        (0..24_000)
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (seed >> 16) as f32 / 65_536.0 - 0.5;
                0.3 * (i as f32 * 0.11).sin() + 0.1 * noise
            })
            .collect()
    }

    fn open(name: &str, method: Method) -> AlmScorer {
        let labels = ["neutral", "happy", "sad", "angry", "fear", "disgust"];
        let options = AlmOptions {
            method,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            max_new_tokens: 5,
            ..AlmOptions::default()
        };
        AlmScorer::open(&fixture(name), options, &Device::flex()).expect("open fixture")
    }

    fn probs(u: &UtteranceScore) -> Option<Vec<f32>> {
        u.scores.as_ref().ok().map(|s| s.probs.clone())
    }

    #[test]
    fn greedy_ensemble_of_the_own_question_equals_score() {
        let u = audio();
        for name in ["tiny-whisper", "tiny-qwen2-audio", "tiny-voxtral"] {
            for method in Method::ALL {
                let s = open(name, method);
                let q = s.question_for(method);
                assert_eq!(s.question(), q);
                assert_eq!(
                    s.question_ids(&q, u.len()).expect("ids"),
                    s.input_ids(u.len()).expect("ids"),
                    "{name}"
                );
                let plain = s.score(&[&u]).expect("score");
                let ens = s
                    .score_ensemble(&u, method, std::slice::from_ref(&q), None)
                    .expect("ensemble");
                assert_eq!(ens.answers.len(), 1);
                assert_eq!(ens.answers[0].len(), 1);
                let (a, b) = (&plain.utterances[0], &ens.answers[0][0]);
                // `score` reads first-token logits from the label rows of the output
                // projection only, the ensemble from the whole row: the same numbers up
                // to f32 summation order.
                match (probs(a), probs(b)) {
                    (Some(pa), Some(pb)) => {
                        assert_eq!(pa.len(), pb.len(), "{name} {method}");
                        for (x, y) in pa.iter().zip(&pb) {
                            assert!((x - y).abs() < 1e-5, "{name} {method}: {pa:?} vs {pb:?}");
                        }
                    }
                    (pa, pb) => assert_eq!(pa, pb, "{name} {method}"),
                }
                assert_eq!(a.generated, b.generated, "{name} {method}");
                assert_eq!(a.prompt_tokens, b.prompt_tokens, "{name} {method}");
            }
        }
    }

    #[test]
    fn each_question_of_an_ensemble_equals_asking_it_alone() {
        let u = audio();
        let qs = vec![
            "Which emotion?".to_string(),
            "How does it sound?".to_string(),
        ];
        for name in ["tiny-whisper", "tiny-qwen2-audio"] {
            let s = open(name, Method::TokenAverage);
            let both = s
                .score_ensemble(&u, Method::TokenAverage, &qs, None)
                .expect("ensemble");
            for (i, q) in qs.iter().enumerate() {
                let alone = s
                    .score_ensemble(&u, Method::TokenAverage, std::slice::from_ref(q), None)
                    .expect("alone");
                assert_eq!(probs(&both.answers[i][0]), probs(&alone.answers[0][0]));
            }
            assert_ne!(
                s.question_ids(&qs[0], u.len()).unwrap(),
                s.question_ids(&qs[1], u.len()).unwrap()
            );
        }
    }

    #[test]
    fn samples_are_reproducible_by_seed() {
        let u = audio();
        let s = open("tiny-whisper", Method::TokenAverage);
        let q = vec![s.question_for(Method::TokenAverage)];
        let run = |seed| {
            let sampling = Sampling {
                n: 4,
                temperature: 1.5,
                seed,
            };
            let e = s
                .score_ensemble(&u, Method::TokenAverage, &q, Some(sampling))
                .expect("sampled");
            assert_eq!(e.answers[0].len(), 4);
            e.answers[0]
                .iter()
                .map(|a| a.generated.clone().expect("generated").0)
                .collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        // Different samples of one run differ too (random weights, temperature 1.5).
        assert!(a.iter().any(|t| t != &a[0]), "{a:?}");

        let f = open("tiny-whisper", Method::FirstToken);
        let sampling = Sampling {
            n: 6,
            temperature: 1.0,
            seed: 3,
        };
        let e = f
            .score_ensemble(&u, Method::FirstToken, &q, Some(sampling))
            .expect("first-token draws");
        for a in &e.answers[0] {
            let p = probs(a).expect("point mass");
            assert_eq!(p.iter().filter(|&&x| x == 1.0).count(), 1, "{p:?}");
            assert_eq!(p.iter().sum::<f32>(), 1.0);
        }
        assert!(
            f.score_ensemble(
                &u,
                Method::FirstToken,
                &q,
                Some(Sampling { n: 0, ..sampling })
            )
            .is_err()
        );
    }
}
