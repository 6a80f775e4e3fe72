//! `--save-audio DIR`: one WAV file per utterance, only when the user asks.
//!
//! emomon keeps no audio by default (sessions may be clinical); this is the only
//! place that writes any. Files are 16 kHz mono 16-bit PCM, named by utterance id
//! (`utterance-000012.wav`), and hold the audio the scorer heard (with pre- and
//! post-roll). The WAV header is written by hand: 44 bytes do not justify a
//! dependency.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::audio::TARGET_RATE;
use crate::utterance::Utterance;

/// Failure to save one utterance's audio (the session goes on).
#[derive(Debug, thiserror::Error)]
#[error("cannot save audio to {path}: {source}")]
pub struct SaveAudioError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes utterance audio into a directory.
#[derive(Debug, Clone)]
pub struct AudioSaver {
    dir: PathBuf,
}

impl AudioSaver {
    /// Creates `dir` (and parents) now, so an unwritable path fails before the
    /// session starts rather than at the first utterance.
    pub fn new(dir: &Path) -> Result<Self, SaveAudioError> {
        let err = |source| SaveAudioError {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let probe = dir.join(".emomon-write-test");
        std::fs::write(&probe, b"").map_err(err)?;
        let _ = std::fs::remove_file(&probe);
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The file an utterance is saved to.
    pub fn path_for(&self, id: u64) -> PathBuf {
        self.dir.join(format!("utterance-{id:06}.wav"))
    }

    /// Writes `u`'s samples as a WAV file.
    pub fn save(&self, u: &Utterance) -> Result<PathBuf, SaveAudioError> {
        let path = self.path_for(u.id);
        let bytes = wav_bytes(&u.samples, TARGET_RATE);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(|source| SaveAudioError {
                path: path.clone(),
                source,
            })?;
        Ok(path)
    }
}

/// A complete 16-bit mono PCM WAV file.
pub fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}
