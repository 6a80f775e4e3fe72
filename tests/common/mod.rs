//! Helpers shared by the integration tests: shared-data lookup, decoding,
//! reference speech extents and deterministic noise.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use emomon::audio::convert::MonoResampler;
use emomon::audio::file::FileSource;
use emomon::audio::memory::MemorySource;
use emomon::audio::{AudioSource, TARGET_RATE};
use emomon::capture::{CaptureOutcome, FrontEndConfig, run_capture};
use emomon::utterance::Utterance;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tiny fixture model directory (`models/fixtures/NAME`) as a `--model` argument.
pub fn fixture_model(name: &str) -> String {
    repo()
        .join("models/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs the built `emomon` binary with `args` (ignoring any `EMOMON_MODEL` of the
/// caller's environment) and returns what it did.
pub fn emomon(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_emomon"))
        .args(args)
        .env_remove("EMOMON_MODEL")
        .output()
        .expect("run emomon")
}

/// `../shared/data` beside the repository, or `None` with a printed notice
/// (tests that need it then skip; CI has it).
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.join("manifest.csv").is_file() {
        Some(dir)
    } else {
        skip(
            test,
            format_args!(
                "{} not found (it holds the shared speech clips)",
                dir.display()
            ),
        );
        None
    }
}

/// A test that cannot run here (shared data, set-up weights or a tool missing) prints a
/// notice and returns, so a fresh clone passes; with `EMOMON_REQUIRE_DATA` set (CI sets
/// it) the missing prerequisite is a failure instead, so CI cannot pass with the deeper
/// tests silently gone.
pub fn skip(test: &str, why: impl std::fmt::Display) {
    if std::env::var_os("EMOMON_REQUIRE_DATA").is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{test} cannot run: {why} (EMOMON_REQUIRE_DATA is set)");
    }
    eprintln!("NOTICE: {test} skipped: {why}");
}

/// Decodes any supported file to 16 kHz mono through emomon's own file path.
pub fn decode_16k(path: &Path) -> Vec<f32> {
    let mut source = FileSource::open(path).unwrap_or_else(|e| panic!("{e}"));
    let info = source.info().clone();
    let mut resampler = MonoResampler::new(info.sample_rate, info.channels).unwrap();
    let (mut block, mut out) = (Vec::new(), Vec::new());
    while source.read_block(&mut block).unwrap() {
        resampler.push(&block, &mut out);
        block.clear();
    }
    resampler.finish(&mut out);
    out
}

/// Independent reference for where speech is in a clip: the first and last
/// 10 ms frame whose energy is within `range_db` of the loudest frame and at
/// least `floor_dbfs` (e.g. a little above added noise). Returns seconds.
pub fn speech_extent(samples: &[f32], range_db: f32, floor_dbfs: f32) -> (f64, f64) {
    let frame = (TARGET_RATE / 100) as usize;
    let db: Vec<f32> = samples
        .chunks(frame)
        .map(|c| {
            10.0 * (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32)
                .max(1e-12)
                .log10()
        })
        .collect();
    let loudest = db.iter().cloned().fold(f32::MIN, f32::max);
    let threshold = (loudest - range_db).max(floor_dbfs);
    let first = db
        .iter()
        .position(|&d| d > threshold)
        .expect("clip has speech");
    let last = db
        .iter()
        .rposition(|&d| d > threshold)
        .expect("clip has speech");
    (first as f64 * 0.01, (last + 1) as f64 * 0.01)
}

/// Deterministic white noise (xorshift), uniform, scaled to an RMS level in dBFS.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn samples(&mut self, n: usize, rms_dbfs: f32) -> Vec<f32> {
        // Uniform on [-a, a] has RMS a / sqrt(3).
        let amplitude = 10f32.powf(rms_dbfs / 20.0) * 3f32.sqrt();
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                ((self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * amplitude
            })
            .collect()
    }
}

/// Runs the full capture path on an in-memory signal.
pub fn segment(samples: &[f32], rate: u32, config: &FrontEndConfig) -> Vec<Utterance> {
    let mut source = MemorySource::new("test signal", samples.to_vec(), rate, 1);
    segment_source(&mut source, config)
}

pub fn segment_source(source: &mut dyn AudioSource, config: &FrontEndConfig) -> Vec<Utterance> {
    let (found, outcome) = capture_all(source, config);
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    found
}

/// Runs the capture path to its end, returning the utterances and how it ended.
pub fn capture_all(
    source: &mut dyn AudioSource,
    config: &FrontEndConfig,
) -> (Vec<Utterance>, CaptureOutcome) {
    let mut found = Vec::new();
    let outcome = run_capture(source, config, &AtomicBool::new(false), &mut |u| {
        found.push(u)
    })
    .unwrap();
    (found, outcome)
}

/// Writes 16-bit PCM WAV.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32) {
    write_wav_channels(path, samples, rate, 1);
}

/// Writes 16-bit PCM WAV of `channels` interleaved channels.
pub fn write_wav_channels(path: &Path, samples: &[f32], rate: u32, channels: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        writer
            .write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .unwrap();
    }
    writer.finalize().unwrap();
}
