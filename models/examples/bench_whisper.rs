//! Per-stage latency of Whisper on the flex CPU backend: log-mel, encoder, first decoder
//! step (prompt in one pass), for one utterance, with and without 30 s padding.
//!
//! `cargo run --release -p emomon-models --example bench_whisper -- MODEL_DIR [SECONDS] [RUNS]`
//!
//! A benchmark, not a test: numbers depend on the machine; compare ratios within one run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use burn::prelude::*;
use emomon_models::mel::{MelConfig, MelExtractor, Padding};
use emomon_models::whisper::{Whisper, token_tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: bench_whisper MODEL_DIR [SECONDS] [RUNS]")?,
    );
    let seconds: f32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5.0);
    let runs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let device = Device::flex();
    let t0 = Instant::now();
    let model = Whisper::load(&dir, &device)?;
    println!("load: {:.0} ms", ms(t0.elapsed()));
    let mel = MelExtractor::new(MelConfig::whisper(model.config.num_mel_bins))?;
    // A deterministic, speech-like-enough signal: a few harmonics with vibrato and noise.
    let n = (seconds * 16_000.0) as usize;
    let mut rng = 12345u32;
    let audio: Vec<f32> = (0..n)
        .map(|i| {
            rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let t = i as f32 / 16_000.0;
            let f = 140.0 + 20.0 * (6.0 * t).sin();
            0.3 * (2.0 * std::f32::consts::PI * f * t).sin()
                + 0.1 * (2.0 * std::f32::consts::PI * 3.0 * f * t).sin()
                + 0.01 * ((rng >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
        })
        .collect();
    let prompt: Vec<u32> = model.config.decoder_start_token_id.into_iter().collect();
    let prompt = if prompt.is_empty() { vec![0] } else { prompt };
    for padding in [Padding::None, Padding::Chunk] {
        let mut stages = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..runs + 1 {
            let t = Instant::now();
            let m = mel.compute(&audio, padding)?;
            let t_mel = t.elapsed();
            let feats =
                Tensor::from_data(TensorData::new(m.data, [1, m.n_mels, m.n_frames]), &device);
            let t = Instant::now();
            let enc = model.encode(feats)?;
            let _ = enc.clone().slice(s![0..1, 0..1, 0..1]).into_data(); // force execution
            let t_enc = t.elapsed();
            let t = Instant::now();
            let mut cache = model.decoder.start(enc);
            let logits = model
                .decoder
                .forward(token_tensor(&prompt, &device), &mut cache)?;
            let _ = logits.into_data();
            let t_dec = t.elapsed();
            for (s, d) in stages.iter_mut().zip([t_mel, t_enc, t_dec]) {
                s.push(d);
            }
        }
        let med = |v: &mut Vec<Duration>| {
            v.remove(0); // warm-up
            v.sort();
            ms(v[v.len() / 2])
        };
        let (a, b, c) = (
            med(&mut stages[0]),
            med(&mut stages[1]),
            med(&mut stages[2]),
        );
        println!(
            "{seconds} s audio, {padding:?}: mel {a:.1} ms, encoder {b:.1} ms, first decoder step {c:.1} ms, total {:.1} ms (median of {runs})",
            a + b + c
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
