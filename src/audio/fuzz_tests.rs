//! A bounded mutation fuzz of the decoder path (header checks → symphonia →
//! downmix/resample), run as an ordinary test so CI runs it every time.
//!
//! `cargo fuzz` needs a nightly compiler this project does not use; instead real
//! files are mutated deterministically (header bytes, chunk sizes set to extremes,
//! random bytes, truncation) and each mutant goes through [`FileSource`] and
//! [`MonoResampler`] as `emomon segment` would read it. Every mutant must either
//! decode or fail with an error naming the file: no panic, no runaway allocation
//! (the resampler is sized by the header's rate). `EMOMON_FUZZ_ITERS=N` runs N
//! mutants per seed file instead of the default.

use std::path::{Path, PathBuf};

use super::AudioSource;
use super::convert::MonoResampler;
use super::file::FileSource;

/// Deterministic xorshift64*: the same mutants on every run and machine.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutants per seed file (default keeps the test to a few seconds).
pub(crate) fn iterations(default: usize) -> usize {
    std::env::var("EMOMON_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One mutation of `seed`, chosen by `rng`.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    let extremes: [u32; 6] = [0, 1, 2, 0x7fff_ffff, 0x8000_0000, u32::MAX];
    match rng.below(5) {
        // A header byte (RIFF/fmt/data fields, FLAC STREAMINFO live in the first 64).
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(64.min(b.len()));
                b[i] = rng.next() as u8;
            }
        }
        // A 32-bit field in the header set to an extreme value: half the time one
        // that sizes something (WAV channels+rate, rate, byte rate, align+bits,
        // data size; FLAC STREAMINFO rate), else anywhere in the first 60 bytes.
        1 => {
            let fields = [22, 24, 28, 32, 40, 18];
            let i = if rng.below(2) == 0 {
                fields[rng.below(fields.len())]
            } else {
                rng.below(60)
            }
            .min(b.len().saturating_sub(4));
            let v = extremes[rng.below(extremes.len())];
            b[i..i + 4].copy_from_slice(&v.to_le_bytes());
        }
        // Random bytes anywhere.
        2 => {
            for _ in 0..1 + rng.below(64) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
        }
        // Truncation.
        3 => b.truncate(rng.below(b.len())),
        // A run of garbage overwriting the middle.
        _ => {
            let start = rng.below(b.len());
            let len = rng.below(4096).min(b.len() - start);
            for x in &mut b[start..start + len] {
                *x = rng.next() as u8;
            }
        }
    }
    b
}

/// Decodes and resamples `path` as the front end does; `Err` carries the message.
fn decode(path: &Path) -> Result<usize, String> {
    let mut source = FileSource::open(path).map_err(|e| e.to_string())?;
    let info = source.info().clone();
    let mut resampler =
        MonoResampler::new(info.sample_rate, info.channels).map_err(|e| e.to_string())?;
    let (mut block, mut out) = (Vec::new(), Vec::new());
    let mut produced = 0;
    loop {
        block.clear();
        out.clear();
        let more = source.read_block(&mut block).map_err(|e| e.to_string())?;
        resampler.push(&block, &mut out);
        produced += out.len();
        if !more {
            return Ok(produced);
        }
    }
}

fn fuzz_file(seed_path: &Path, seed: u64, n: usize) {
    let bytes = std::fs::read(seed_path).expect("seed file");
    let dir = tempfile::tempdir().expect("temp dir");
    let ext = seed_path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("bin");
    let mut rng = Rng::new(seed);
    let (mut decoded, mut refused) = (0, 0);
    for i in 0..n {
        let mutant = mutate(&bytes, &mut rng);
        let path: PathBuf = dir.path().join(format!("mutant-{i}.{ext}"));
        std::fs::write(&path, &mutant).expect("write mutant");
        let outcome = std::panic::catch_unwind(|| decode(&path));
        match outcome {
            Ok(Ok(_)) => decoded += 1,
            Ok(Err(message)) => {
                assert!(
                    message.contains(&path.display().to_string()),
                    "mutant {i} of {}: the error must name the file: {message}",
                    seed_path.display()
                );
                // The panic backstop must not be what saved us: the header checks
                // are meant to refuse everything a decoder would choke on.
                assert!(
                    !message.contains("the decoder gave up"),
                    "mutant {i} of {} reached a decoder panic: {message}",
                    seed_path.display()
                );
                refused += 1;
            }
            Err(_) => panic!(
                "mutant {i} of {} (seed {seed}) panicked; reproduce with the same seed",
                seed_path.display()
            ),
        }
    }
    // Both outcomes occur, so the mutations reach past the header checks.
    assert!(
        decoded > 0 && refused > 0,
        "{decoded} decoded, {refused} refused"
    );
}

#[test]
fn mutated_wav_files_decode_or_fail_clearly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    fuzz_file(&root.join("12.wav"), 18, iterations(150));
}

#[test]
fn mutated_flac_files_decode_or_fail_clearly() {
    let flac = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/ravdess/03-01-01-01-02-01-15.flac");
    if !flac.exists() {
        eprintln!(
            "skipping mutated_flac_files_decode_or_fail_clearly: {} not found",
            flac.display()
        );
        return;
    }
    fuzz_file(&flac, 1813, iterations(100));
}
