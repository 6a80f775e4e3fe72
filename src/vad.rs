//! Frame-level voice activity detection with WebRTC's VAD.

use crate::audio::TARGET_RATE;

/// Why a front-end setting was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("VAD aggressiveness must be 0 (least) to 3 (most aggressive), not {0}")]
    Aggressiveness(u8),
    #[error("VAD frame length must be 10, 20 or 30 ms, not {0} ms")]
    FrameMs(u32),
    #[error("{name} must be {rule}, not {value}")]
    Invalid {
        name: &'static str,
        rule: &'static str,
        value: f64,
    },
}

/// VAD settings: how eager it is, and how long each decision's frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VadConfig {
    /// 0 = lets most through as speech … 3 = flags only clear speech.
    pub aggressiveness: u8,
    /// 10, 20 or 30 ms (the lengths WebRTC's VAD accepts).
    pub frame_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        // 1, not more: the segmenter's energy gate already rejects steady
        // noise, and higher modes lose quiet speech (RAVDESS "calm" at -43 dBFS peak).
        Self {
            aggressiveness: 1,
            frame_ms: 20,
        }
    }
}

impl VadConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.aggressiveness > 3 {
            return Err(ConfigError::Aggressiveness(self.aggressiveness));
        }
        if ![10, 20, 30].contains(&self.frame_ms) {
            return Err(ConfigError::FrameMs(self.frame_ms));
        }
        Ok(())
    }

    /// Samples per frame at 16 kHz.
    pub fn frame_len(&self) -> usize {
        (TARGET_RATE * self.frame_ms / 1000) as usize
    }
}

/// WebRTC's VAD over 16 kHz `f32` frames.
///
/// `webrtc_vad::Vad` is not `Send`, so a `FrameVad` lives on the capture
/// thread that feeds it.
pub struct FrameVad {
    vad: webrtc_vad::Vad,
    frame_len: usize,
    pcm: Vec<i16>,
}

impl FrameVad {
    pub fn new(config: VadConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mode = match config.aggressiveness {
            0 => webrtc_vad::VadMode::Quality,
            1 => webrtc_vad::VadMode::LowBitrate,
            2 => webrtc_vad::VadMode::Aggressive,
            _ => webrtc_vad::VadMode::VeryAggressive,
        };
        let vad = webrtc_vad::Vad::new_with_rate_and_mode(webrtc_vad::SampleRate::Rate16kHz, mode);
        let frame_len = config.frame_len();
        Ok(Self {
            vad,
            frame_len,
            pcm: Vec::with_capacity(frame_len),
        })
    }

    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Whether `frame` (exactly [`Self::frame_len`] samples) holds speech.
    pub fn is_speech(&mut self, frame: &[f32]) -> bool {
        debug_assert_eq!(frame.len(), self.frame_len);
        self.pcm.clear();
        self.pcm.extend(
            frame
                .iter()
                .map(|s| (s.clamp(-1.0, 1.0) * 32767.0).round() as i16),
        );
        // Only a frame of an unsupported length is an error; the length is fixed above.
        self.vad.is_voice_segment(&self.pcm).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_settings_webrtc_cannot_use() {
        let bad_mode = VadConfig {
            aggressiveness: 4,
            frame_ms: 20,
        };
        assert_eq!(bad_mode.validate(), Err(ConfigError::Aggressiveness(4)));
        let bad_frame = VadConfig {
            aggressiveness: 1,
            frame_ms: 25,
        };
        assert_eq!(bad_frame.validate(), Err(ConfigError::FrameMs(25)));
        assert!(FrameVad::new(bad_frame).is_err());
    }

    #[test]
    fn silence_is_not_speech() {
        for frame_ms in [10, 20, 30] {
            let mut vad = FrameVad::new(VadConfig {
                aggressiveness: 0,
                frame_ms,
            })
            .unwrap();
            let frame = vec![0.0; vad.frame_len()];
            assert!(!vad.is_speech(&frame));
        }
    }
}
