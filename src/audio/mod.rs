//! Audio sources: where sound comes from before it is cut into utterances.
//!
//! Every source (microphone, file) yields interleaved `f32` blocks at its own
//! native rate and channel count; [`convert::MonoResampler`] turns them into
//! the 16 kHz mono stream the VAD and the models expect. Keeping sources
//! native means no device or file is ever asked for a format it lacks.

pub mod convert;
pub mod error;
pub mod file;
pub mod header;

#[cfg(test)]
pub(crate) mod fuzz_tests;
pub mod memory;
pub mod mic;
pub mod pace;
pub mod ring;
pub mod whole_file;

pub use error::AudioError;

/// Sample rate of everything downstream of the sources (VAD, models).
pub const TARGET_RATE: u32 = 16_000;

/// What a source delivers: its name (file path or device), native rate and channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub name: String,
    pub sample_rate: u32,
    pub channels: u16,
}

/// A stream of interleaved `f32` samples in `[-1, 1]`.
///
/// Not `Send`: a cpal stream must stay on the thread that made it, so the
/// capture thread builds its source itself (see [`crate::capture`]).
pub trait AudioSource {
    fn info(&self) -> &SourceInfo;

    /// Appends the next block of interleaved samples (whole frames) to `out`.
    ///
    /// Returns `Ok(false)` once the stream has ended and nothing was appended.
    /// An error ends the stream too; samples appended before it stay valid, so
    /// callers can still segment what was captured.
    fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool, AudioError>;

    /// Frames the source had to drop because its consumer was too slow.
    fn dropped_frames(&self) -> u64 {
        0
    }
}

impl<S: AudioSource + ?Sized> AudioSource for Box<S> {
    fn info(&self) -> &SourceInfo {
        (**self).info()
    }
    fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool, AudioError> {
        (**self).read_block(out)
    }
    fn dropped_frames(&self) -> u64 {
        (**self).dropped_frames()
    }
}
