//! [`FileSource`]: decodes WAV, FLAC, MP3 and Ogg Vorbis with symphonia.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::{AudioError, AudioSource, SourceInfo, header};

/// Runs decoder code, turning a panic on malformed input into an error naming the
/// file. The headers are checked first ([`header`]); this is the last line of
/// defence for what a check cannot foresee.
fn no_panic<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T, AudioError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "decoder failure".into());
        AudioError::BadHeader {
            path: path.to_path_buf(),
            detail: format!("the decoder gave up: {what}"),
        }
    })
}

/// Corrupt packets tolerated (skipped with a warning) before giving up on a file.
const MAX_SKIPPED_PACKETS: usize = 16;

/// An audio file decoded packet by packet, as fast as the consumer reads.
///
/// Wrap it in [`super::pace::Paced`] to deliver it at the pace of a microphone.
pub struct FileSource {
    path: PathBuf,
    info: SourceInfo,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    /// Frames the container promises, when it says (WAV, FLAC): detects truncation.
    expected_frames: Option<u64>,
    decoded_frames: u64,
    skipped_packets: usize,
    sample_buf: Option<SampleBuffer<f32>>,
    finished: bool,
}

impl FileSource {
    /// Opens and probes `path`; fails with a message naming the file if it is
    /// missing, empty, not audio, or in a codec symphonia cannot decode.
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let open_err = |error| AudioError::Open {
            path: path.to_path_buf(),
            error,
        };
        let mut file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if meta.is_dir() {
            return Err(AudioError::IsDirectory {
                path: path.to_path_buf(),
            });
        }
        if meta.len() == 0 {
            return Err(AudioError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        header::check_file(path, &mut file)?;
        file.seek(SeekFrom::Start(0)).map_err(open_err)?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let probed = no_panic(path, || {
            symphonia::default::get_probe().format(
                &hint,
                mss,
                &FormatOptions::default(),
                &MetadataOptions::default(),
            )
        })?
        .map_err(|e| AudioError::Unrecognised {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| AudioError::Unrecognised {
                path: path.to_path_buf(),
                detail: "it contains no audio track".into(),
            })?;
        let params = &track.codec_params;
        let sample_rate = params.sample_rate.ok_or_else(|| AudioError::Unrecognised {
            path: path.to_path_buf(),
            detail: "the audio track does not state its sample rate".into(),
        })?;
        let channels = params.channels.map(|c| c.count()).unwrap_or(1);
        // Every format, including those whose header was not read above.
        header::check_format(path, sample_rate, channels)?;
        let decoder = symphonia::default::get_codecs()
            .make(params, &DecoderOptions::default())
            .map_err(|e| AudioError::UnsupportedCodec {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        let track_id = track.id;
        let expected_frames = params.n_frames;
        Ok(Self {
            path: path.to_path_buf(),
            info: SourceInfo {
                name: path.display().to_string(),
                sample_rate,
                channels: channels as u16,
            },
            format,
            decoder,
            track_id,
            expected_frames,
            decoded_frames: 0,
            skipped_packets: 0,
            sample_buf: None,
            finished: false,
        })
    }

    fn seconds(&self, frames: u64) -> f64 {
        frames as f64 / f64::from(self.info.sample_rate)
    }

    /// Ends the stream with a read error at the current position.
    fn fail(&mut self, detail: String) -> AudioError {
        self.finished = true;
        AudioError::Read {
            path: self.path.clone(),
            at_s: self.seconds(self.decoded_frames),
            detail,
        }
    }

    /// Called when the container has no more packets: checks it delivered all
    /// it promised.
    fn end_of_stream(&mut self, detail: &str) -> Result<bool, AudioError> {
        self.finished = true;
        if self.decoded_frames == 0 {
            return Err(AudioError::NoSamples {
                path: self.path.clone(),
            });
        }
        match self.expected_frames {
            Some(expected) if self.decoded_frames < expected => Err(AudioError::Truncated {
                path: self.path.clone(),
                at_s: self.seconds(self.decoded_frames),
                expected_s: self.seconds(expected),
                detail: detail.to_string(),
            }),
            _ => Ok(false),
        }
    }
}

impl AudioSource for FileSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool, AudioError> {
        while !self.finished {
            let packet = match self.format.next_packet() {
                Ok(packet) => packet,
                // symphonia signals the normal end of a stream with UnexpectedEof.
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    return self.end_of_stream("the file ends early");
                }
                Err(SymphoniaError::ResetRequired) => {
                    return self.end_of_stream("the stream changed format mid-file");
                }
                Err(e) => return Err(self.fail(e.to_string())),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let (decoder, path) = (&mut self.decoder, &self.path);
            let result = match no_panic(path, || decoder.decode(&packet)) {
                Ok(result) => result,
                Err(e) => {
                    self.finished = true;
                    return Err(e);
                }
            };
            let decoded = match result {
                Ok(decoded) => decoded,
                Err(SymphoniaError::DecodeError(detail)) => {
                    self.skipped_packets += 1;
                    // One warning per file: random bytes would otherwise print a
                    // line per packet before the real error.
                    if self.skipped_packets == 1 {
                        tracing::warn!(
                            file = %self.path.display(),
                            at_s = self.seconds(self.decoded_frames),
                            "skipping a corrupt packet: {detail} (further ones are logged at debug level)"
                        );
                    } else {
                        tracing::debug!(
                            file = %self.path.display(),
                            at_s = self.seconds(self.decoded_frames),
                            "skipping a corrupt packet: {detail}"
                        );
                    }
                    if self.skipped_packets > MAX_SKIPPED_PACKETS {
                        return Err(
                            self.fail(format!("more than {MAX_SKIPPED_PACKETS} corrupt packets"))
                        );
                    }
                    continue;
                }
                Err(e) => return Err(self.fail(e.to_string())),
            };
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            let spec = *decoded.spec();
            let needed = (frames * spec.channels.count()) as u64;
            let buf = match &mut self.sample_buf {
                Some(buf) if buf.capacity() as u64 >= needed => buf,
                slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
            };
            buf.copy_interleaved_ref(decoded);
            out.extend_from_slice(buf.samples());
            self.decoded_frames += frames as u64;
            return Ok(true);
        }
        Ok(false)
    }
}
