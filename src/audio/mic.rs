//! [`MicSource`]: live input from a cpal device (the default microphone or a named one).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{Device, SampleFormat, Stream, StreamConfig};

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
        let device = find_device(device)?;
        let (info, supported) = default_format(&device)?;
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

/// What [`MicSource::open`] would open `device` with (its name, rate and channels),
/// without opening a stream: for checks made before a session starts, such as
/// `--speakers channels` needing two channels.
pub fn input_format(device: Option<&str>) -> Result<SourceInfo, AudioError> {
    default_format(&find_device(device)?).map(|(info, _)| info)
}

/// A device's default input configuration, and the source format it gives.
fn default_format(
    device: &Device,
) -> Result<(SourceInfo, cpal::SupportedStreamConfig), AudioError> {
    let name = device.name().unwrap_or_else(|_| "<unnamed>".into());
    let supported = device
        .default_input_config()
        .map_err(|e| AudioError::Device {
            name: name.clone(),
            detail: e.to_string(),
        })?;
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
