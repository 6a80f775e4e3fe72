//! `--save-audio DIR`: one WAV file per utterance, only when the user asks.
//!
//! emomon keeps no audio by default (sessions may be clinical); this is the only
//! place that writes any. Files are 16 kHz mono 16-bit PCM, named by utterance id
//! (`utterance-000012.wav`), and hold the audio the scorer heard (with pre- and
//! post-roll). The files are written by `hound`, the WAV crate the tests read
//! them back with.

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
        write_wav(&path, &u.samples, TARGET_RATE).map_err(|source| SaveAudioError {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// Writes `samples` (−1…1, clamped) to `path` as 16-bit mono PCM at `rate` Hz.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32) -> std::io::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let write = || -> Result<(), hound::Error> {
        let mut writer = hound::WavWriter::create(path, spec)?;
        let mut pcm = writer.get_i16_writer(samples.len() as u32);
        for s in samples {
            pcm.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16);
        }
        pcm.flush()?;
        writer.finalize()
    };
    write().map_err(|e| match e {
        hound::Error::IoError(e) => e,
        other => std::io::Error::other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_wav_reads_back_as_16_bit_mono_with_the_samples_clamped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("u.wav");
        let samples = [0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0];
        write_wav(&path, &samples, 16_000).expect("written");
        let mut reader = hound::WavReader::open(&path).expect("a WAV file");
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.sample_rate), (1, 16_000));
        assert_eq!(spec.bits_per_sample, 16);
        let back: Vec<i16> = reader
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(back, [0, 16384, -16384, 32767, -32767, 32767, -32767]);
    }

    #[test]
    fn saving_into_a_removed_directory_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let saver = AudioSaver::new(&dir.path().join("audio")).expect("saver");
        std::fs::remove_dir(dir.path().join("audio")).expect("removed");
        let u = Utterance {
            id: 3,
            start_s: 0.0,
            end_s: 0.01,
            audio_start_s: 0.0,
            samples: vec![0.1; 160].into(),
            voiced_s: 0.01,
            rms_dbfs: -20.0,
            peak_dbfs: -20.0,
            split: false,
            channel: None,
        };
        let err = saver.save(&u).expect_err("directory is gone");
        assert!(err.to_string().contains("utterance-000003.wav"), "{err}");
    }
}
