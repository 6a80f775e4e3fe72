//! [`MemorySource`]: audio already in memory, delivered in fixed blocks.
//!
//! Lets tests, benchmarks and evaluation run the exact capture path of files
//! and microphones on generated or pre-decoded signals.

use super::{AudioError, AudioSource, SourceInfo};

pub struct MemorySource {
    info: SourceInfo,
    samples: Vec<f32>,
    position: usize,
    block_frames: usize,
}

impl MemorySource {
    /// `samples` are interleaved with `channels` channels at `sample_rate`.
    pub fn new(name: &str, samples: Vec<f32>, sample_rate: u32, channels: u16) -> Self {
        Self {
            info: SourceInfo {
                name: name.to_string(),
                sample_rate,
                channels,
            },
            samples,
            position: 0,
            block_frames: 1024,
        }
    }
}

impl AudioSource for MemorySource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool, AudioError> {
        let step = self.block_frames * usize::from(self.info.channels.max(1));
        let end = (self.position + step).min(self.samples.len());
        out.extend_from_slice(&self.samples[self.position..end]);
        let more = end > self.position;
        self.position = end;
        Ok(more)
    }
}
