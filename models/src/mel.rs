//! Whisper log-mel front end on the CPU, numerically equal to transformers'
//! `WhisperFeatureExtractor` (torch path) within 1e-4.
//!
//! The reference pipeline, reproduced step by step:
//! 1. optionally pad with zeros / truncate to `chunk_length` seconds (30 s → 480 000 samples);
//! 2. centred STFT: reflect-pad `n_fft / 2` samples on both sides, periodic Hann window
//!    of `n_fft`, hop `hop_length`; this yields `1 + len / hop` frames and **the last frame is
//!    dropped**, so the output has `len / hop` frames (3000 for 30 s);
//! 3. power spectrum `|X|²` (201 bins for n_fft 400);
//! 4. Slaney-style mel filter bank (Slaney mel scale, area normalisation, 0–8000 Hz),
//!    computed here exactly as `transformers.audio_utils.mel_filter_bank` does;
//! 5. `log10(max(mel, 1e-10))`, then clamp to `max - 8` over the whole spectrogram,
//!    then `(x + 4) / 4`.
//!
//! Everything is computed in f64 and rounded to f32 at the end; the reference runs in f32,
//! so the difference is float32 round-off (≈1e-6), well inside the 1e-4 budget.
//!
//! Note that the `max - 8` clamp depends on the whole input, so padded and unpadded
//! features of the same audio differ not only in length.

use std::path::Path;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};
use serde::Deserialize;

/// Errors of the log-mel front end.
#[derive(Debug, thiserror::Error)]
pub enum MelError {
    /// The configuration cannot describe a Whisper front end.
    #[error("invalid log-mel configuration: {0}")]
    Config(String),
    /// The audio is too short for a centred STFT (reflect padding needs more than n_fft/2 samples).
    #[error("audio too short for log-mel features: {samples} samples, need more than {min}")]
    TooShort {
        /// Number of samples given.
        samples: usize,
        /// Exclusive lower bound on the number of samples.
        min: usize,
    },
    /// The preprocessor config could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File that failed.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The preprocessor config's mel bins differ from what the model's encoder takes.
    #[error("{path}: {found} mel bins, but the model expects {expected}")]
    Mismatch {
        /// The preprocessor config.
        path: String,
        /// Mel bins it asks for.
        found: usize,
        /// Mel bins the model takes.
        expected: usize,
    },
    /// The preprocessor config is not valid JSON for a Whisper feature extractor.
    #[error("{path}: invalid preprocessor config: {source}")]
    Json {
        /// File that failed.
        path: String,
        /// Underlying error.
        source: serde_json::Error,
    },
}

/// Parameters of the front end, mirroring `preprocessor_config.json` of a Whisper model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MelConfig {
    /// Number of mel bins (80 for Whisper ≤ v2, 128 for large-v3).
    #[serde(rename = "feature_size", default = "default_n_mels")]
    pub n_mels: usize,
    /// FFT size (400 = 25 ms at 16 kHz).
    #[serde(default = "default_n_fft")]
    pub n_fft: usize,
    /// Hop between frames in samples (160 = 10 ms at 16 kHz).
    #[serde(rename = "hop_length", default = "default_hop")]
    pub hop: usize,
    /// Sample rate the model expects.
    #[serde(rename = "sampling_rate", default = "default_sr")]
    pub sample_rate: usize,
    /// Length of the padded chunk in seconds (30 for Whisper).
    #[serde(default = "default_chunk")]
    pub chunk_length: usize,
}

fn default_n_mels() -> usize {
    80
}
fn default_n_fft() -> usize {
    400
}
fn default_hop() -> usize {
    160
}
fn default_sr() -> usize {
    16_000
}
fn default_chunk() -> usize {
    30
}

impl MelConfig {
    /// Whisper's front end with `n_mels` bins (80 or 128).
    pub fn whisper(n_mels: usize) -> Self {
        Self {
            n_mels,
            n_fft: default_n_fft(),
            hop: default_hop(),
            sample_rate: default_sr(),
            chunk_length: default_chunk(),
        }
    }

    /// The front end of the model directory `dir` whose encoder takes `n_mels` bins: its
    /// `preprocessor_config.json` if present (checked against `n_mels`), else Whisper's.
    pub fn for_model_dir(dir: &Path, n_mels: usize) -> Result<Self, MelError> {
        let pre = dir.join("preprocessor_config.json");
        if !pre.is_file() {
            return Ok(Self::whisper(n_mels));
        }
        let config = Self::from_file(&pre)?;
        if config.n_mels != n_mels {
            return Err(MelError::Mismatch {
                path: pre.display().to_string(),
                found: config.n_mels,
                expected: n_mels,
            });
        }
        Ok(config)
    }

    /// Reads a Hugging Face `preprocessor_config.json`; missing keys take Whisper's defaults.
    pub fn from_file(path: &Path) -> Result<Self, MelError> {
        let text = std::fs::read_to_string(path).map_err(|source| MelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| MelError::Json {
            path: path.display().to_string(),
            source,
        })
    }

    /// Samples in one padded chunk (480 000 for 30 s at 16 kHz).
    pub fn chunk_samples(&self) -> usize {
        self.chunk_length * self.sample_rate
    }
}

/// Whether to pad/truncate the input to the model's fixed chunk before the STFT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Use the audio as is: `len / hop` frames (transformers' `padding="longest"` for one clip).
    None,
    /// Zero-pad (or truncate) to `chunk_length` seconds: 3000 frames for Whisper
    /// (transformers' default `padding="max_length"`, `truncation=True`).
    Chunk,
}

/// A log-mel spectrogram, row-major `[n_mels][n_frames]` as transformers returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMel {
    /// Number of mel bins (rows).
    pub n_mels: usize,
    /// Number of frames (columns).
    pub n_frames: usize,
    /// `n_mels * n_frames` values, mel-major.
    pub data: Vec<f32>,
}

/// One mel filter, stored sparsely: weights for FFT bins `start..start + weights.len()`.
#[derive(Debug, Clone)]
struct Filter {
    start: usize,
    weights: Vec<f64>,
}

/// Reusable log-mel extractor (window, FFT plan and filters computed once).
pub struct MelExtractor {
    config: MelConfig,
    window: Vec<f64>,
    filters: Vec<Filter>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for MelExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelExtractor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MelExtractor {
    /// Builds the extractor; fails on configurations the reference would reject
    /// (e.g. a mel band with no FFT bin, or an 8 kHz upper edge above Nyquist).
    pub fn new(config: MelConfig) -> Result<Self, MelError> {
        if config.n_fft < 2 || config.hop == 0 || config.n_mels == 0 {
            return Err(MelError::Config(format!(
                "n_fft {}, hop {}, n_mels {}",
                config.n_fft, config.hop, config.n_mels
            )));
        }
        if 2.0 * MAX_FREQUENCY > config.sample_rate as f64 {
            return Err(MelError::Config(format!(
                "sample rate {} is below twice the 8 kHz upper mel edge",
                config.sample_rate
            )));
        }
        let n = config.n_fft;
        // torch.hann_window(n) is periodic: 0.5 - 0.5 cos(2πi/n).
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
            .collect();
        let dense = mel_filter_bank(config.n_mels, n / 2 + 1, config.sample_rate as f64);
        let mut filters = Vec::with_capacity(config.n_mels);
        for (m, row) in dense.iter().enumerate() {
            let Some(start) = row.iter().position(|&w| w > 0.0) else {
                return Err(MelError::Config(format!(
                    "mel filter {m} of {} covers no FFT bin (too many mel bins for n_fft {n})",
                    config.n_mels
                )));
            };
            let end = row.iter().rposition(|&w| w > 0.0).map_or(start, |e| e + 1);
            filters.push(Filter {
                start,
                weights: row[start..end].to_vec(),
            });
        }
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        Ok(Self {
            config,
            window,
            filters,
            fft,
        })
    }

    /// The configuration this extractor was built from.
    pub fn config(&self) -> &MelConfig {
        &self.config
    }

    /// Number of frames `compute` returns for `samples` input samples.
    pub fn n_frames(&self, samples: usize, padding: Padding) -> usize {
        match padding {
            Padding::None => samples / self.config.hop,
            Padding::Chunk => self.config.chunk_samples() / self.config.hop,
        }
    }

    /// Log-mel features of mono audio at `config.sample_rate`.
    pub fn compute(&self, samples: &[f32], padding: Padding) -> Result<LogMel, MelError> {
        let cfg = &self.config;
        let audio: Vec<f64> = match padding {
            Padding::None => samples.iter().map(|&s| f64::from(s)).collect(),
            Padding::Chunk => {
                let n = cfg.chunk_samples();
                let mut v: Vec<f64> = samples.iter().take(n).map(|&s| f64::from(s)).collect();
                v.resize(n, 0.0);
                v
            }
        };
        let half = cfg.n_fft / 2;
        if audio.len() <= half {
            return Err(MelError::TooShort {
                samples: audio.len(),
                min: half,
            });
        }
        let padded = reflect_pad(&audio, half);
        let n_frames = audio.len() / cfg.hop;
        let n_bins = cfg.n_fft / 2 + 1;

        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f64; n_bins];
        let mut log_mel = vec![0.0f64; cfg.n_mels * n_frames];
        // Zero padding up to the chunk length gives frames whose whole window is zero:
        // their power is exactly 0, so skip the FFT (most of a padded 30 s chunk).
        let audio_end = match padding {
            Padding::None => audio.len(),
            Padding::Chunk => samples.len().min(audio.len()),
        };
        let log_floor = 1e-10f64.log10(); // exactly what a zero-energy frame computes
        for t in 0..n_frames {
            let start = t * cfg.hop;
            // Window covers original samples [start - half, start + half); all zero when
            // it starts past the end of the real audio.
            if start >= audio_end + half {
                for m in 0..cfg.n_mels {
                    log_mel[m * n_frames + t] = log_floor;
                }
                continue;
            }
            for ((dst, &x), &w) in frame
                .iter_mut()
                .zip(&padded[start..start + cfg.n_fft])
                .zip(&self.window)
            {
                *dst = x * w;
            }
            // Lengths come from the planner itself, so this cannot fail.
            self.fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .map_err(|e| MelError::Config(format!("FFT failed: {e}")))?;
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (m, filter) in self.filters.iter().enumerate() {
                let energy: f64 = filter
                    .weights
                    .iter()
                    .zip(&power[filter.start..])
                    .map(|(w, p)| w * p)
                    .sum();
                log_mel[m * n_frames + t] = energy.max(1e-10).log10();
            }
        }
        let max = log_mel.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let floor = max - 8.0;
        let data = log_mel
            .into_iter()
            .map(|v| ((v.max(floor) + 4.0) / 4.0) as f32)
            .collect();
        Ok(LogMel {
            n_mels: cfg.n_mels,
            n_frames,
            data,
        })
    }
}

/// Upper edge of Whisper's mel filters (transformers passes `max_frequency=8000.0`).
const MAX_FREQUENCY: f64 = 8000.0;

/// `torch.nn.functional.pad(..., mode="reflect")`: mirror without repeating the edge sample.
fn reflect_pad(x: &[f64], pad: usize) -> Vec<f64> {
    let n = x.len();
    let mut out = Vec::with_capacity(n + 2 * pad);
    out.extend((1..=pad).rev().map(|i| x[i]));
    out.extend_from_slice(x);
    out.extend((1..=pad).map(|i| x[n - 1 - i]));
    out
}

/// Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa/transformers.
fn hz_to_mel(f: f64) -> f64 {
    let logstep = 27.0 / 6.4f64.ln();
    if f >= 1000.0 {
        15.0 + (f / 1000.0).ln() * logstep
    } else {
        3.0 * f / 200.0
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let logstep = 6.4f64.ln() / 27.0;
    if m >= 15.0 {
        1000.0 * (logstep * (m - 15.0)).exp()
    } else {
        200.0 * m / 3.0
    }
}

/// Dense `[n_mels][n_bins]` filter bank, following `transformers.audio_utils.mel_filter_bank`
/// with `norm="slaney"`, `mel_scale="slaney"`, 0–8000 Hz.
pub(crate) fn mel_filter_bank(n_mels: usize, n_bins: usize, sample_rate: f64) -> Vec<Vec<f64>> {
    let mel_min = hz_to_mel(0.0);
    let mel_max = hz_to_mel(MAX_FREQUENCY);
    let n_points = n_mels + 2;
    // np.linspace(mel_min, mel_max, n_points)
    let filter_freqs: Vec<f64> = (0..n_points)
        .map(|i| {
            let m = if i == n_points - 1 {
                mel_max
            } else {
                mel_min + (mel_max - mel_min) * i as f64 / (n_points - 1) as f64
            };
            mel_to_hz(m)
        })
        .collect();
    // np.linspace(0, sampling_rate // 2, n_bins)
    let nyquist = (sample_rate as u64 / 2) as f64;
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|i| {
            if i == n_bins - 1 {
                nyquist
            } else {
                nyquist * i as f64 / (n_bins - 1) as f64
            }
        })
        .collect();
    (0..n_mels)
        .map(|m| {
            let (lo, mid, hi) = (filter_freqs[m], filter_freqs[m + 1], filter_freqs[m + 2]);
            let enorm = 2.0 / (hi - lo);
            fft_freqs
                .iter()
                .map(|&f| {
                    let down = (f - lo) / (mid - lo);
                    let up = (hi - f) / (hi - mid);
                    down.min(up).max(0.0) * enorm
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_dir_gets_its_preprocessor_config_checked_against_the_encoder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            MelConfig::for_model_dir(dir.path(), 80).unwrap(),
            MelConfig::whisper(80)
        );
        std::fs::write(
            dir.path().join("preprocessor_config.json"),
            r#"{"feature_size": 128}"#,
        )
        .unwrap();
        assert_eq!(
            MelConfig::for_model_dir(dir.path(), 128).unwrap().n_mels,
            128
        );
        let err = MelConfig::for_model_dir(dir.path(), 80).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("128 mel bins, but the model expects 80"),
            "{err}"
        );
    }

    #[test]
    fn reflect_pad_matches_torch_semantics() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            reflect_pad(&x, 2),
            vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]
        );
    }

    #[test]
    fn slaney_scale_round_trips() {
        for f in [0.0, 440.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-9, "{f}");
        }
    }

    #[test]
    fn too_short_audio_is_an_error() {
        let ex = MelExtractor::new(MelConfig::whisper(80)).expect("config");
        assert!(matches!(
            ex.compute(&[0.0; 200], Padding::None),
            Err(MelError::TooShort { .. })
        ));
    }

    #[test]
    fn silence_padded_is_constant() {
        let ex = MelExtractor::new(MelConfig::whisper(80)).expect("config");
        let mel = ex.compute(&[0.0; 1000], Padding::Chunk).expect("mel");
        assert_eq!((mel.n_mels, mel.n_frames), (80, 3000));
        // log10(1e-10) = -10 everywhere → (-10 + 4) / 4
        assert!(mel.data.iter().all(|&v| (v - (-1.5)).abs() < 1e-7));
    }
}
