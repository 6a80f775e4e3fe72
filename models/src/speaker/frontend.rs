//! resemblyzer's front end, step for step: volume normalisation (`audio.normalize_volume`),
//! the partial-window rule (`VoiceEncoder.compute_partial_slices`) and the 40-band power
//! mel spectrogram (`audio.wav_to_mel_spectrogram`, i.e. librosa's `melspectrogram` with
//! n_fft 400, hop 160, centred zero-padded STFT, periodic Hann window, `|X|²`, Slaney mel
//! filters 0–8 kHz; *not* a log-mel).
//!
//! Computed in f64, rounded to f32 at the end as librosa's output is.

use std::ops::Range;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Sample rate the encoder was trained at.
pub const SAMPLE_RATE: usize = 16_000;
/// Mel bands.
pub const N_MELS: usize = 40;
/// 25 ms window.
const N_FFT: usize = 400;
/// 10 ms hop: samples per mel frame.
pub const HOP: usize = 160;
/// Frames in one partial utterance (1.6 s).
pub const PARTIAL_FRAMES: usize = 160;
/// `embed_utterance`'s defaults: partial windows per second and the share of the last
/// window that must hold audio for it to count.
const RATE: f64 = 1.3;
const MIN_COVERAGE: f64 = 0.75;
/// `audio_norm_target_dBFS`.
const TARGET_DBFS: f64 = -30.0;
const INT16_MAX: f64 = 32767.0;

/// `normalize_volume(wav, -30, increase_only=True)`: quiet audio is raised to -30 dBFS RMS,
/// louder audio is left alone. `None` for silent (all-zero) or empty audio, whose level is
/// undefined (resemblyzer would return NaNs).
pub fn normalise_volume(samples: &[f32]) -> Option<Vec<f32>> {
    if samples.is_empty() {
        return None;
    }
    let mean_sq = samples
        .iter()
        .map(|&s| (f64::from(s) * INT16_MAX).powi(2))
        .sum::<f64>()
        / samples.len() as f64;
    if mean_sq <= 0.0 {
        return None;
    }
    let dbfs = 20.0 * (mean_sq.sqrt() / INT16_MAX).log10();
    let change = TARGET_DBFS - dbfs;
    if change < 0.0 {
        return Some(samples.to_vec());
    }
    let gain = 10f64.powf(change / 20.0);
    Some(
        samples
            .iter()
            .map(|&s| (f64::from(s) * gain) as f32)
            .collect(),
    )
}

/// The mel-frame ranges of the partial windows of an utterance of `n_samples` samples
/// (`compute_partial_slices(n_samples, rate=1.3, min_coverage=0.75)`): windows of 160
/// frames every 77 frames; the last is dropped when less than 75 % of it holds audio,
/// unless it is the only one. The audio must be zero-padded to `end * HOP` samples.
pub fn partial_slices(n_samples: usize) -> Vec<Range<usize>> {
    let n_frames = (n_samples + 1).div_ceil(HOP);
    let frame_step = ((SAMPLE_RATE as f64 / RATE) / HOP as f64).round() as usize;
    let steps = (n_frames + frame_step + 1)
        .saturating_sub(PARTIAL_FRAMES)
        .max(1);
    let mut slices: Vec<Range<usize>> = (0..steps)
        .step_by(frame_step)
        .map(|i| i..i + PARTIAL_FRAMES)
        .collect();
    if let Some(last) = slices.last() {
        let (start, stop) = (last.start * HOP, last.end * HOP);
        let coverage = (n_samples as f64 - start as f64) / (stop - start) as f64;
        if coverage < MIN_COVERAGE && slices.len() > 1 {
            slices.pop();
        }
    }
    slices
}

/// The 40-band power mel spectrogram (FFT plan and filters built once).
pub struct PowerMel {
    window: Vec<f64>,
    /// Sparse filters: first FFT bin and weights.
    filters: Vec<(usize, Vec<f64>)>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for PowerMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerMel").finish_non_exhaustive()
    }
}

impl Default for PowerMel {
    fn default() -> Self {
        Self::new()
    }
}

impl PowerMel {
    /// Builds the Hann window, FFT plan and Slaney filter bank.
    pub fn new() -> Self {
        // scipy's periodic Hann, as librosa's `get_window("hann", n_fft, fftbins=True)`.
        let window = (0..N_FFT)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos())
            .collect();
        let filters = crate::mel::mel_filter_bank(N_MELS, N_FFT / 2 + 1, SAMPLE_RATE as f64)
            .into_iter()
            .map(|row| {
                let start = row.iter().position(|&w| w > 0.0).unwrap_or(0);
                let end = row.iter().rposition(|&w| w > 0.0).map_or(start, |e| e + 1);
                (start, row[start..end].to_vec())
            })
            .collect();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        Self {
            window,
            filters,
            fft,
        }
    }

    /// `1 + len / 160` frames of 40 values, frame-major (`[frames][40]`, as resemblyzer
    /// transposes librosa's output).
    pub fn compute(&self, samples: &[f32]) -> Vec<[f32; N_MELS]> {
        let half = N_FFT / 2;
        let mut padded = vec![0.0f64; samples.len() + 2 * half];
        for (dst, &s) in padded[half..].iter_mut().zip(samples) {
            *dst = f64::from(s);
        }
        let n_frames = 1 + samples.len() / HOP;
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f64; N_FFT / 2 + 1];
        let mut out = Vec::with_capacity(n_frames);
        for t in 0..n_frames {
            let start = t * HOP;
            for ((dst, &x), &w) in frame
                .iter_mut()
                .zip(&padded[start..start + N_FFT])
                .zip(&self.window)
            {
                *dst = x * w;
            }
            // The buffers come from the planner itself, so the lengths always match.
            if self
                .fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .is_err()
            {
                unreachable!("FFT buffers sized by their own planner");
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            let mut row = [0.0f32; N_MELS];
            for (dst, (start, weights)) in row.iter_mut().zip(&self.filters) {
                *dst = weights
                    .iter()
                    .zip(&power[*start..])
                    .map(|(w, p)| w * p)
                    .sum::<f64>() as f32;
            }
            out.push(row);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_windows_follow_resemblyzer() {
        // Values from VoiceEncoder.compute_partial_slices(n, 1.3, 0.75).
        assert_eq!(partial_slices(12_800), vec![0..160]);
        assert_eq!(partial_slices(32_000), vec![0..160, 77..237]);
        assert_eq!(partial_slices(25_000), vec![0..160]);
        assert_eq!(partial_slices(108_608).len(), 8);
        assert_eq!(partial_slices(1), vec![0..160]);
    }

    #[test]
    fn quiet_audio_is_raised_and_loud_audio_kept() {
        let quiet = vec![0.001f32; 100];
        let raised = normalise_volume(&quiet).unwrap();
        let rms_dbfs = 20.0 * (f64::from(raised[0]) * 32767.0 / 32767.0).log10();
        assert!((rms_dbfs + 30.0).abs() < 1e-3, "{rms_dbfs}");
        let loud = vec![0.5f32, -0.5];
        assert_eq!(normalise_volume(&loud).unwrap(), loud);
        assert!(normalise_volume(&[0.0; 10]).is_none());
        assert!(normalise_volume(&[]).is_none());
    }

    #[test]
    fn mel_has_librosa_frame_count_and_is_a_power_spectrum() {
        let mel = PowerMel::new();
        let tone: Vec<f32> = (0..1600)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let frames = mel.compute(&tone);
        assert_eq!(frames.len(), 11);
        let doubled: Vec<f32> = tone.iter().map(|s| 2.0 * s).collect();
        let frames2 = mel.compute(&doubled);
        // Power, not magnitude or log: twice the amplitude is four times the value.
        let (a, b) = (frames[5][10], frames2[5][10]);
        assert!(a > 0.0 && (b / a - 4.0).abs() < 1e-4, "{a} {b}");
    }
}
