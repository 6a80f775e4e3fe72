//! The Qwen2-Audio family (`Qwen2AudioForConditionalGeneration`): the first 30 s,
//! padded to one Whisper-style chunk; the encoder masks the frames past the audio and
//! pools to about 25 embeddings a second.

use std::path::Path;

use burn::prelude::*;

use super::audio_chat::{ChatDims, ChatModel};
use super::{AlmError, truncate_30s};
use crate::chat::QWEN2_AUDIO_TEMPLATE;
use crate::mel::{MelExtractor, Padding};
use crate::qwen2::{Qwen2, Qwen2Cache};
use crate::qwen2_audio::{AudioLengths, Qwen2Audio};

impl ChatModel for Qwen2Audio {
    const NAME: &'static str = "Qwen2-Audio";
    const TEMPLATE: &'static str = QWEN2_AUDIO_TEMPLATE;

    fn load(dir: &Path, device: &Device) -> Result<(Self, ChatDims), AlmError> {
        let (config, model) = Qwen2Audio::load(dir, device)?;
        let dims = ChatDims {
            vocab_size: config.text_config.vocab_size,
            audio_token: config.audio_token_index,
            n_mels: config.audio_config.num_mel_bins,
        };
        Ok((model, dims))
    }

    fn audio_tokens(samples: usize) -> Result<usize, AlmError> {
        let frames = samples.min(30 * super::SAMPLE_RATE).div_ceil(160);
        AudioLengths::from_frames(frames)
            .map(|l| l.tokens)
            .ok_or_else(|| {
                AlmError::Invalid(format!("{samples} samples are too short for Qwen2-Audio"))
            })
    }

    fn features(mel: &MelExtractor, utterance: &[f32]) -> Result<(TensorData, usize), AlmError> {
        let u = truncate_30s(utterance);
        let m = mel.compute(u, Padding::Chunk)?;
        let valid = u.len().div_ceil(mel.config().hop).min(m.n_frames);
        Ok((TensorData::new(m.data, [1, m.n_mels, m.n_frames]), valid))
    }

    fn encode_audio(&self, features: Tensor<3>, valid: usize) -> Result<Tensor<2>, AlmError> {
        Ok(Qwen2Audio::encode_audio(self, features, valid)?)
    }

    fn forward(
        &self,
        ids: &[u32],
        audio: Tensor<2>,
        cache: &mut Qwen2Cache,
    ) -> Result<Tensor<3>, AlmError> {
        Ok(Qwen2Audio::forward(self, ids, audio, cache)?)
    }

    fn language_model(&self) -> &Qwen2 {
        Qwen2Audio::language_model(self)
    }
}
