//! A whole audio file as 16 kHz mono samples, for the commands that score files
//! (`score --whole`, `eval`, `bench score --audio`) rather than live utterances.

use std::path::Path;

use anyhow::Context;

use super::convert::MonoResampler;
use super::file::FileSource;
use super::{AudioError, AudioSource};

/// An audio file as 16 kHz mono samples; a read error anywhere fails the whole file.
pub fn read_16k(path: &Path) -> anyhow::Result<Vec<f32>> {
    match read_16k_until_error(path)? {
        (samples, None) => Ok(samples),
        (_, Some(error)) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// An audio file as 16 kHz mono samples up to the first read error (returned
/// beside them: samples decoded before it stay valid, so a truncated file still has
/// its audio scored).
pub fn read_16k_until_error(path: &Path) -> anyhow::Result<(Vec<f32>, Option<AudioError>)> {
    let mut source = FileSource::open(path)?;
    let info = source.info().clone();
    let mut resampler = MonoResampler::new(info.sample_rate, info.channels)
        .with_context(|| format!("cannot resample {}", path.display()))?;
    let (mut block, mut samples) = (Vec::new(), Vec::new());
    let mut error = None;
    loop {
        block.clear();
        let more = match source.read_block(&mut block) {
            Ok(more) => more,
            Err(e) => {
                error = Some(e);
                false
            }
        };
        resampler.push(&block, &mut samples);
        if !more {
            break;
        }
    }
    resampler.finish(&mut samples);
    Ok((samples, error))
}
