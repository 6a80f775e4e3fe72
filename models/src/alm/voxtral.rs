//! The Voxtral family (`VoxtralForConditionalGeneration`): every 30 s chunk of the
//! audio is encoded (375 embeddings each), so long utterances are heard whole.

use std::path::Path;

use burn::prelude::*;

use super::AlmError;
use super::audio_chat::{ChatDims, ChatModel};
use crate::chat::VOXTRAL_TEMPLATE;
use crate::mel::{MelExtractor, Padding};
use crate::qwen2::{Qwen2, Qwen2Cache};
use crate::voxtral::Voxtral;

/// Audio tokens per 30 s chunk (1500 encoder frames, stacked ×4).
const TOKENS_PER_CHUNK: usize = 375;

/// Whole 30 s chunks an utterance of `samples` samples occupies (at least one).
fn chunks(samples: usize) -> usize {
    samples.div_ceil(30 * super::SAMPLE_RATE).max(1)
}

impl ChatModel for Voxtral {
    const NAME: &'static str = "Voxtral";
    const TEMPLATE: &'static str = VOXTRAL_TEMPLATE;

    fn load(dir: &Path, device: &Device) -> Result<(Self, ChatDims), AlmError> {
        let (config, model) = Voxtral::load(dir, device)?;
        let dims = ChatDims {
            vocab_size: config.text_config.vocab_size,
            audio_token: config.audio_token_id,
            n_mels: config.audio_config.num_mel_bins,
        };
        Ok((model, dims))
    }

    fn audio_tokens(samples: usize) -> Result<usize, AlmError> {
        Ok(chunks(samples) * TOKENS_PER_CHUNK)
    }

    /// As Voxtral's processor: the audio zero-padded to whole 30 s chunks, one log-mel
    /// over all of it (STFT windows span chunk boundaries; one max-8 floor for the
    /// utterance), then cut into 3000-frame chunks.
    fn features(mel: &MelExtractor, utterance: &[f32]) -> Result<(TensorData, usize), AlmError> {
        let chunk = mel.config().chunk_samples();
        let chunks = chunks(utterance.len());
        let mut padded = utterance.to_vec();
        padded.resize(chunks * chunk, 0.0);
        let m = mel.compute(&padded, Padding::None)?;
        let per = m.n_frames / chunks;
        let mut data = Vec::with_capacity(m.data.len());
        for c in 0..chunks {
            for row in m.data.chunks_exact(m.n_frames) {
                data.extend_from_slice(&row[c * per..(c + 1) * per]);
            }
        }
        Ok((TensorData::new(data, [chunks, m.n_mels, per]), 0))
    }

    fn encode_audio(&self, features: Tensor<3>, _valid: usize) -> Result<Tensor<2>, AlmError> {
        Ok(Voxtral::encode_audio(self, features)?)
    }

    fn forward(
        &self,
        ids: &[u32],
        audio: Tensor<2>,
        cache: &mut Qwen2Cache,
    ) -> Result<Tensor<3>, AlmError> {
        Ok(Voxtral::forward(self, ids, audio, cache)?)
    }

    fn language_model(&self) -> &Qwen2 {
        Voxtral::language_model(self)
    }
}
