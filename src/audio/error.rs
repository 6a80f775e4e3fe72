//! Errors of audio sources, each naming the file or device and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The OS error is part of the message and deliberately not a `#[source]`:
    /// `{:#}` would print it a second time.
    #[error("cannot open audio file {}: {error}", path.display())]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} is a directory; give an audio file (WAV, FLAC, MP3 or Ogg Vorbis)", path.display())]
    IsDirectory { path: PathBuf },
    #[error(
        "{} has an invalid header: {detail}; the file is corrupt or not really audio",
        path.display()
    )]
    BadHeader { path: PathBuf, detail: String },
    #[error("{} is empty (0 bytes): nothing to analyse", path.display())]
    EmptyFile { path: PathBuf },
    #[error(
        "{} is not a recognised audio file ({detail}); emomon reads WAV, FLAC, MP3 and Ogg Vorbis",
        path.display()
    )]
    Unrecognised { path: PathBuf, detail: String },
    #[error(
        "{} uses a codec emomon cannot decode ({detail}); convert it, e.g. `sox IN -r 16000 -c 1 OUT.wav`",
        path.display()
    )]
    UnsupportedCodec { path: PathBuf, detail: String },
    #[error("{} has no audio samples (its data is empty)", path.display())]
    NoSamples { path: PathBuf },
    #[error(
        "{} is truncated or corrupt: decoding stopped at {at_s:.2} s of {expected_s:.2} s ({detail}); audio before that point was used",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        at_s: f64,
        expected_s: f64,
        detail: String,
    },
    #[error("{} could not be read at {at_s:.2} s: {detail}", path.display())]
    Read {
        path: PathBuf,
        at_s: f64,
        detail: String,
    },
    #[error(
        "no audio input device found; connect a microphone, or analyse a file with --input FILE"
    )]
    NoInputDevice,
    #[error(
        "no input device matches \"{wanted}\"; available: {available}. `emomon devices` lists them"
    )]
    DeviceNotFound { wanted: String, available: String },
    #[error(
        "input device \"{name}\" stopped delivering audio ({detail}); was it unplugged? What was captured before was kept"
    )]
    DeviceLost { name: String, detail: String },
    #[error("input device \"{name}\": {detail}")]
    Device { name: String, detail: String },
    /// The input has no configuration with the channel count a mode needs
    /// (`--speakers channels` needs 2).
    #[error(
        "input device \"{name}\" offers no {wanted}-channel input, which --speakers channels \
         needs (it offers {offers}); {hint}"
    )]
    NoChannelConfig {
        name: String,
        wanted: u16,
        offers: String,
        /// What to do instead: which inputs do offer it.
        hint: String,
    },
}
