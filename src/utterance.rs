//! [`Utterance`]: one stretch of speech, timed from the start of the session.

use std::sync::Arc;

use serde::Serialize;

use crate::audio::TARGET_RATE;

/// A stretch of speech found by the segmenter.
///
/// `start_s`/`end_s` are where speech was detected; the samples extend a
/// little beyond them (pre-roll before, post-roll after, from `audio_start_s`)
/// so a model hears the onset and the release. Samples are shared, so every
/// consumer (features, prosody, scoring) reads the same buffer without a copy.
#[derive(Debug, Clone, Serialize)]
pub struct Utterance {
    /// 0, 1, 2, … in order of detection within a session.
    pub id: u64,
    /// Speech onset, seconds from session start.
    pub start_s: f64,
    /// Speech end, seconds from session start.
    pub end_s: f64,
    /// Time of `samples[0]`.
    pub audio_start_s: f64,
    /// 16 kHz mono audio covering at least `start_s..end_s`.
    #[serde(skip)]
    pub samples: Arc<[f32]>,
    /// Seconds the VAD judged voiced within `start_s..end_s`.
    pub voiced_s: f64,
    /// RMS level of the speech part, dBFS.
    pub rms_dbfs: f32,
    /// Peak level of the speech part, dBFS.
    pub peak_dbfs: f32,
    /// True when the utterance was cut at the maximum length rather than at a pause.
    pub split: bool,
    /// The input channel it was heard on, when each channel of a stereo input is
    /// segmented on its own (`--speakers channels`: 0 = left, 1 = right); `None` for
    /// the usual mono mix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<usize>,
}

impl Utterance {
    pub fn duration_s(&self) -> f64 {
        self.end_s - self.start_s
    }

    pub fn audio_end_s(&self) -> f64 {
        self.audio_start_s + self.samples.len() as f64 / f64::from(TARGET_RATE)
    }

    /// The samples between `start_s` and `end_s`, without pre- and post-roll.
    pub fn speech(&self) -> &[f32] {
        let rate = f64::from(TARGET_RATE);
        let from = ((self.start_s - self.audio_start_s) * rate).round() as usize;
        let to = ((self.end_s - self.audio_start_s) * rate).round() as usize;
        &self.samples[from.min(self.samples.len())..to.min(self.samples.len())]
    }
}

/// Level in dBFS of an amplitude (floor at -120 dB for digital silence).
pub fn to_dbfs(amplitude: f32) -> f32 {
    20.0 * amplitude.max(1e-6).log10()
}
