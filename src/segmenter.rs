//! [`Segmenter`]: turns per-frame VAD decisions into timed utterances.
//!
//! A state machine over fixed-length 16 kHz frames:
//! * **idle** until `onset_ms` of consecutive voiced frames; the onset is then
//!   traced back through the recent history over short unvoiced gaps, so a
//!   soft start the VAD half-missed is not clipped (pre-roll);
//! * **speech** until `hangover_ms` pass without a voiced frame; the utterance
//!   ends after its last voiced frame;
//! * **decided** early in the hangover: once the frames after the last voiced one
//!   cover the edge snapping and the post-roll, the utterance is fixed as it will
//!   close unless speech resumes, and announced as [`SegmentEvent::Tentative`] so a
//!   live pipeline can score it during the rest of the hangover. A voiced frame
//!   drops the decision ([`SegmentEvent::Resumed`]); the close emits exactly the
//!   decided utterance (same samples), so speculation changes when a result is
//!   ready, never what it is;
//! * speech reaching `max_utterance_s` is cut at the quietest frame of the last
//!   `split_search_s` (a breath or a pause, rarely mid-word) and goes on as a
//!   new utterance;
//! * stretches with less than `min_speech_ms` of voiced frames are dropped as
//!   clicks or noise;
//! * stretches whose loudness never moves are dropped as steady noise: the
//!   background estimate needs a while to learn a new noise (a fan switched on,
//!   the start of a noisy recording), and WebRTC's VAD calls white noise speech.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::audio::TARGET_RATE;
use crate::utterance::{Utterance, to_dbfs};
use crate::vad::ConfigError;

/// Segmenter timing settings (all have defaults tuned on the shared clips).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmenterConfig {
    /// Voiced run that opens an utterance.
    pub onset_ms: u32,
    /// Audio kept before the onset, and how far back the onset may be traced.
    pub pre_roll_ms: u32,
    /// Audio kept after the last voiced frame.
    pub post_roll_ms: u32,
    /// Unvoiced time that closes an utterance (pauses shorter than this are bridged).
    pub hangover_ms: u32,
    /// Utterances with less voiced time than this are discarded.
    pub min_speech_ms: u32,
    /// Longer speech is split.
    pub max_utterance_s: f64,
    /// How far before the limit to look for a quiet frame to split at.
    pub split_search_s: f64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            onset_ms: 60,
            pre_roll_ms: 300,
            post_roll_ms: 200,
            hangover_ms: 400,
            min_speech_ms: 250,
            max_utterance_s: 15.0,
            split_search_s: 3.0,
        }
    }
}

impl SegmenterConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(&'static str, bool, &'static str, f64); 4] = [
            (
                "onset_ms",
                self.onset_ms > 0,
                "> 0",
                f64::from(self.onset_ms),
            ),
            (
                "hangover_ms",
                self.hangover_ms > 0,
                "> 0",
                f64::from(self.hangover_ms),
            ),
            (
                "max_utterance_s",
                self.max_utterance_s >= 1.0 && self.max_utterance_s.is_finite(),
                "at least 1 s",
                self.max_utterance_s,
            ),
            (
                "split_search_s",
                self.split_search_s > 0.0 && self.split_search_s < self.max_utterance_s,
                "> 0 and below max_utterance_s",
                self.split_search_s,
            ),
        ];
        for (name, ok, rule, value) in checks {
            if !ok {
                return Err(ConfigError::Invalid { name, rule, value });
            }
        }
        Ok(())
    }
}

/// Edge frames within this of the utterance's loudest frame count as speech.
const EDGE_RANGE_DB: f32 = 35.0;
/// Edge snapping moves neither end by more than this.
const MAX_EDGE_MOVE_MS: u32 = 400;

/// Frames must be this far above the background to count as speech.
const ENERGY_GATE_DB: f32 = 6.0;
/// The background is the quietest frame of this recent window (minimum
/// statistics): natural speech pauses at least this often, steady noise never does.
const NOISE_WINDOW_MS: f64 = 1500.0;
/// No gating until this much audio has been seen (the minimum means little before).
const NOISE_WARMUP_MS: f64 = 500.0;

/// Speech rises and falls from syllable to syllable; steady noise does not. A
/// stretch whose frame energies (10th to 90th percentile) stay within this range is
/// noise. Measured with 20 ms frames: white noise spans 0.9–1.0 dB, the flattest of
/// the 1,822 shared clips 2.5 dB (a median clip 18 dB).
const STEADY_NOISE_SPREAD_DB: f32 = 1.5;

/// What the segmenter dropped instead of emitting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discarded {
    /// Stretches with less than `min_speech_ms` of voiced frames (clicks, blips).
    pub short: u64,
    /// Stretches of steady noise (see [`STEADY_NOISE_SPREAD_DB`]).
    pub steady_noise: u64,
}

impl Discarded {
    pub fn total(&self) -> u64 {
        self.short + self.steady_noise
    }
}

/// Sliding-window minimum of frame energy, the background-level estimate.
struct NoiseFloor {
    window: usize,
    warmup: usize,
    seen: usize,
    /// (frame number, energy), energies increasing: the front is the minimum.
    candidates: VecDeque<(usize, f32)>,
}

impl NoiseFloor {
    fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            warmup: (window as f64 * NOISE_WARMUP_MS / NOISE_WINDOW_MS) as usize,
            seen: 0,
            candidates: VecDeque::new(),
        }
    }

    /// Adds a frame; returns the floor once warmed up.
    fn push(&mut self, energy: f32) -> Option<f32> {
        while self.candidates.back().is_some_and(|&(_, e)| e >= energy) {
            self.candidates.pop_back();
        }
        self.candidates.push_back((self.seen, energy));
        self.seen += 1;
        while self
            .candidates
            .front()
            .is_some_and(|&(n, _)| n + self.window < self.seen)
        {
            self.candidates.pop_front();
        }
        self.level()
    }

    fn level(&self) -> Option<f32> {
        (self.seen >= self.warmup)
            .then(|| self.candidates.front().map(|&(_, e)| e))
            .flatten()
    }
}

fn db_to_power(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

#[derive(Debug, Clone, Copy)]
struct FrameInfo {
    voiced: bool,
    energy: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle {
        run: u64,
    },
    Speech {
        start: u64,
        last_voiced: u64,
        voiced: u64,
    },
}

/// What a frame can produce, in order ([`Segmenter::step`]).
#[derive(Debug, Clone)]
pub enum SegmentEvent {
    /// Speech stopped: `utterance` is what will close if no voiced frame comes
    /// within the hangover (its id is the one it will close with).
    Tentative {
        utterance: Utterance,
        /// Audio seconds since the end of the last voiced frame.
        after_speech_s: f64,
    },
    /// Speech resumed: the tentative utterance `id` will not close as announced.
    Resumed { id: u64 },
    /// An utterance has closed.
    Closed {
        utterance: Utterance,
        /// Audio seconds from the end of its last voiced frame to the frame that
        /// closed it (the hangover, for an utterance ended by a pause).
        after_speech_s: f64,
    },
}

/// What [`Segmenter::decide`] makes of a stretch of frames.
#[derive(Debug, Clone)]
enum Decision {
    Short,
    Steady,
    Keep(Utterance),
}

/// What the segmenter is doing now, for a live display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activity {
    Silence,
    /// In an utterance that started this many seconds ago.
    Speech {
        for_s: f64,
    },
}

/// Frame-by-frame utterance detector (see the module docs).
pub struct Segmenter {
    frame_len: usize,
    onset: u64,
    pre_roll: u64,
    post_roll: u64,
    hangover: u64,
    min_speech: u64,
    max_frames: u64,
    split_search: u64,
    /// Index of the next frame to arrive.
    next_frame: u64,
    /// Frame index of `samples[0]` / `frames[0]`.
    first_frame: u64,
    samples: Vec<f32>,
    frames: VecDeque<FrameInfo>,
    state: State,
    /// Where the previous utterance's speech ended: pre-roll never reaches back past it.
    previous_end: u64,
    next_id: u64,
    discarded: Discarded,
    noise_floor: NoiseFloor,
    /// The open utterance as it will close if speech does not resume (see the
    /// module docs); `None` until its frames are complete, and while speaking.
    decided: Option<Decision>,
}

impl Segmenter {
    pub fn new(config: SegmenterConfig, frame_ms: u32) -> Result<Self, ConfigError> {
        config.validate()?;
        let frames = |ms: f64| (ms / f64::from(frame_ms)).ceil().max(1.0) as u64;
        Ok(Self {
            frame_len: (TARGET_RATE * frame_ms / 1000) as usize,
            onset: frames(f64::from(config.onset_ms)),
            pre_roll: frames(f64::from(config.pre_roll_ms)),
            post_roll: (f64::from(config.post_roll_ms) / f64::from(frame_ms)).round() as u64,
            hangover: frames(f64::from(config.hangover_ms)),
            min_speech: (f64::from(config.min_speech_ms) / f64::from(frame_ms)).ceil() as u64,
            max_frames: frames(config.max_utterance_s * 1000.0),
            split_search: frames(config.split_search_s * 1000.0),
            next_frame: 0,
            first_frame: 0,
            samples: Vec::new(),
            frames: VecDeque::new(),
            state: State::Idle { run: 0 },
            previous_end: 0,
            next_id: 0,
            discarded: Discarded::default(),
            noise_floor: NoiseFloor::new(frames(NOISE_WINDOW_MS) as usize),
            decided: None,
        })
    }

    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Stretches dropped as too short or as steady noise.
    pub fn discarded(&self) -> Discarded {
        self.discarded
    }

    pub fn activity(&self) -> Activity {
        match self.state {
            State::Idle { .. } => Activity::Silence,
            State::Speech { start, .. } => Activity::Speech {
                for_s: self.seconds(self.next_frame - start),
            },
        }
    }

    /// Feeds one frame and its VAD decision; returns an utterance when one ends.
    /// (Tentative ends are not reported: see [`Segmenter::step`].)
    pub fn push(&mut self, frame: &[f32], vad_voiced: bool) -> Option<Utterance> {
        self.step(frame, vad_voiced)
            .into_iter()
            .find_map(|event| match event {
                SegmentEvent::Closed { utterance, .. } => Some(utterance),
                _ => None,
            })
    }

    /// Feeds one frame and its VAD decision; returns what it caused, in order
    /// (usually nothing; an empty `Vec` does not allocate).
    ///
    /// A frame counts as speech only if the VAD says so *and* it stands
    /// [`ENERGY_GATE_DB`] above the background: WebRTC's VAD readily keeps
    /// calling steady noise speech right after real speech, which would glue
    /// utterances together across noisy pauses.
    pub fn step(&mut self, frame: &[f32], vad_voiced: bool) -> Vec<SegmentEvent> {
        debug_assert_eq!(frame.len(), self.frame_len);
        let energy = frame.iter().map(|s| s * s).sum::<f32>() / frame.len() as f32;
        let floor = self.noise_floor.push(energy);
        let voiced = vad_voiced && floor.is_none_or(|f| energy > f * db_to_power(ENERGY_GATE_DB));
        let index = self.next_frame;
        self.next_frame += 1;
        self.samples.extend_from_slice(frame);
        self.frames.push_back(FrameInfo { voiced, energy });

        let mut events = Vec::new();
        match self.state {
            State::Idle { run } => {
                let run = if voiced { run + 1 } else { 0 };
                self.state = State::Idle { run };
                if run >= self.onset {
                    let start = self.trace_onset(index + 1 - run);
                    let voiced = self.voiced_between(start, index + 1);
                    self.state = State::Speech {
                        start,
                        last_voiced: index,
                        voiced,
                    };
                } else {
                    self.trim_to(self.next_frame.saturating_sub(self.pre_roll + self.onset));
                }
            }
            State::Speech {
                start,
                mut last_voiced,
                voiced: mut voiced_frames,
            } => {
                if voiced {
                    last_voiced = index;
                    voiced_frames += 1;
                    events.extend(self.undecide());
                }
                self.state = State::Speech {
                    start,
                    last_voiced,
                    voiced: voiced_frames,
                };
                let after_speech_s = self.seconds(index - last_voiced);
                if index - last_voiced >= self.hangover {
                    let utterance = self.close(start, last_voiced + 1, voiced_frames);
                    events.extend(utterance.map(|utterance| SegmentEvent::Closed {
                        utterance,
                        after_speech_s,
                    }));
                } else if index + 1 - start >= self.max_frames {
                    events.extend(self.undecide());
                    let (utterance, end) = self.split(start, index);
                    events.extend(utterance.map(|utterance| SegmentEvent::Closed {
                        utterance,
                        after_speech_s: self.seconds(index + 1 - end),
                    }));
                } else if !voiced && self.decided.is_none() {
                    events.extend(self.try_decide(start, last_voiced + 1, voiced_frames).map(
                        |utterance| SegmentEvent::Tentative {
                            utterance,
                            after_speech_s,
                        },
                    ));
                }
            }
        }
        events
    }

    /// Ends the stream: an utterance still open is closed after its last voiced frame.
    pub fn finish(&mut self) -> Option<Utterance> {
        self.finish_event().map(|event| match event {
            SegmentEvent::Closed { utterance, .. } => utterance,
            _ => unreachable!("finish_event only closes"),
        })
    }

    /// [`finish`](Self::finish) as an event, with the time since speech ended.
    pub fn finish_event(&mut self) -> Option<SegmentEvent> {
        match self.state {
            State::Speech {
                start,
                last_voiced,
                voiced,
            } => {
                let after_speech_s = self.seconds(self.next_frame - (last_voiced + 1));
                self.close(start, last_voiced + 1, voiced)
                    .map(|utterance| SegmentEvent::Closed {
                        utterance,
                        after_speech_s,
                    })
            }
            State::Idle { .. } => None,
        }
    }

    /// Fixes the open utterance `[start, end)` as it will close, once the frames
    /// after `end` cover its edge and post-roll; returns it if it is kept.
    fn try_decide(&mut self, start: u64, end: u64, voiced: u64) -> Option<Utterance> {
        let decision = self.decide(start, end, voiced, false, true)?;
        let tentative = match &decision {
            Decision::Keep(utterance) => Some(utterance.clone()),
            Decision::Short | Decision::Steady => None,
        };
        self.decided = Some(decision);
        tentative
    }

    /// Speech went on: forgets the decision, announcing it if it was announced.
    fn undecide(&mut self) -> Option<SegmentEvent> {
        match self.decided.take()? {
            Decision::Keep(utterance) => Some(SegmentEvent::Resumed { id: utterance.id }),
            Decision::Short | Decision::Steady => None,
        }
    }

    fn seconds(&self, frames: u64) -> f64 {
        (frames * self.frame_len as u64) as f64 / f64::from(TARGET_RATE)
    }

    fn info(&self, frame: u64) -> FrameInfo {
        self.frames[(frame - self.first_frame) as usize]
    }

    fn voiced_between(&self, from: u64, to: u64) -> u64 {
        (from..to).filter(|&f| self.info(f).voiced).count() as u64
    }

    /// Walks back from `start` over voiced frames separated by gaps of at most
    /// `onset` frames, within the pre-roll and after the previous utterance.
    fn trace_onset(&self, mut start: u64) -> u64 {
        let limit = start
            .saturating_sub(self.pre_roll)
            .max(self.first_frame)
            .max(self.previous_end);
        let mut probe = start;
        while probe > limit {
            probe -= 1;
            if start - probe > self.onset + 1 {
                break;
            }
            if self.info(probe).voiced {
                start = probe;
            }
        }
        start
    }

    /// Emits the utterance `[start, end)` (frames) if it holds enough voiced time,
    /// and returns to idle.
    /// A decision taken earlier in the hangover stands (no voiced frame since).
    fn close(&mut self, start: u64, end: u64, voiced: u64) -> Option<Utterance> {
        self.state = State::Idle { run: 0 };
        let utterance = match self.decided.take() {
            Some(decision) => self.commit(decision),
            None => self.emit(start, end, voiced, false),
        };
        self.previous_end = end;
        self.trim_to(self.next_frame.saturating_sub(self.pre_roll + self.onset));
        utterance
    }

    /// Cuts an over-long utterance at its quietest recent frame, preferring
    /// unvoiced ones, and carries on with the rest as a new utterance. Returns the
    /// first part (if kept) and where its speech ends.
    fn split(&mut self, start: u64, index: u64) -> (Option<Utterance>, u64) {
        let search_from = (start + self.max_frames)
            .saturating_sub(self.split_search)
            .max(start + 1);
        let cut = (search_from..=index)
            .min_by(|&a, &b| {
                let (fa, fb) = (self.info(a), self.info(b));
                (fa.voiced, fa.energy)
                    .partial_cmp(&(fb.voiced, fb.energy))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .unwrap_or(index);
        let end = (start..cut)
            .rev()
            .find(|&f| self.info(f).voiced)
            .map_or(cut, |f| f + 1);
        let voiced_before = self.voiced_between(start, end);
        let utterance = self.emit(start, end, voiced_before, true);
        self.previous_end = end;
        let next_start = (cut..=index).find(|&f| self.info(f).voiced).unwrap_or(cut);
        let last_voiced = (next_start..=index)
            .rev()
            .find(|&f| self.info(f).voiced)
            .unwrap_or(next_start);
        self.state = State::Speech {
            start: next_start,
            last_voiced,
            voiced: self.voiced_between(next_start, index + 1),
        };
        self.trim_to(next_start.saturating_sub(self.pre_roll));
        (utterance, end)
    }

    /// Snaps the edges of `[start, end)` to the energy contour: WebRTC's VAD
    /// keeps flagging speech for ~100–150 ms after it ends (its built-in
    /// overhang), can fire on a breath before it, and can miss a soft decaying
    /// release. An edge frame belongs to the utterance if it is within
    /// [`EDGE_RANGE_DB`] of the utterance's loudest frame and
    /// [`ENERGY_GATE_DB`] above the background; each edge moves (out or in) by
    /// at most [`MAX_EDGE_MOVE_MS`].
    fn refine_edges(&self, start: u64, end: u64) -> (u64, u64) {
        let loudest = (start..end)
            .map(|f| self.info(f).energy)
            .fold(0.0f32, f32::max);
        let floor = self.noise_floor.level().unwrap_or(0.0);
        let threshold =
            (loudest * db_to_power(-EDGE_RANGE_DB)).max(floor * db_to_power(ENERGY_GATE_DB));
        let max_move = (f64::from(MAX_EDGE_MOVE_MS) * f64::from(TARGET_RATE)
            / 1000.0
            / self.frame_len as f64) as u64;
        let loud = |f: u64| self.info(f).energy >= threshold;

        let earliest = start
            .saturating_sub(max_move)
            .max(self.first_frame)
            .max(self.previous_end);
        let mut new_start = start;
        while new_start > earliest && loud(new_start - 1) {
            new_start -= 1;
        }
        if new_start == start {
            new_start = (start..end.min(start + max_move))
                .find(|&f| loud(f))
                .unwrap_or(start);
        }
        let latest = (end + max_move).min(self.next_frame);
        let mut new_end = end;
        while new_end < latest && loud(new_end) {
            new_end += 1;
        }
        if new_end == end {
            new_end = (new_start.max(end.saturating_sub(max_move))..end)
                .rev()
                .find(|&f| loud(f))
                .map_or(end, |f| f + 1);
        }
        (new_start, new_end)
    }

    fn emit(&mut self, start: u64, end: u64, voiced: u64, split: bool) -> Option<Utterance> {
        let decision = self.decide(start, end, voiced, split, false);
        decision.and_then(|d| self.commit(d))
    }

    /// Counts a discarded stretch, or hands out a kept utterance's id.
    fn commit(&mut self, decision: Decision) -> Option<Utterance> {
        match decision {
            Decision::Short => {
                self.discarded.short += 1;
                None
            }
            Decision::Steady => {
                self.discarded.steady_noise += 1;
                None
            }
            Decision::Keep(utterance) => {
                self.next_id = utterance.id + 1;
                Some(utterance)
            }
        }
    }

    /// What `[start, end)` (frames) makes with the frames seen so far. With
    /// `complete_only`, `None` while later frames could still change it (the end
    /// may snap on into them, or the post-roll is not all there yet). Changes no
    /// counter.
    fn decide(
        &self,
        start: u64,
        end: u64,
        voiced: u64,
        split: bool,
        complete_only: bool,
    ) -> Option<Decision> {
        if voiced < self.min_speech {
            return Some(Decision::Short);
        }
        let (start, end) = self.refine_edges(start, end);
        if complete_only && (end >= self.next_frame || end + self.post_roll > self.next_frame) {
            return None;
        }
        if self.is_steady(start, end) {
            return Some(Decision::Steady);
        }
        let audio_start = start
            .saturating_sub(self.pre_roll)
            .max(self.first_frame)
            .max(self.previous_end);
        let audio_end = (end + self.post_roll).min(self.next_frame);
        let offset = |frame: u64| (frame - self.first_frame) as usize * self.frame_len;
        let speech = &self.samples[offset(start)..offset(end)];
        let mean_square = speech.iter().map(|s| s * s).sum::<f32>() / speech.len().max(1) as f32;
        let peak = speech.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        let utterance = Utterance {
            id: self.next_id,
            start_s: self.seconds(start),
            end_s: self.seconds(end),
            audio_start_s: self.seconds(audio_start),
            samples: Arc::from(&self.samples[offset(audio_start)..offset(audio_end)]),
            voiced_s: self.seconds(voiced),
            rms_dbfs: to_dbfs(mean_square.sqrt()),
            peak_dbfs: to_dbfs(peak),
            split,
            channel: None,
        };
        Some(Decision::Keep(utterance))
    }

    /// Whether the frames `[start, end)` hold steady noise rather than speech.
    fn is_steady(&self, start: u64, end: u64) -> bool {
        let mut levels: Vec<f32> = (start..end)
            .map(|f| 10.0 * self.info(f).energy.max(1e-12).log10())
            .collect();
        if levels.len() < 2 {
            return false;
        }
        levels.sort_by(f32::total_cmp);
        let at = |q: f32| levels[((levels.len() - 1) as f32 * q).round() as usize];
        at(0.9) - at(0.1) < STEADY_NOISE_SPREAD_DB
    }

    /// Forgets frames before `frame` (kept frames stay addressable by index).
    fn trim_to(&mut self, frame: u64) {
        if frame <= self.first_frame {
            return;
        }
        let drop = (frame - self.first_frame) as usize;
        self.frames.drain(..drop);
        self.samples.drain(..drop * self.frame_len);
        self.first_frame = frame;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_MS: u32 = 20;
    const FRAME: usize = 320;

    /// Feeds `seconds` of frames, all judged voiced or not. Speech-like input
    /// (`level` > 0.1) rises and falls like syllables (8 loud frames, 2 soft):
    /// steady input would be taken for background noise by the energy gate.
    fn feed(seg: &mut Segmenter, seconds: f64, level: f32, voiced: bool) -> Vec<Utterance> {
        let frames = (seconds * 1000.0 / f64::from(FRAME_MS)).round() as usize;
        (0..frames)
            .filter_map(|i| {
                let amplitude = if level > 0.1 && i % 10 >= 8 {
                    0.02
                } else {
                    level
                };
                seg.push(&[amplitude; FRAME], voiced)
            })
            .collect()
    }

    #[test]
    fn long_speech_is_split_at_the_quiet_frame_near_the_limit() {
        let config = SegmenterConfig::default(); // 15 s max, 3 s search window
        let mut seg = Segmenter::new(config, FRAME_MS).unwrap();
        let mut found = feed(&mut seg, 1.0, 0.0, false);
        found.extend(feed(&mut seg, 13.0, 0.3, true)); // speech from 1 s
        found.extend(feed(&mut seg, 0.1, 0.005, true)); // a soft breath at 14.0–14.1 s
        found.extend(feed(&mut seg, 6.0, 0.3, true));
        found.extend(feed(&mut seg, 1.0, 0.0, false));
        found.extend(seg.finish());
        let times: Vec<(f64, f64, bool)> = found
            .iter()
            .map(|u| (u.start_s, u.end_s, u.split))
            .collect();
        assert_eq!(found.len(), 2, "{times:?}");
        assert!(found[0].split && !found[1].split, "{times:?}");
        // Cut at the breath (14.0–14.1 s, within two frames), not at the 16 s
        // limit; the rest goes on to the end of speech at 20.1 s.
        assert!((13.96..=14.1).contains(&found[0].end_s), "{times:?}");
        assert!((14.0..=14.14).contains(&found[1].start_s), "{times:?}");
        assert!((found[1].end_s - 20.1).abs() < 0.05, "{times:?}");
        assert!((found[0].start_s - 1.0).abs() < 0.05, "{times:?}");
    }

    #[test]
    fn short_bursts_are_discarded_and_counted() {
        let mut seg = Segmenter::new(SegmenterConfig::default(), FRAME_MS).unwrap();
        let mut found = feed(&mut seg, 1.0, 0.0, false);
        found.extend(feed(&mut seg, 0.12, 0.3, true)); // a click: under min_speech_ms
        found.extend(feed(&mut seg, 1.0, 0.0, false));
        assert!(found.is_empty());
        assert_eq!(seg.discarded().short, 1);
    }

    /// Frames of white noise at `amplitude` (a fixed-seed generator, uniform samples).
    fn white_noise(seed: &mut u64, amplitude: f32) -> [f32; FRAME] {
        std::array::from_fn(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amplitude
        })
    }

    #[test]
    fn steady_noise_is_not_speech_at_the_start_or_when_it_switches_on() {
        for silence_s in [0.0, 1.0] {
            let mut seg = Segmenter::new(SegmenterConfig::default(), FRAME_MS).unwrap();
            let mut found = feed(&mut seg, silence_s, 0.0, false);
            let mut seed = 7;
            // WebRTC's VAD calls white noise speech: every frame says voiced.
            for _ in 0..250 {
                found.extend(seg.push(&white_noise(&mut seed, 0.3), true));
            }
            found.extend(seg.finish());
            let times: Vec<(f64, f64)> = found.iter().map(|u| (u.start_s, u.end_s)).collect();
            assert!(
                found.is_empty(),
                "after {silence_s} s of silence: {times:?}"
            );
            assert_eq!(seg.discarded().steady_noise, 1, "after {silence_s} s");
        }
    }

    #[test]
    fn speech_starting_in_noise_is_kept() {
        let mut seg = Segmenter::new(SegmenterConfig::default(), FRAME_MS).unwrap();
        let mut seed = 11;
        let mut noise = |seg: &mut Segmenter, frames: usize| -> Vec<Utterance> {
            (0..frames)
                .filter_map(|_| seg.push(&white_noise(&mut seed, 0.01), false))
                .collect()
        };
        let mut found = noise(&mut seg, 100);
        found.extend(feed(&mut seg, 1.5, 0.3, true));
        found.extend(noise(&mut seg, 50));
        found.extend(seg.finish());
        assert_eq!(found.len(), 1);
        assert!(
            (found[0].start_s - 2.0).abs() < 0.05,
            "{}",
            found[0].start_s
        );
        assert_eq!(seg.discarded(), Discarded::default());
    }

    /// Speech 1.0–2.0 s, a `pause_s` pause, speech again for 1 s, then silence;
    /// every event [`Segmenter::step`] produced, and the pushes' closed utterances
    /// from a second segmenter.
    fn events_around_a_pause(pause_s: f64) -> (Vec<SegmentEvent>, Vec<Utterance>) {
        let mut seg = Segmenter::new(SegmenterConfig::default(), FRAME_MS).unwrap();
        let mut plain = Segmenter::new(SegmenterConfig::default(), FRAME_MS).unwrap();
        let mut events = Vec::new();
        let mut closed = Vec::new();
        let mut frame_no = 0usize;
        for (seconds, level, voiced) in [
            (1.0, 0.0, false),
            (1.0, 0.3, true),
            (pause_s, 0.0, false),
            (1.0, 0.3, true),
            (1.0, 0.0, false),
        ] {
            for _ in 0..(seconds * 1000.0 / f64::from(FRAME_MS)).round() as usize {
                let amplitude = if level > 0.1 && frame_no % 10 >= 8 {
                    0.02
                } else {
                    level
                };
                frame_no += 1;
                events.extend(seg.step(&[amplitude; FRAME], voiced));
                closed.extend(plain.push(&[amplitude; FRAME], voiced));
            }
        }
        events.extend(seg.finish_event());
        closed.extend(plain.finish());
        (events, closed)
    }

    /// (kind, id, start, end) of each event, and the kinds alone, for assertions.
    type Summary = (&'static str, u64, f64, f64);
    fn summarise(events: &[SegmentEvent]) -> (Vec<Summary>, Vec<&'static str>) {
        let got: Vec<Summary> = events
            .iter()
            .map(|event| match event {
                SegmentEvent::Tentative { utterance: u, .. } => {
                    ("tentative", u.id, u.start_s, u.end_s)
                }
                SegmentEvent::Resumed { id } => ("resumed", *id, 0.0, 0.0),
                SegmentEvent::Closed { utterance: u, .. } => ("closed", u.id, u.start_s, u.end_s),
            })
            .collect();
        let kinds = got.iter().map(|g| g.0).collect();
        (got, kinds)
    }

    #[test]
    fn a_pause_within_the_hangover_retracts_the_tentative_end_and_closes_once() {
        let (events, closed) = events_around_a_pause(0.3);
        let (got, kinds) = summarise(&events);
        assert_eq!(
            kinds,
            ["tentative", "resumed", "tentative", "closed"],
            "{got:?}"
        );
        assert!(got.iter().all(|g| g.1 == 0), "one utterance: {got:?}");
        assert!(
            (got[0].3 - 2.0).abs() < 0.03,
            "first stop at 2.0 s: {got:?}"
        );
        assert!((got[3].3 - 3.3).abs() < 0.03, "closes at 3.3 s: {got:?}");
        let (
            SegmentEvent::Tentative {
                utterance: last,
                after_speech_s,
            },
            SegmentEvent::Closed {
                utterance,
                after_speech_s: closed_after,
            },
        ) = (&events[2], &events[3])
        else {
            unreachable!()
        };
        // The close hands out the very utterance announced (the same samples),
        // announced once the post-roll was there, closed after the hangover.
        assert!(Arc::ptr_eq(&last.samples, &utterance.samples));
        assert!((after_speech_s - 0.2).abs() < 1e-9, "{after_speech_s}");
        assert!((closed_after - 0.4).abs() < 1e-9, "{closed_after}");
        // What `push` reports is that one utterance, unchanged.
        assert_eq!(closed.len(), 1);
        assert_eq!(&closed[0].samples[..], &utterance.samples[..]);
        assert_eq!(
            (closed[0].start_s, closed[0].end_s),
            (utterance.start_s, utterance.end_s)
        );
    }

    #[test]
    fn a_pause_longer_than_the_hangover_closes_each_utterance_as_announced() {
        let (events, closed) = events_around_a_pause(0.6);
        let (got, kinds) = summarise(&events);
        assert_eq!(
            kinds,
            ["tentative", "closed", "tentative", "closed"],
            "{got:?}"
        );
        assert_eq!([got[1].1, got[3].1], [0, 1], "{got:?}");
        for pair in events.chunks(2) {
            let [
                SegmentEvent::Tentative { utterance: t, .. },
                SegmentEvent::Closed { utterance: c, .. },
            ] = pair
            else {
                unreachable!()
            };
            assert!(Arc::ptr_eq(&t.samples, &c.samples) && t.id == c.id);
        }
        let ends: Vec<(f64, f64)> = closed.iter().map(|u| (u.start_s, u.end_s)).collect();
        assert_eq!(ends, [(got[1].2, got[1].3), (got[3].2, got[3].3)]);
    }

    #[test]
    fn rejects_impossible_timing() {
        let config = SegmenterConfig {
            split_search_s: 20.0,
            ..SegmenterConfig::default()
        };
        assert!(matches!(
            Segmenter::new(config, FRAME_MS),
            Err(ConfigError::Invalid {
                name: "split_search_s",
                ..
            })
        ));
    }
}
