//! Downmix to mono and resample to 16 kHz, keeping timestamps exact.

use rubato::{FftFixedIn, Resampler};

use super::TARGET_RATE;

/// Input frames per resampler call: 10 ms at 48 kHz-ish rates, small enough
/// for live latency, large enough for FFT efficiency.
const CHUNK_FRAMES: usize = 1024;

/// Turns interleaved multi-channel audio at any rate into 16 kHz mono.
///
/// Channels are averaged (a stereo mic's two sides both carry the voice).
/// Resampling uses rubato's FFT resampler (band-limited, not nearest-sample)
/// and compensates its delay, so output sample `k` lies at time `k / 16000`
/// exactly as input sample `n` lies at `n / rate`: VAD boundaries do not
/// shift with the input rate.
pub struct MonoResampler {
    channels: usize,
    in_rate: u32,
    resampler: Option<FftFixedIn<f32>>,
    /// Mono input waiting for a full resampler chunk.
    pending: Vec<f32>,
    /// Output samples still to discard (the resampler's group delay).
    delay_left: usize,
    in_frames: u64,
    out_frames: u64,
    out_chunk: Vec<Vec<f32>>,
}

impl MonoResampler {
    /// Fails only for a zero rate or channel count, which sources reject earlier.
    pub fn new(in_rate: u32, channels: u16) -> Result<Self, rubato::ResamplerConstructionError> {
        let resampler = if in_rate == TARGET_RATE {
            None
        } else {
            Some(FftFixedIn::new(
                in_rate as usize,
                TARGET_RATE as usize,
                CHUNK_FRAMES,
                2,
                1,
            )?)
        };
        let delay_left = resampler.as_ref().map_or(0, |r| r.output_delay());
        let out_chunk = resampler
            .as_ref()
            .map_or_else(Vec::new, |r| vec![vec![0.0; r.output_frames_max()]]);
        Ok(Self {
            channels: usize::from(channels.max(1)),
            in_rate,
            resampler,
            pending: Vec::with_capacity(CHUNK_FRAMES),
            delay_left,
            in_frames: 0,
            out_frames: 0,
            out_chunk,
        })
    }

    /// Converts a block of interleaved input, appending 16 kHz mono to `out`.
    pub fn push(&mut self, interleaved: &[f32], out: &mut Vec<f32>) {
        let channels = self.channels;
        self.in_frames += (interleaved.len() / channels) as u64;
        // A misbehaving driver or decoder can hand over NaN or infinity, which
        // would poison the FFT resampler and every later frame: they become silence.
        let mono = interleaved.chunks_exact(channels).map(|frame| {
            let mean = frame.iter().sum::<f32>() / channels as f32;
            if mean.is_finite() { mean } else { 0.0 }
        });
        if self.resampler.is_none() {
            let before = out.len();
            out.extend(mono);
            self.out_frames += (out.len() - before) as u64;
            return;
        }
        for sample in mono {
            self.pending.push(sample);
            if self.pending.len() == CHUNK_FRAMES {
                self.run_chunk(out, false);
            }
        }
    }

    /// Flushes the resampler at the end of the stream: the output then holds
    /// exactly `round(in_frames * 16000 / in_rate)` samples.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if self.resampler.is_none() {
            return;
        }
        let expected = (self.in_frames as f64 * f64::from(TARGET_RATE) / f64::from(self.in_rate))
            .round() as u64;
        // Feed zeros until every real input sample has passed the filter delay.
        while self.out_frames < expected {
            self.run_chunk(out, true);
        }
        let excess = (self.out_frames - expected) as usize;
        out.truncate(out.len() - excess.min(out.len()));
        self.out_frames = expected;
    }

    fn run_chunk(&mut self, out: &mut Vec<f32>, pad: bool) {
        let Some(resampler) = self.resampler.as_mut() else {
            return;
        };
        if pad {
            self.pending.resize(CHUNK_FRAMES, 0.0);
        }
        let (_, produced) = resampler
            .process_into_buffer(&[&self.pending], &mut self.out_chunk, None)
            .expect("chunk sizes are fixed by construction");
        self.pending.clear();
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        out.extend_from_slice(&self.out_chunk[0][skip..produced]);
        self.out_frames += (produced - skip) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    fn convert(input: &[f32], rate: u32, channels: u16, block: usize) -> Vec<f32> {
        let mut r = MonoResampler::new(rate, channels).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(block * channels as usize) {
            r.push(chunk, &mut out);
        }
        r.finish(&mut out);
        out
    }

    #[test]
    fn passthrough_at_16k_mono() {
        let x = sine(16_000, 440.0, 0.5);
        assert_eq!(convert(&x, 16_000, 1, 333), x);
    }

    #[test]
    fn stereo_is_averaged() {
        let stereo = [0.2, 0.4, -1.0, 1.0, 0.5, 0.5];
        assert_eq!(convert(&stereo, 16_000, 2, 2), vec![0.3, 0.0, 0.5]);
    }

    #[test]
    fn output_length_and_phase_match_the_input_timeline() {
        for rate in [8_000, 22_050, 44_100, 48_000] {
            let x = sine(rate, 440.0, 1.3);
            let y = convert(&x, rate, 1, 777);
            let expected = (x.len() as f64 * 16_000.0 / rate as f64).round() as usize;
            assert_eq!(y.len(), expected, "length at {rate} Hz");
            // Delay compensated: the resampled tone matches the ideal 16 kHz tone
            // (a one-sample shift would be an error of 0.086).
            let ideal = sine(16_000, 440.0, 1.3);
            let mid = 4_000..16_000;
            let err = y[mid.clone()]
                .iter()
                .zip(&ideal[mid])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 0.04, "{rate} Hz: max error {err}");
        }
    }

    #[test]
    fn non_finite_samples_become_silence_instead_of_poisoning_the_stream() {
        let mut x = sine(44_100, 440.0, 0.5);
        x[100] = f32::NAN;
        x[2000] = f32::INFINITY;
        let y = convert(&x, 44_100, 1, 512);
        assert!(y.iter().all(|v| v.is_finite()));
        assert_eq!(y.len(), 8_000);
    }

    #[test]
    fn energy_above_8khz_is_removed() {
        // A 10 kHz tone cannot exist at 16 kHz; a nearest-sample resampler would alias it to 6 kHz.
        let x = sine(44_100, 10_000.0, 1.0);
        let y = convert(&x, 44_100, 1, 1024);
        let rms = (y[2000..14000].iter().map(|v| v * v).sum::<f32>() / 12000.0).sqrt();
        assert!(rms < 0.01, "aliased energy rms {rms}");
    }
}
