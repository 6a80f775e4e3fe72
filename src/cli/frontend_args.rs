//! Command-line overrides of the front-end (VAD and segmenter) settings.

use clap::Args;
use emomon::capture::FrontEndConfig;
use emomon::segmenter::SegmenterConfig;
use emomon::vad::{ConfigError, VadConfig};

/// VAD and segmentation settings; defaults suit conversational speech.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Voice activity and segmentation")]
pub struct FrontEndArgs {
    /// VAD aggressiveness: 0 keeps the most as speech, 3 only clear speech (use 3 in noise).
    #[arg(long, default_value_t = VadConfig::default().aggressiveness)]
    pub aggressiveness: u8,
    /// VAD frame length in ms: 10, 20 or 30.
    #[arg(long, default_value_t = VadConfig::default().frame_ms)]
    pub frame_ms: u32,
    /// Consecutive speech (ms) that opens an utterance.
    #[arg(long, default_value_t = SegmenterConfig::default().onset_ms)]
    pub onset_ms: u32,
    /// Audio kept before a detected onset (ms), so soft starts are not clipped.
    #[arg(long, default_value_t = SegmenterConfig::default().pre_roll_ms)]
    pub pre_roll_ms: u32,
    /// Audio kept after the last speech frame (ms).
    #[arg(long, default_value_t = SegmenterConfig::default().post_roll_ms)]
    pub post_roll_ms: u32,
    /// Silence (ms) that ends an utterance; shorter pauses are bridged.
    #[arg(long, default_value_t = SegmenterConfig::default().hangover_ms)]
    pub hangover_ms: u32,
    /// Utterances with less speech than this (ms) are dropped as noise.
    #[arg(long, default_value_t = SegmenterConfig::default().min_speech_ms)]
    pub min_speech_ms: u32,
    /// Longer speech is split (seconds), at a quiet frame near the limit.
    #[arg(long, default_value_t = SegmenterConfig::default().max_utterance_s)]
    pub max_utterance_s: f64,
    /// How far before the limit (seconds) to look for a quiet frame to split at.
    #[arg(long, default_value_t = SegmenterConfig::default().split_search_s)]
    pub split_search_s: f64,
}

impl FrontEndArgs {
    /// The validated configuration, or an error naming the bad setting.
    pub fn config(&self) -> Result<FrontEndConfig, ConfigError> {
        let config = FrontEndConfig {
            vad: VadConfig {
                aggressiveness: self.aggressiveness,
                frame_ms: self.frame_ms,
            },
            segmenter: SegmenterConfig {
                onset_ms: self.onset_ms,
                pre_roll_ms: self.pre_roll_ms,
                post_roll_ms: self.post_roll_ms,
                hangover_ms: self.hangover_ms,
                min_speech_ms: self.min_speech_ms,
                max_utterance_s: self.max_utterance_s,
                split_search_s: self.split_search_s,
            },
        };
        config.vad.validate()?;
        config.segmenter.validate()?;
        Ok(config)
    }
}
