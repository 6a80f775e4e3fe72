//! Who is speaking: resemblyzer 0.1.4's GE2E speaker encoder on burn.
//!
//! The network (`resemblyzer.VoiceEncoder`): 40-band power mel at 16 kHz → 3-layer LSTM of
//! 256 → linear 256 → ReLU → L2-normalise, applied to 1.6 s partial windows of the
//! utterance; the utterance embedding is the L2-normalised mean of the partial embeddings
//! (`embed_utterance`). Before that the audio is volume-normalised as `preprocess_wav`
//! does; its silence trimming is left out because emomon's utterances are already cut by
//! a VAD. Weights: `speaker-encoder.safetensors` as `emomon setup` converts it from the
//! wheel's `pretrained.pt` (`scripts/resemblyzer_to_safetensors.py`), by PyTorch name;
//! a missing, mis-shaped or unused tensor fails the load.
//!
//! Parity with the package on real clips: `tests/parity/speaker_real.rs`.

mod frontend;
mod lstm;

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::relu;

use frontend::{HOP, N_MELS, PARTIAL_FRAMES, SAMPLE_RATE};
pub use frontend::{PowerMel, normalise_volume, partial_slices};
use lstm::Lstm;

use crate::nn::load_linear;
use crate::safetensors_load::{LoadError, TensorStore};

/// Dimensions of an embedding.
pub const EMBEDDING_DIM: usize = 256;
const HIDDEN: usize = 256;
const LAYERS: usize = 3;

/// File name of the converted weights inside a speaker-encoder directory.
pub const WEIGHTS_FILE: &str = "speaker-encoder.safetensors";

/// Where `emomon setup` puts the converted encoder: `$EMOMON_HOME/speaker-encoder`.
pub fn default_dir() -> std::path::PathBuf {
    crate::default_model::emomon_home().join("speaker-encoder")
}

/// Why an utterance could not be embedded or the encoder not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// The weights file is missing or does not match the network.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The audio has no energy at all: no voice to describe.
    #[error("cannot embed a silent or empty utterance ({samples} samples)")]
    Silent {
        /// Number of samples given.
        samples: usize,
    },
    /// The encoder produced a zero vector (ReLU cut every unit), which cannot be normalised.
    #[error("the speaker encoder produced a zero embedding")]
    ZeroEmbedding,
    /// Reading the result back from the device failed.
    #[error("speaker encoder output: {0}")]
    Data(String),
}

/// The GE2E encoder with its front end; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SpeakerEncoder {
    lstm: Lstm,
    linear: burn::nn::Linear,
    mel: PowerMel,
    device: Device,
}

impl SpeakerEncoder {
    /// Loads `speaker-encoder.safetensors` (or the file itself when `path` is one).
    pub fn load(path: &Path, device: &Device) -> Result<Self, SpeakerError> {
        let file = if path.is_dir() {
            path.join(WEIGHTS_FILE)
        } else {
            path.to_path_buf()
        };
        let mut store = TensorStore::from_files(&[file])?;
        let lstm = Lstm::load(&mut store, "lstm", N_MELS, HIDDEN, LAYERS, device);
        let linear = load_linear(&mut store, "linear", HIDDEN, EMBEDDING_DIM, true, device);
        store.finish()?;
        Ok(Self {
            lstm,
            linear,
            mel: PowerMel::new(),
            device: device.clone(),
        })
    }

    /// The sample rate [`embed`](Self::embed) expects (16 kHz).
    pub fn sample_rate(&self) -> usize {
        SAMPLE_RATE
    }

    /// The unit-length embedding of one utterance of 16 kHz mono audio
    /// (`embed_utterance(normalize_volume(wav))`).
    pub fn embed(&self, samples: &[f32]) -> Result<Vec<f32>, SpeakerError> {
        let partials = self.embed_partials(samples)?;
        let mut mean = vec![0.0f32; EMBEDDING_DIM];
        for p in &partials {
            for (m, v) in mean.iter_mut().zip(p) {
                *m += v / partials.len() as f32;
            }
        }
        unit(mean)
    }

    /// The unit-length embedding of each partial window (one or more).
    pub fn embed_partials(&self, samples: &[f32]) -> Result<Vec<Vec<f32>>, SpeakerError> {
        let mut wav = normalise_volume(samples).ok_or(SpeakerError::Silent {
            samples: samples.len(),
        })?;
        let slices = partial_slices(wav.len());
        let stop = slices.last().map_or(0, |s| s.end) * HOP;
        if stop >= wav.len() {
            wav.resize(stop, 0.0);
        }
        let mel = self.mel.compute(&wav);
        let mut batch = Vec::with_capacity(slices.len() * PARTIAL_FRAMES * N_MELS);
        for range in &slices {
            for frame in &mel[range.clone()] {
                batch.extend_from_slice(frame);
            }
        }
        let mels = Tensor::<3>::from_data(
            TensorData::new(batch, [slices.len(), PARTIAL_FRAMES, N_MELS]),
            &self.device,
        );
        let raw = relu(self.linear.forward(self.lstm.final_hidden(mels)));
        let values: Vec<f32> = raw
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| SpeakerError::Data(format!("{e:?}")))?;
        values
            .chunks_exact(EMBEDDING_DIM)
            .map(|row| unit(row.to_vec()))
            .collect()
    }
}

/// `v / ‖v‖₂`.
fn unit(mut v: Vec<f32>) -> Result<Vec<f32>, SpeakerError> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(SpeakerError::ZeroEmbedding);
    }
    v.iter_mut().for_each(|x| *x /= norm);
    Ok(v)
}

/// Cosine similarity of two embeddings (any length; 0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
