//! [`Paced`]: delivers any source no faster than real time, like a microphone.

use std::time::{Duration, Instant};

use super::{AudioError, AudioSource, SourceInfo};

/// Wraps a source so that sample `n` is handed out no earlier than `n / rate`
/// seconds after the first read: demos on files then behave like live input.
pub struct Paced<S> {
    inner: S,
    started: Option<Instant>,
    delivered_frames: u64,
}

impl<S: AudioSource> Paced<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            started: None,
            delivered_frames: 0,
        }
    }
}

impl<S: AudioSource> AudioSource for Paced<S> {
    fn info(&self) -> &SourceInfo {
        self.inner.info()
    }

    fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool, AudioError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let info = self.inner.info();
        let due =
            Duration::from_secs_f64(self.delivered_frames as f64 / f64::from(info.sample_rate));
        let channels = usize::from(info.channels);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let before = out.len();
        let more = self.inner.read_block(out)?;
        self.delivered_frames += ((out.len() - before) / channels) as u64;
        Ok(more)
    }

    fn dropped_frames(&self) -> u64 {
        self.inner.dropped_frames()
    }
}
