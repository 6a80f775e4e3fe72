//! Prosody descriptors of one utterance: F0, energy, speaking rate and pauses.
//!
//! These are the explainable cues shown next to the model's emotion distribution
//! (a clinician can see *why* an utterance might sound agitated: higher, wider
//! pitch, louder, faster, fewer pauses). They are cheap, deterministic DSP on the
//! 16 kHz mono samples of an utterance, computed on CPU worker threads.
//!
//! Frame grid: every descriptor uses the same hop ([`ProsodyConfig::hop_s`], 10 ms by
//! default), so frame `i` starts at sample `i * hop` and all per-frame decisions
//! (energy, activity, voicing, envelope peaks) line up.
//!
//! * **F0** — YIN (de Cheveigné & Kawahara 2002): cumulative-mean-normalised
//!   difference function, absolute threshold, parabolic interpolation. The
//!   autocorrelation term is computed with a real FFT so the cost per frame is
//!   `O(N log N)` instead of `O(W · max_lag)`. A frame is *voiced* when it is
//!   active (see below) and YIN finds a dip below the threshold in the
//!   `[f0_min, f0_max]` lag range.
//! * **Energy** — frame power `10·log10(mean(x²))` in dB relative to full scale
//!   (a full-scale sine is −3.01 dB), mean and (population) variance over the
//!   *active* frames, so the silence the segmenter keeps around speech does not
//!   dominate the statistics.
//! * **Activity / pauses** — a frame is active when the power of its hop-length
//!   block (no overlap, so pause edges stay sharp) is above both an
//!   absolute floor and `reference − relative_db`, where the reference is the
//!   95th percentile of frame power (a robust "loud speech" level). A *pause* is a
//!   run of inactive frames of at least `min_pause_s`, lying strictly between the
//!   first and the last active frame (leading/trailing silence is segmenter
//!   pre-roll/hangover, not the speaker pausing). `pause_ratio` = pause time /
//!   time from the first to the last active frame.
//! * **Speaking rate** — syllable nuclei in the spirit of de Jong & Wempe (2009):
//!   peaks of the smoothed dB envelope of the band-passed signal (default
//!   300–3000 Hz, where vowel energy lives) that are active, voiced, and separated
//!   from the neighbouring peak by a dip of at least `min_dip_db`. The rate is
//!   nuclei per second of *phonation time* (first-to-last active span minus
//!   pauses), i.e. an articulation rate that does not drop just because the
//!   speaker paused.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

/// Power floor added before taking logs, so digital silence maps to −100 dB
/// instead of −∞.
const POWER_FLOOR: f64 = 1e-10;

/// Prosody descriptors of one utterance. Fields are `None` when undefined for
/// this utterance (e.g. no voiced frames → no F0; no active frames → no energy).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prosody {
    /// Median F0 over voiced frames, Hz.
    pub f0_median_hz: Option<f32>,
    /// Spread of F0: 95th minus 5th percentile over voiced frames, Hz.
    pub f0_range_hz: Option<f32>,
    /// Voiced frames / all frames, in [0, 1]; 0 for empty or silent input.
    pub voiced_fraction: f32,
    /// Mean frame power over active frames, dB re full scale.
    pub energy_db_mean: Option<f32>,
    /// Population variance of frame power over active frames, dB².
    pub energy_db_var: Option<f32>,
    /// Syllable nuclei per second of phonation time.
    pub speaking_rate_syll_s: Option<f32>,
    /// Pause time / time from first to last active frame, in [0, 1].
    pub pause_ratio: Option<f32>,
}

impl Prosody {
    /// The descriptors of an utterance with no usable signal.
    fn empty() -> Self {
        Self {
            f0_median_hz: None,
            f0_range_hz: None,
            voiced_fraction: 0.0,
            energy_db_mean: None,
            energy_db_var: None,
            speaking_rate_syll_s: None,
            pause_ratio: None,
        }
    }
}

/// Analysis parameters. Defaults suit adult speech at 16 kHz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProsodyConfig {
    /// Sample rate of the input, Hz.
    pub sample_rate: u32,
    /// Frame hop, seconds.
    pub hop_s: f32,
    /// Window for frame power, seconds.
    pub energy_window_s: f32,
    /// YIN integration window, seconds (must cover at least one period of
    /// `f0_min` for a stable estimate; 30 ms covers ~2 periods at 60 Hz).
    pub yin_window_s: f32,
    /// Lowest F0 searched, Hz.
    pub f0_min_hz: f32,
    /// Highest F0 searched, Hz.
    pub f0_max_hz: f32,
    /// YIN absolute threshold on the normalised difference function.
    pub yin_threshold: f32,
    /// Frames below this power are never active, dBFS.
    pub silence_floor_db: f32,
    /// Frames more than this far below the 95th-percentile frame power are inactive, dB.
    pub relative_silence_db: f32,
    /// Shortest run of inactive frames counted as a pause, seconds.
    pub min_pause_s: f32,
    /// Band-pass edges for the syllable envelope, Hz.
    pub envelope_band_hz: (f32, f32),
    /// Minimum dip between two envelope peaks for both to count as nuclei, dB.
    pub min_dip_db: f32,
}

impl Default for ProsodyConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            hop_s: 0.010,
            energy_window_s: 0.025,
            yin_window_s: 0.030,
            f0_min_hz: 60.0,
            f0_max_hz: 500.0,
            yin_threshold: 0.2,
            silence_floor_db: -60.0,
            relative_silence_db: 25.0,
            min_pause_s: 0.15,
            envelope_band_hz: (300.0, 3000.0),
            min_dip_db: 2.0,
        }
    }
}

/// Invalid analysis parameters.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProsodyError {
    /// A parameter is out of its valid range.
    #[error("invalid prosody config: {0}")]
    InvalidConfig(String),
}

/// Reusable analyser: owns FFT plans and scratch buffers so a worker thread
/// can score many utterances without re-planning.
pub struct ProsodyAnalyzer {
    config: ProsodyConfig,
    hop: usize,
    energy_win: usize,
    yin_win: usize,
    tau_min: usize,
    tau_max: usize,
    fft_len: usize,
    fwd: Arc<dyn RealToComplex<f64>>,
    inv: Arc<dyn ComplexToReal<f64>>,
}

impl std::fmt::Debug for ProsodyAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProsodyAnalyzer")
            .field("config", &self.config)
            .field("fft_len", &self.fft_len)
            .finish()
    }
}

/// Convenience: analyse `samples` at `sample_rate` with default parameters.
pub fn analyze(samples: &[f32], sample_rate: u32) -> Result<Prosody, ProsodyError> {
    let config = ProsodyConfig {
        sample_rate,
        ..ProsodyConfig::default()
    };
    Ok(ProsodyAnalyzer::new(config)?.analyze(samples))
}

impl ProsodyAnalyzer {
    /// Validates `config` and plans the FFTs.
    pub fn new(config: ProsodyConfig) -> Result<Self, ProsodyError> {
        let bad = |m: &str| Err(ProsodyError::InvalidConfig(m.to_string()));
        let sr = config.sample_rate as f32;
        if config.sample_rate < 4000 {
            return bad("sample_rate must be at least 4000 Hz");
        }
        if !(config.f0_min_hz > 0.0 && config.f0_min_hz < config.f0_max_hz) {
            return bad("need 0 < f0_min_hz < f0_max_hz");
        }
        if config.f0_max_hz >= sr / 4.0 {
            return bad("f0_max_hz must be below sample_rate / 4");
        }
        if !(config.hop_s > 0.0 && config.energy_window_s > 0.0 && config.yin_window_s > 0.0) {
            return bad("hop_s, energy_window_s and yin_window_s must be positive");
        }
        if !(config.yin_threshold > 0.0 && config.yin_threshold < 1.0) {
            return bad("yin_threshold must be in (0, 1)");
        }
        if !(config.relative_silence_db > 0.0 && config.min_pause_s >= 0.0) {
            return bad("relative_silence_db must be > 0 and min_pause_s >= 0");
        }
        let (lo, hi) = config.envelope_band_hz;
        if !(lo > 0.0 && lo < hi && hi < sr / 2.0) {
            return bad("envelope_band_hz must satisfy 0 < low < high < sample_rate / 2");
        }
        let hop = ((config.hop_s * sr).round() as usize).max(1);
        let energy_win = ((config.energy_window_s * sr).round() as usize).max(1);
        let yin_win = ((config.yin_window_s * sr).round() as usize).max(8);
        let tau_min = ((sr / config.f0_max_hz).floor() as usize).max(2);
        // +1 so parabolic interpolation has a right neighbour at f0_min.
        let tau_max = (sr / config.f0_min_hz).ceil() as usize + 1;
        let fft_len = (yin_win + tau_max + 1).next_power_of_two();
        let mut planner = RealFftPlanner::<f64>::new();
        let fwd = planner.plan_fft_forward(fft_len);
        let inv = planner.plan_fft_inverse(fft_len);
        Ok(Self {
            config,
            hop,
            energy_win,
            yin_win,
            tau_min,
            tau_max,
            fft_len,
            fwd,
            inv,
        })
    }

    /// The parameters in use.
    pub fn config(&self) -> &ProsodyConfig {
        &self.config
    }

    /// Number of frames for `n` samples: one per hop started inside the signal
    /// (windows running past the end are truncated or zero-padded).
    fn n_frames(&self, n: usize) -> usize {
        n.div_ceil(self.hop)
    }

    /// Computes all descriptors of one utterance.
    pub fn analyze(&self, samples: &[f32]) -> Prosody {
        let n_frames = self.n_frames(samples.len());
        if n_frames == 0 {
            return Prosody::empty();
        }
        let hop_s = self.hop as f64 / self.config.sample_rate as f64;

        // Frame power of the raw signal, dBFS.
        let power_db = frame_power_db(samples, self.hop, self.energy_win, n_frames);
        // Activity is decided on the non-overlapping hop-length blocks so pause
        // boundaries are not smeared by the longer energy window.
        let block_db = frame_power_db(samples, self.hop, self.hop, n_frames);
        let active = self.activity(&block_db);
        if !active.iter().any(|&a| a) {
            // No frame is above the silence threshold, so nothing is voiced.
            return Prosody::empty();
        }

        // Energy statistics over active frames.
        let active_db: Vec<f64> = power_db
            .iter()
            .zip(&active)
            .filter_map(|(&p, &a)| a.then_some(p))
            .collect();
        let (e_mean, e_var) = mean_var(&active_db);

        // F0 on active frames only (YIN on near-silence only finds noise).
        let f0: Vec<Option<f64>> = self.yin_track(samples, n_frames, &active);
        let voiced: Vec<f64> = f0.iter().flatten().copied().collect();
        let voiced_fraction = voiced.len() as f32 / n_frames as f32;
        let (f0_median, f0_range) = if voiced.is_empty() {
            (None, None)
        } else {
            let mut v = voiced.clone();
            v.sort_by(f64::total_cmp);
            (
                Some(percentile_sorted(&v, 50.0) as f32),
                Some((percentile_sorted(&v, 95.0) - percentile_sorted(&v, 5.0)) as f32),
            )
        };

        // Pauses within the first..=last active span.
        let first = active.iter().position(|&a| a).unwrap_or(0);
        let last = active.iter().rposition(|&a| a).unwrap_or(0);
        let min_pause_frames = (self.config.min_pause_s as f64 / hop_s).round() as usize;
        let mut pause_frames = 0usize;
        let mut run = 0usize;
        for &a in &active[first..=last] {
            if a {
                if run >= min_pause_frames.max(1) {
                    pause_frames += run;
                }
                run = 0;
            } else {
                run += 1;
            }
        }
        let span_frames = last - first + 1;
        let pause_ratio = pause_frames as f64 / span_frames as f64;
        let phonation_s = (span_frames - pause_frames) as f64 * hop_s;

        // Syllable nuclei from the band-passed envelope.
        let nuclei = self.count_nuclei(samples, n_frames, &active, &f0);
        let rate = (phonation_s > 0.0).then(|| (nuclei as f64 / phonation_s) as f32);

        Prosody {
            f0_median_hz: f0_median,
            f0_range_hz: f0_range,
            voiced_fraction,
            energy_db_mean: Some(e_mean as f32),
            energy_db_var: Some(e_var as f32),
            speaking_rate_syll_s: rate,
            pause_ratio: Some(pause_ratio as f32),
        }
    }

    /// Per-frame activity: above the absolute floor and within
    /// `relative_silence_db` of the 95th-percentile frame power.
    fn activity(&self, power_db: &[f64]) -> Vec<bool> {
        let mut sorted = power_db.to_vec();
        sorted.sort_by(f64::total_cmp);
        let reference = percentile_sorted(&sorted, 95.0);
        let threshold = (reference - self.config.relative_silence_db as f64)
            .max(self.config.silence_floor_db as f64);
        power_db.iter().map(|&p| p > threshold).collect()
    }

    /// YIN F0 per frame (`None` = unvoiced or inactive).
    fn yin_track(&self, samples: &[f32], n_frames: usize, active: &[bool]) -> Vec<Option<f64>> {
        let sr = self.config.sample_rate as f64;
        let span = self.yin_win + self.tau_max + 1;
        let mut frame = vec![0.0f64; span];
        let mut a_in = self.fwd.make_input_vec();
        let mut b_in = self.fwd.make_input_vec();
        let mut a_spec = self.fwd.make_output_vec();
        let mut b_spec = self.fwd.make_output_vec();
        let mut corr = self.inv.make_output_vec();
        let mut scratch_f = self.fwd.make_scratch_vec();
        let mut scratch_i = self.inv.make_scratch_vec();
        let mut cum_sq = vec![0.0f64; span + 1];
        let mut cmnd = vec![0.0f64; self.tau_max + 1];
        let mut out = Vec::with_capacity(n_frames);

        for (i, &is_active) in active.iter().enumerate().take(n_frames) {
            if !is_active {
                out.push(None);
                continue;
            }
            let start = i * self.hop;
            for (j, f) in frame.iter_mut().enumerate() {
                *f = samples.get(start + j).copied().unwrap_or(0.0) as f64;
            }
            // Cross-correlation r(τ) = Σ_{j<W} x[j]·x[j+τ] via FFT: a is the
            // W-sample window, b the window plus the lag range; the FFT length
            // ≥ W + τ_max + 1 keeps the circular correlation free of wrap-around.
            a_in.iter_mut().for_each(|v| *v = 0.0);
            b_in.iter_mut().for_each(|v| *v = 0.0);
            a_in[..self.yin_win].copy_from_slice(&frame[..self.yin_win]);
            b_in[..span].copy_from_slice(&frame);
            // The plans are built for exactly these buffer lengths, so the
            // transforms cannot fail; an error would leave the frame unvoiced.
            if self
                .fwd
                .process_with_scratch(&mut a_in, &mut a_spec, &mut scratch_f)
                .is_err()
                || self
                    .fwd
                    .process_with_scratch(&mut b_in, &mut b_spec, &mut scratch_f)
                    .is_err()
            {
                out.push(None);
                continue;
            }
            for (a, b) in a_spec.iter_mut().zip(&b_spec) {
                *a = a.conj() * b;
            }
            // The inverse transform needs purely real DC/Nyquist bins.
            if let Some(first) = a_spec.first_mut() {
                *first = Complex::new(first.re, 0.0);
            }
            if let Some(last) = a_spec.last_mut() {
                *last = Complex::new(last.re, 0.0);
            }
            if self
                .inv
                .process_with_scratch(&mut a_spec, &mut corr, &mut scratch_i)
                .is_err()
            {
                out.push(None);
                continue;
            }
            let norm = 1.0 / self.fft_len as f64;

            cum_sq[0] = 0.0;
            for (j, &x) in frame.iter().enumerate() {
                cum_sq[j + 1] = cum_sq[j] + x * x;
            }
            let energy = |tau: usize| cum_sq[tau + self.yin_win] - cum_sq[tau];
            let e0 = energy(0);
            if e0 <= 0.0 {
                out.push(None);
                continue;
            }
            // Cumulative-mean-normalised difference d'(τ).
            cmnd[0] = 1.0;
            let mut running = 0.0;
            for tau in 1..=self.tau_max {
                let d = (e0 + energy(tau) - 2.0 * corr[tau] * norm).max(0.0);
                running += d;
                cmnd[tau] = if running > 0.0 {
                    d * tau as f64 / running
                } else {
                    1.0
                };
            }
            out.push(self.pick_period(&cmnd).map(|tau| sr / tau));
        }
        out
    }

    /// First dip of d' below the threshold in the lag range, refined to its
    /// local minimum and by parabolic interpolation.
    fn pick_period(&self, cmnd: &[f64]) -> Option<f64> {
        let thr = self.config.yin_threshold as f64;
        let last = self.tau_max - 1; // keep a right neighbour for interpolation
        let mut tau = self.tau_min;
        while tau <= last {
            if cmnd[tau] < thr {
                while tau < last && cmnd[tau + 1] < cmnd[tau] {
                    tau += 1;
                }
                let (l, c, r) = (cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]);
                let denom = l - 2.0 * c + r;
                let shift = if denom.abs() > 1e-12 {
                    (0.5 * (l - r) / denom).clamp(-1.0, 1.0)
                } else {
                    0.0
                };
                return Some(tau as f64 + shift);
            }
            tau += 1;
        }
        None
    }

    /// Counts syllable nuclei: local maxima of the smoothed band-passed dB
    /// envelope that are active and voiced (or next to a voiced frame), with a
    /// dip of at least `min_dip_db` to the neighbouring kept peak.
    fn count_nuclei(
        &self,
        samples: &[f32],
        n_frames: usize,
        active: &[bool],
        f0: &[Option<f64>],
    ) -> usize {
        let sr = self.config.sample_rate as f64;
        let (lo, hi) = self.config.envelope_band_hz;
        let mut hp = Biquad::highpass(lo as f64, sr);
        let mut lp = Biquad::lowpass(hi as f64, sr);
        let filtered: Vec<f32> = samples
            .iter()
            .map(|&x| lp.process(hp.process(x as f64)) as f32)
            .collect();
        let env = frame_power_db(&filtered, self.hop, self.energy_win, n_frames);
        // 5-frame (50 ms) moving average: removes pitch-period ripple and
        // sub-syllabic bumps while keeping rates up to ~8 syllables/s.
        let smooth: Vec<f64> = (0..n_frames)
            .map(|i| {
                let a = i.saturating_sub(2);
                let b = (i + 3).min(n_frames);
                env[a..b].iter().sum::<f64>() / (b - a) as f64
            })
            .collect();
        let voiced_near = |i: usize| {
            let a = i.saturating_sub(1);
            let b = (i + 2).min(n_frames);
            f0[a..b].iter().any(Option::is_some)
        };
        // Candidate peaks: plateau-aware local maxima.
        let mut peaks: Vec<usize> = Vec::new();
        for i in 0..n_frames {
            let left_ok = i == 0 || smooth[i] > smooth[i - 1];
            let right_ok = i + 1 == n_frames || smooth[i] >= smooth[i + 1];
            if left_ok && right_ok && active[i] && voiced_near(i) {
                peaks.push(i);
            }
        }
        // Merge peaks not separated by a deep enough dip (keep the higher one).
        let dip = self.config.min_dip_db as f64;
        let mut kept: Vec<usize> = Vec::new();
        for p in peaks {
            match kept.last().copied() {
                None => kept.push(p),
                Some(q) => {
                    let valley = smooth[q..=p].iter().copied().fold(f64::INFINITY, f64::min);
                    if smooth[q].min(smooth[p]) - valley >= dip {
                        kept.push(p);
                    } else if smooth[p] > smooth[q]
                        && let Some(k) = kept.last_mut()
                    {
                        *k = p;
                    }
                }
            }
        }
        kept.len()
    }
}

/// Power of each frame in dB re full scale.
fn frame_power_db(samples: &[f32], hop: usize, win: usize, n_frames: usize) -> Vec<f64> {
    (0..n_frames)
        .map(|i| {
            let start = i * hop;
            let end = (start + win).min(samples.len());
            let seg = &samples[start.min(end)..end];
            let p = if seg.is_empty() {
                0.0
            } else {
                seg.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() / seg.len() as f64
            };
            10.0 * (p + POWER_FLOOR).log10()
        })
        .collect()
}

/// Mean and population variance.
fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var)
}

/// Percentile of sorted data with linear interpolation between closest ranks
/// (NumPy's default `linear` method). `sorted` must be non-empty.
fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    let pos = q / 100.0 * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Second-order IIR section (RBJ audio-EQ cookbook, Q = 1/√2 → Butterworth).
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    z: [f64; 2],
}

impl Biquad {
    fn new(b: [f64; 3], a0: f64, a: [f64; 2]) -> Self {
        Self {
            b: [b[0] / a0, b[1] / a0, b[2] / a0],
            a: [a[0] / a0, a[1] / a0],
            z: [0.0; 2],
        }
    }

    fn lowpass(f: f64, sr: f64) -> Self {
        let w = 2.0 * std::f64::consts::PI * f / sr;
        let alpha = w.sin() / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
        let c = w.cos();
        Self::new(
            [(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0],
            1.0 + alpha,
            [-2.0 * c, 1.0 - alpha],
        )
    }

    fn highpass(f: f64, sr: f64) -> Self {
        let w = 2.0 * std::f64::consts::PI * f / sr;
        let alpha = w.sin() / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
        let c = w.cos();
        Self::new(
            [(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0],
            1.0 + alpha,
            [-2.0 * c, 1.0 - alpha],
        )
    }

    /// Transposed direct form II.
    fn process(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_sorted(&v, 50.0), 2.5);
        assert!((percentile_sorted(&v, 95.0) - 3.85).abs() < 1e-12);
        assert!((percentile_sorted(&v, 5.0) - 1.15).abs() < 1e-12);
    }

    #[test]
    fn empty_input_has_no_descriptors() {
        let p = analyze(&[], 16_000).expect("valid config");
        assert_eq!(p, Prosody::empty());
    }

    #[test]
    fn analyzer_can_be_shared_across_worker_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ProsodyAnalyzer>();
    }

    #[test]
    fn rejects_bad_config() {
        let c = ProsodyConfig {
            f0_min_hz: 400.0,
            f0_max_hz: 100.0,
            ..ProsodyConfig::default()
        };
        assert!(ProsodyAnalyzer::new(c).is_err());
    }
}
