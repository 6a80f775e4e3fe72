//! The microphone path behind the cpal callback: a "callback" thread pushes
//! a recording in 10 ms blocks of i16 (as a 48 kHz stereo device would) into
//! the same ring and `RingSource` that `MicSource` uses; the utterances must
//! equal those of the file path, and a device lost mid-speech must still
//! yield what was heard.

use crate::common;

use std::path::Path;
use std::thread;
use std::time::Duration;

use common::{Noise, capture_all, decode_16k, segment};
use emomon::audio::convert::MonoResampler;
use emomon::audio::mic::RingSource;
use emomon::audio::{AudioError, SourceInfo};
use emomon::capture::FrontEndConfig;

const DEVICE_RATE: u32 = 48_000;

/// The repo's clips with pauses between them, as 16 kHz mono.
fn recording() -> Vec<f32> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    let mut samples = Noise::new(3).samples(16_000, -70.0);
    for clip in ["03.wav", "07.wav", "12.wav"] {
        samples.extend(decode_16k(&dir.join(clip)));
        samples.extend(Noise::new(5).samples(24_000, -70.0));
    }
    samples
}

/// 16 kHz mono → 48 kHz stereo i16, like a laptop microphone delivers.
fn as_device_audio(mono_16k: &[f32]) -> Vec<i16> {
    mono_16k
        .iter()
        .flat_map(|&s| {
            let v = (s.clamp(-1.0, 1.0) * 32767.0) as i16;
            [v; 6] // 3× the rate, 2 channels (sample-and-hold is enough here)
        })
        .collect()
}

fn device_info() -> SourceInfo {
    SourceInfo {
        name: "test microphone".into(),
        sample_rate: DEVICE_RATE,
        channels: 2,
    }
}

#[test]
fn callback_path_finds_the_same_utterances_as_the_file_path() {
    let mono = recording();
    // Reference: the same device-format audio, read without ring or threads.
    let device_audio = as_device_audio(&mono);
    let as_f32: Vec<f32> = device_audio
        .iter()
        .map(|&v| f32::from(v) / 32768.0)
        .collect();
    let mut reference_source =
        emomon::audio::memory::MemorySource::new("reference", as_f32, DEVICE_RATE, 2);
    let expected = common::segment_source(&mut reference_source, &FrontEndConfig::default());
    assert!(
        expected.len() >= 3,
        "the recording holds three clips: {expected:?}"
    );

    // A ring that holds the whole recording: the callbacks run 20× faster than real time,
    // and on a loaded machine the capture thread may fall seconds behind; what is compared
    // here is the path, not the pace (overruns have their own tests).
    let seconds = device_audio.len() / (DEVICE_RATE as usize * 2) + 2;
    let (mut writer, mut source) = RingSource::new(device_info(), seconds);
    let failure = std::sync::Arc::clone(source.failure_slot());
    let callback = thread::spawn(move || {
        // 10 ms callbacks, faster than real time.
        for block in device_audio.chunks(480 * 2) {
            writer.write(block);
            thread::sleep(Duration::from_micros(500));
        }
        // The stream ends the way a real one does when the device goes: via the error callback.
        *failure.lock().unwrap() = Some("stream closed by test".into());
        writer
    });
    let (found, outcome) = capture_all(&mut source, &FrontEndConfig::default());
    let writer = callback.join().unwrap();
    assert!(
        matches!(outcome.error, Some(AudioError::DeviceLost { .. })),
        "{:?}",
        outcome.error
    );
    assert_eq!(writer.stats().overrun_frames(), 0);
    let times = |v: &[emomon::utterance::Utterance]| -> Vec<(f64, f64)> {
        v.iter().map(|u| (u.start_s, u.end_s)).collect()
    };
    assert_eq!(times(&found), times(&expected));
}

#[test]
fn device_lost_mid_speech_keeps_what_was_heard() {
    let mono = recording();
    // Unplug 1 s into the second clip.
    let first_clip_end = 16_000
        + decode_16k(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/03.wav"))
            .len()
        + 24_000;
    let cut = first_clip_end + 16_000;
    let device_audio = as_device_audio(&mono[..cut]);
    let (mut writer, mut source) = RingSource::new(device_info(), 30);
    writer.write(&device_audio);
    *source.failure_slot().lock().unwrap() =
        Some("The requested device is no longer available".into());

    let (found, outcome) = capture_all(&mut source, &FrontEndConfig::default());
    let error = outcome.error.expect("the loss is reported");
    assert!(error.to_string().contains("test microphone"), "{error}");
    assert_eq!(
        found.len(),
        2,
        "the first clip and the part of the second before the loss: {found:?}"
    );
    let heard_s = cut as f64 / 16_000.0;
    assert!(
        found[1].end_s <= heard_s + 0.001 && found[1].end_s > heard_s - 0.3,
        "{:?}",
        found[1]
    );
    assert!((outcome.summary.seconds - heard_s).abs() < 0.01);
}

#[test]
fn overruns_are_counted_and_reported_by_the_source() {
    let (mut writer, source) = RingSource::new(device_info(), 1);
    let second = as_device_audio(&vec![0.1; 16_000]);
    writer.write(&second); // fills the 1 s ring
    writer.write(&second[..960]); // 10 ms more: dropped
    assert_eq!(emomon::audio::AudioSource::dropped_frames(&source), 480);
}

#[test]
fn the_16k_reference_agrees_with_the_device_rate_path() {
    // Guards the test itself: the 48 kHz stereo rendering segments like the 16 kHz original.
    let mono = recording();
    let at_16k = segment(&mono, 16_000, &FrontEndConfig::default());
    let device: Vec<f32> = as_device_audio(&mono)
        .iter()
        .map(|&v| f32::from(v) / 32768.0)
        .collect();
    let mut resampled = Vec::new();
    let mut r = MonoResampler::new(DEVICE_RATE, 2).unwrap();
    r.push(&device, &mut resampled);
    r.finish(&mut resampled);
    let at_48k = segment(&resampled, 16_000, &FrontEndConfig::default());
    assert_eq!(at_16k.len(), at_48k.len());
    for (a, b) in at_16k.iter().zip(&at_48k) {
        assert!(
            (a.start_s - b.start_s).abs() <= 0.02 && (a.end_s - b.end_s).abs() <= 0.02,
            "{a:?} vs {b:?}"
        );
    }
}
