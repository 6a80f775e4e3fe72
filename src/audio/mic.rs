//! [`MicSource`]: live input from a cpal device (the default microphone or a named one).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{
    Device, SampleFormat, Stream, StreamConfig, SupportedStreamConfig, SupportedStreamConfigRange,
};

use super::ring::{CaptureReader, CaptureWriter, capture_ring};
use super::{AudioError, AudioSource, SourceInfo};

/// Seconds of audio the ring holds: how long the capture thread may stall
/// (e.g. during a burst of VAD work) before samples are dropped and counted.
const RING_SECONDS: usize = 4;
/// How often the capture thread looks for new samples when the ring is empty.
const POLL: Duration = Duration::from_millis(10);
/// Longest wait in one `read_block`, so the capture thread can notice a stop request.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// A device silent for this long (not even zeros) is treated as gone: some
/// backends stall on unplug instead of reporting an error.
const STALL_LIMIT: Duration = Duration::from_secs(3);

/// One input device and what it offers, for `emomon devices`.
#[derive(Debug, Clone)]
pub struct InputDeviceInfo {
    pub name: String,
    pub is_default: bool,
    /// Default config, e.g. "48000 Hz, 2 ch, f32".
    pub default_config: Option<String>,
    /// Supported configs, e.g. "1-2 ch, 8000-192000 Hz, i16".
    pub configs: Vec<String>,
}

/// Lists the input devices of the default host.
pub fn list_input_devices() -> Result<Vec<InputDeviceInfo>, AudioError> {
    let host = cpal::default_host();
    let default_name = host.default_input_device().and_then(|d| d.name().ok());
    let devices = host.input_devices().map_err(|e| AudioError::Device {
        name: host.id().name().to_string(),
        detail: e.to_string(),
    })?;
    Ok(devices
        .map(|device| {
            let name = device.name().unwrap_or_else(|_| "<unnamed>".into());
            let default_config = device.default_input_config().ok().map(|c| {
                format!(
                    "{} Hz, {} ch, {}",
                    c.sample_rate().0,
                    c.channels(),
                    c.sample_format()
                )
            });
            let configs = device
                .supported_input_configs()
                .map(|configs| {
                    configs
                        .map(|c| {
                            format!(
                                "{} ch, {}-{} Hz, {}",
                                c.channels(),
                                c.min_sample_rate().0,
                                c.max_sample_rate().0,
                                c.sample_format()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            InputDeviceInfo {
                is_default: default_name.as_deref() == Some(name.as_str()),
                name,
                default_config,
                configs,
            }
        })
        .collect())
}

/// Live microphone input. Must be created and used on one thread (cpal
/// streams are not `Send` on every platform): the capture thread owns it.
pub struct MicSource {
    ring: RingSource,
    _stream: Stream,
}

impl MicSource {
    /// Opens `device` (a case-insensitive substring of its name) or the default
    /// input, in the device's own default rate, format and channel count.
    pub fn open(device: Option<&str>) -> Result<Self, AudioError> {
        Self::open_with_channels(device, None)
    }

    /// Like [`open`](Self::open), but with `channels` channels when given (see
    /// [`choose_config`]): `--speakers channels` opens a device whose default is mono in
    /// its 2-channel configuration, and refuses one that has none, naming the inputs that do.
    pub fn open_with_channels(
        device: Option<&str>,
        channels: Option<u16>,
    ) -> Result<Self, AudioError> {
        let device = find_device(device)?;
        let (info, supported) = input_config(&device, channels)?;
        let name = info.name.clone();
        let config: StreamConfig = supported.config();
        let (writer, ring) = RingSource::new(info, RING_SECONDS);
        let failure = ring.failure_slot();
        let stream = build_stream(&device, &config, supported.sample_format(), writer, failure)
            .map_err(|detail| AudioError::Device {
                name: name.clone(),
                detail,
            })?;
        stream.play().map_err(|e| AudioError::Device {
            name: name.clone(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            ring,
            _stream: stream,
        })
    }
}

/// What [`MicSource::open_with_channels`] would open `device` with (its name, rate and
/// channels), without opening a stream: for checks made before a session starts, so
/// `--speakers channels` refuses an input without two channels before a log is created.
pub fn input_format(device: Option<&str>, channels: Option<u16>) -> Result<SourceInfo, AudioError> {
    input_config(&find_device(device)?, channels).map(|(info, _)| info)
}

/// The configuration to open an input in: the device's `default`, or — when `channels`
/// asks for a count the default does not have — one of its `supported` configurations
/// with that many channels, at the default's rate when it offers it (else its nearest
/// rate), in the default's sample format when several are left (any format is converted
/// to f32). `None` when no supported configuration has that many channels in a format
/// emomon reads.
pub fn choose_config(
    default: &SupportedStreamConfig,
    supported: &[SupportedStreamConfigRange],
    channels: Option<u16>,
) -> Option<SupportedStreamConfig> {
    let Some(wanted) = channels.filter(|&c| c != default.channels()) else {
        return Some(default.clone());
    };
    let rate = default.sample_rate();
    supported
        .iter()
        .filter(|r| r.channels() == wanted && readable(r.sample_format()))
        .map(|r| {
            let at = rate.clamp(r.min_sample_rate(), r.max_sample_rate());
            (
                at.0.abs_diff(rate.0),
                r.sample_format() != default.sample_format(),
                *r,
                at,
            )
        })
        .min_by_key(|&(distance, other_format, ..)| (distance, other_format))
        .map(|(.., range, at)| range.with_sample_rate(at))
}

/// What to do when an input lacks `wanted` channels: the `devices` (name and supported
/// configurations) that have them, to pick with `--mic`, or where to look.
pub fn channels_hint(wanted: u16, devices: &[(String, Vec<SupportedStreamConfigRange>)]) -> String {
    let offering: Vec<&str> = devices
        .iter()
        .filter(|(_, configs)| {
            configs
                .iter()
                .any(|c| c.channels() == wanted && readable(c.sample_format()))
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if offering.is_empty() {
        format!(
            "no input here offers {wanted} channels: connect a {wanted}-channel interface, or \
             record to a file and use --input FILE (`emomon devices` lists each input's channels)"
        )
    } else {
        format!(
            "choose one that does with --mic NAME: {}",
            offering
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The sample formats [`build_stream`] reads.
fn readable(format: SampleFormat) -> bool {
    matches!(
        format,
        SampleFormat::I8
            | SampleFormat::I16
            | SampleFormat::I32
            | SampleFormat::U8
            | SampleFormat::U16
            | SampleFormat::U32
            | SampleFormat::F32
            | SampleFormat::F64
    )
}

/// The configuration [`choose_config`] picks for `device`, and the source format it gives;
/// an error naming the inputs that offer `channels` when it has none.
fn input_config(
    device: &Device,
    channels: Option<u16>,
) -> Result<(SourceInfo, SupportedStreamConfig), AudioError> {
    let name = device.name().unwrap_or_else(|_| "<unnamed>".into());
    let default = device
        .default_input_config()
        .map_err(|e| AudioError::Device {
            name: name.clone(),
            detail: e.to_string(),
        })?;
    let configs: Vec<SupportedStreamConfigRange> = if channels.is_some() {
        device
            .supported_input_configs()
            .map(Iterator::collect)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let Some(supported) = choose_config(&default, &configs, channels) else {
        let wanted = channels.unwrap_or_default();
        let host = cpal::default_host();
        let devices: Vec<(String, Vec<SupportedStreamConfigRange>)> = host
            .input_devices()
            .map(|devices| {
                devices
                    .map(|d| {
                        let configs = d
                            .supported_input_configs()
                            .map(Iterator::collect)
                            .unwrap_or_default();
                        (d.name().unwrap_or_default(), configs)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut offers: Vec<String> = configs
            .iter()
            .map(|c| format!("{} ch", c.channels()))
            .chain(std::iter::once(format!("{} ch", default.channels())))
            .collect();
        offers.sort();
        offers.dedup();
        return Err(AudioError::NoChannelConfig {
            name,
            wanted,
            offers: offers.join(", "),
            hint: channels_hint(wanted, &devices),
        });
    };
    let info = SourceInfo {
        name,
        sample_rate: supported.sample_rate().0,
        channels: supported.channels(),
    };
    Ok((info, supported))
}

impl AudioSource for MicSource {
    fn info(&self) -> &SourceInfo {
        self.ring.info()
    }
    fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool, AudioError> {
        self.ring.read_block(out)
    }
    fn dropped_frames(&self) -> u64 {
        self.ring.dropped_frames()
    }
}

/// Where a stream failure is recorded by the (non-real-time) error callback.
pub type FailureSlot = Arc<Mutex<Option<String>>>;

/// The capture-thread side of a live input: everything behind the audio
/// callback. [`MicSource`] is this plus a cpal stream; tests drive the same
/// code by calling the [`CaptureWriter`] the way cpal would.
pub struct RingSource {
    info: SourceInfo,
    reader: CaptureReader,
    failure: FailureSlot,
    last_audio: Instant,
}

impl RingSource {
    /// A ring holding `seconds` of audio in `info`'s format, and its writer
    /// for the callback.
    pub fn new(info: SourceInfo, seconds: usize) -> (CaptureWriter, Self) {
        let (writer, reader) = capture_ring(seconds * info.sample_rate as usize, info.channels);
        let source = Self {
            info,
            reader,
            failure: Arc::new(Mutex::new(None)),
            last_audio: Instant::now(),
        };
        (writer, source)
    }

    /// Handle for the error callback: storing a message ends the stream once
    /// the buffered audio has been read.
    pub fn failure_slot(&self) -> &FailureSlot {
        &self.failure
    }
}

impl AudioSource for RingSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Waits (at most [`MAX_WAIT`]) for audio from the callback; the block may
    /// be empty. After a stream failure it first hands out everything still
    /// buffered, then reports the loss.
    fn read_block(&mut self, out: &mut Vec<f32>) -> Result<bool, AudioError> {
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            if self.reader.drain_into(out) > 0 {
                self.last_audio = Instant::now();
                return Ok(true);
            }
            let failure = match self.failure.lock() {
                Ok(slot) => slot.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            let detail = failure.or_else(|| {
                (self.last_audio.elapsed() > STALL_LIMIT)
                    .then(|| format!("no audio for {} s", STALL_LIMIT.as_secs()))
            });
            if let Some(detail) = detail {
                return Err(AudioError::DeviceLost {
                    name: self.info.name.clone(),
                    detail,
                });
            }
            if Instant::now() >= deadline {
                return Ok(true);
            }
            std::thread::sleep(POLL);
        }
    }

    fn dropped_frames(&self) -> u64 {
        self.reader.stats().overrun_frames()
    }
}

fn find_device(wanted: Option<&str>) -> Result<Device, AudioError> {
    let host = cpal::default_host();
    let Some(wanted) = wanted else {
        return host.default_input_device().ok_or(AudioError::NoInputDevice);
    };
    let devices: Vec<Device> = host
        .input_devices()
        .map_err(|e| AudioError::Device {
            name: wanted.to_string(),
            detail: e.to_string(),
        })?
        .collect();
    let needle = wanted.to_lowercase();
    let names: Vec<String> = devices
        .iter()
        .map(|d| d.name().unwrap_or_default())
        .collect();
    let index = names
        .iter()
        .position(|n| n.to_lowercase() == needle)
        .or_else(|| {
            names
                .iter()
                .position(|n| n.to_lowercase().contains(&needle))
        });
    match index {
        Some(i) => Ok(devices
            .into_iter()
            .nth(i)
            .ok_or(AudioError::NoInputDevice)?),
        None => Err(AudioError::DeviceNotFound {
            wanted: wanted.to_string(),
            available: if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
        }),
    }
}

fn build_stream(
    device: &Device,
    config: &StreamConfig,
    format: SampleFormat,
    writer: CaptureWriter,
    failure: &FailureSlot,
) -> Result<Stream, String> {
    match format {
        SampleFormat::I8 => typed_stream::<i8>(device, config, writer, failure),
        SampleFormat::I16 => typed_stream::<i16>(device, config, writer, failure),
        SampleFormat::I32 => typed_stream::<i32>(device, config, writer, failure),
        SampleFormat::U8 => typed_stream::<u8>(device, config, writer, failure),
        SampleFormat::U16 => typed_stream::<u16>(device, config, writer, failure),
        SampleFormat::U32 => typed_stream::<u32>(device, config, writer, failure),
        SampleFormat::F32 => typed_stream::<f32>(device, config, writer, failure),
        SampleFormat::F64 => typed_stream::<f64>(device, config, writer, failure),
        other => Err(format!("unsupported sample format {other}")),
    }
}

fn typed_stream<T>(
    device: &Device,
    config: &StreamConfig,
    mut writer: CaptureWriter,
    failure: &FailureSlot,
) -> Result<Stream, String>
where
    T: cpal::SizedSample,
    f32: cpal::FromSample<T>,
{
    let failure = Arc::clone(failure);
    device
        .build_input_stream(
            config,
            move |data: &[T], _: &cpal::InputCallbackInfo| writer.write(data),
            move |err| {
                // The error callback is not the real-time path; recording the
                // failure here lets the capture thread end the stream cleanly.
                if let Ok(mut slot) = failure.lock() {
                    slot.get_or_insert_with(|| err.to_string());
                }
            },
            None,
        )
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::{SampleRate, SupportedBufferSize};

    fn range(ch: u16, lo: u32, hi: u32, f: SampleFormat) -> SupportedStreamConfigRange {
        let any = SupportedBufferSize::Unknown;
        SupportedStreamConfigRange::new(ch, SampleRate(lo), SampleRate(hi), any, f)
    }

    fn config(ch: u16, rate: u32, f: SampleFormat) -> SupportedStreamConfig {
        SupportedStreamConfig::new(ch, SampleRate(rate), SupportedBufferSize::Unknown, f)
    }

    /// (name, default, supported) of a few devices as cpal describes them.
    fn devices() -> Vec<(
        &'static str,
        SupportedStreamConfig,
        Vec<SupportedStreamConfigRange>,
    )> {
        use SampleFormat::{F32, I16};
        vec![
            (
                "USB mono mic",
                config(1, 48_000, I16),
                vec![range(1, 8_000, 48_000, I16)],
            ),
            (
                "Built-in",
                config(1, 44_100, F32),
                vec![
                    range(1, 44_100, 44_100, F32),
                    range(2, 44_100, 48_000, I16),
                    range(2, 44_100, 44_100, F32),
                    range(2, 8_000, 16_000, F32),
                ],
            ),
            (
                "Interface",
                config(2, 48_000, F32),
                vec![range(2, 48_000, 96_000, F32)],
            ),
            (
                "Narrow",
                config(1, 16_000, I16),
                vec![range(2, 44_100, 96_000, I16)],
            ),
        ]
    }

    #[test]
    fn a_mono_default_is_kept_unless_two_channels_are_needed_then_a_stereo_config_is_chosen() {
        use SampleFormat::{F32, I16};
        for (name, default, supported) in devices() {
            assert_eq!(
                choose_config(&default, &supported, None).as_ref(),
                Some(&default),
                "{name}"
            );
        }
        let chosen: Vec<Option<SupportedStreamConfig>> = devices()
            .iter()
            .map(|(_, default, supported)| choose_config(default, supported, Some(2)))
            .collect();
        assert_eq!(
            chosen,
            [
                None,                         // mono only: refused
                Some(config(2, 44_100, F32)), // the default's rate and format
                Some(config(2, 48_000, F32)), // already stereo: its default
                Some(config(2, 44_100, I16)), // the nearest rate it offers
            ]
        );
    }

    #[test]
    fn without_a_stereo_config_the_error_names_the_inputs_that_have_one() {
        let list: Vec<(String, Vec<SupportedStreamConfigRange>)> = devices()
            .into_iter()
            .map(|(name, _, supported)| (name.to_string(), supported))
            .collect();
        let err = AudioError::NoChannelConfig {
            name: "USB mono mic".into(),
            wanted: 2,
            offers: "1 ch".into(),
            hint: channels_hint(2, &list),
        };
        assert_eq!(
            err.to_string(),
            "input device \"USB mono mic\" offers no 2-channel input, which --speakers channels \
             needs (it offers 1 ch); choose one that does with --mic NAME: \"Built-in\", \
             \"Interface\", \"Narrow\""
        );
        let mono_only = &list[..1];
        assert!(
            channels_hint(2, mono_only).starts_with("no input here offers 2 channels"),
            "{}",
            channels_hint(2, mono_only)
        );
    }
}
