//! `--speakers channels`: a stereo input whose two channels are two people (telehealth
//! recorders and two-microphone setups record this way).
//!
//! Each channel goes through its own front end (resampler, VAD, segmenter), so each
//! person's utterances are cut where that person pauses, even when the other talks over
//! them. The speaker of an utterance is its channel ([`CHANNEL_LABELS`]); no voice
//! embedding is needed.
//!
//! **Cross-talk: the louder channel wins.** Each microphone also picks up the other
//! person, more quietly. Every 10 ms, a channel more than [`GATE_DB`] quieter than the
//! other is silenced before its VAD hears it: that stretch is the other person's bleed,
//! and it is *dropped* from the quieter channel rather than attributed to the louder one,
//! because the louder channel's own front end already has that speech (attributing it
//! too would score it twice, in a muffled voice). So a channel's utterances are cut where
//! its own person speaks, and its samples hold no bleed from the other's turns. When both
//! people talk at once, each voice dominates its own microphone and both are kept, each
//! on its channel. The rule looks at both channels over the same 10 ms, so it decides as
//! the audio arrives (10 ms of latency), without waiting for either segmenter.
//!
//! The same front end serves `score` (a whole file, [`run_channels_capture`]) and the
//! live pipeline of `run` ([`run_channels_capture_observed`], which reports through the
//! usual [`CaptureObserver`]): each utterance carries its channel in
//! [`Utterance::channel`], and that is all the rest of the pipeline needs to know.

use std::sync::atomic::AtomicBool;

use crate::audio::{AudioSource, SourceInfo};
use crate::capture::{
    CaptureObserver, CaptureOutcome, CaptureSummary, FrontEnd, FrontEndConfig, Segmenting, drive,
};
use crate::segmenter::{Activity, Discarded, SegmentEvent};
use crate::utterance::Utterance;
use crate::vad::ConfigError;

/// Speaker labels of the left and right channels.
pub const CHANNEL_LABELS: [&str; 2] = ["L", "R"];

/// The speaker label of `channel` (`L`, `R`; a channel past the second, which this mode
/// never produces, is [`UNKNOWN`](crate::speaker::UNKNOWN)).
pub fn channel_label(channel: usize) -> &'static str {
    CHANNEL_LABELS
        .get(channel)
        .copied()
        .unwrap_or(crate::speaker::UNKNOWN)
}

/// Level blocks per second (10 ms blocks).
const BLOCKS_PER_S: f64 = 100.0;

/// A 10 ms block of a channel this many dB quieter than the other channel's is the other
/// person's bleed and is silenced. Bleed between two microphones in a room or on a
/// headset is typically 15–30 dB down; 6 dB leaves both voices when both people talk.
pub const GATE_DB: f32 = 6.0;

/// Why the channels mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ChannelsError {
    /// The input is not stereo.
    #[error(
        "--speakers channels needs a stereo input (one person per channel), but {name} has \
         {channels} channel(s); for a microphone, choose a 2-channel input with --mic NAME \
         (`emomon devices` lists each input's channels); for a mixed recording, use \
         --speakers N or --enroll NAME=FILE"
    )]
    NotStereo {
        /// The input's name.
        name: String,
        /// Its channel count.
        channels: u16,
    },
    /// Bad front-end settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Checks that `source` has the two channels this mode needs, so a command can refuse a
/// mono file or microphone before it starts a session.
pub fn require_stereo(source: &SourceInfo) -> Result<(), ChannelsError> {
    if source.channels == 2 {
        return Ok(());
    }
    Err(ChannelsError::NotStereo {
        name: source.name.clone(),
        channels: source.channels,
    })
}

/// Stereo audio in, each channel's utterances out with the channel they belong to.
pub struct ChannelFrontEnd {
    fronts: [FrontEnd; 2],
    /// Stereo frames not yet making up a whole level block.
    pending: Vec<f32>,
    /// One channel of the current block, reused.
    scratch: [Vec<f32>; 2],
    /// 10 ms blocks silenced on either channel as the other's bleed.
    gated_blocks: u64,
    /// Source frames in 10 ms.
    block_frames: usize,
    /// Each channel's announced (tentative) but not yet closed utterances:
    /// (its segmenter's id, its session id).
    open_ids: [Vec<(u64, u64)>; 2],
    next_id: u64,
}

impl ChannelFrontEnd {
    /// Front ends for the two channels of `source`, which must be stereo.
    pub fn new(source: &SourceInfo, config: &FrontEndConfig) -> Result<Self, ChannelsError> {
        require_stereo(source)?;
        let mono = SourceInfo {
            channels: 1,
            ..source.clone()
        };
        Ok(Self {
            fronts: [FrontEnd::new(&mono, config)?, FrontEnd::new(&mono, config)?],
            pending: Vec::new(),
            scratch: [Vec::new(), Vec::new()],
            gated_blocks: 0,
            block_frames: ((f64::from(source.sample_rate) / BLOCKS_PER_S).round() as usize).max(1),
            open_ids: [Vec::new(), Vec::new()],
            next_id: 0,
        })
    }

    /// Feeds a block of interleaved stereo samples; `emit` hears both channels'
    /// segmenter events (tentative ends too, for speculative scoring), each utterance with
    /// its [`Utterance::channel`] set and renumbered into one session sequence, in order of
    /// first announcement (a tentative end, else the close): a tentative utterance and
    /// its close share an id, as they do from one segmenter.
    pub fn push(&mut self, interleaved: &[f32], emit: &mut dyn FnMut(SegmentEvent)) {
        self.pending
            .extend_from_slice(&interleaved[..interleaved.len() / 2 * 2]);
        let whole = self.pending.len() / (2 * self.block_frames) * 2 * self.block_frames;
        let [left, right] = &mut self.scratch;
        left.clear();
        right.clear();
        let gate = 10f32.powf(GATE_DB / 10.0);
        for block in self.pending[..whole].chunks_exact(2 * self.block_frames) {
            let (start_l, start_r) = (left.len(), right.len());
            left.extend(block.iter().step_by(2));
            right.extend(block.iter().skip(1).step_by(2));
            let ms = |x: &[f32]| x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32;
            let (ml, mr) = (ms(&left[start_l..]), ms(&right[start_r..]));
            if ml * gate < mr {
                left[start_l..].fill(0.0);
                self.gated_blocks += 1;
            } else if mr * gate < ml {
                right[start_r..].fill(0.0);
                self.gated_blocks += 1;
            }
        }
        self.pending.drain(..whole);
        self.segment(emit);
    }

    /// Ends the stream: the last part-block (ungated) and both channels' open utterances.
    pub fn finish(&mut self, emit: &mut dyn FnMut(SegmentEvent)) {
        let [left, right] = &mut self.scratch;
        left.clear();
        right.clear();
        left.extend(self.pending.iter().step_by(2));
        right.extend(self.pending.iter().skip(1).step_by(2));
        self.pending.clear();
        self.segment(emit);
        for c in 0..2 {
            let mut events = Vec::new();
            self.fronts[c].finish(&mut |e| events.push(e));
            self.number(c, events, emit);
        }
    }

    /// Feeds each channel's (gated) samples in `scratch` to its front end.
    fn segment(&mut self, emit: &mut dyn FnMut(SegmentEvent)) {
        for c in 0..2 {
            let mut events = Vec::new();
            self.fronts[c].push(&self.scratch[c], &mut |e| events.push(e));
            self.number(c, events, emit);
        }
    }

    /// Seconds of either channel silenced so far as the other's bleed.
    pub fn gated_s(&self) -> f64 {
        self.gated_blocks as f64 / BLOCKS_PER_S
    }

    /// The two channels' front ends (levels, activity, discarded stretches).
    pub fn fronts(&self) -> &[FrontEnd; 2] {
        &self.fronts
    }

    /// The front end a live level meter shows: the channel in speech (the louder one
    /// when both or neither are).
    pub fn louder(&self) -> &FrontEnd {
        let [l, r] = &self.fronts;
        let speaking = |f: &FrontEnd| matches!(f.activity(), Activity::Speech { .. });
        match (speaking(l), speaking(r)) {
            (true, false) => l,
            (false, true) => r,
            _ if r.last_frame().0 > l.last_frame().0 => r,
            _ => l,
        }
    }

    /// Passes on `channel`'s events with session ids (see [`push`](Self::push)).
    fn number(
        &mut self,
        channel: usize,
        events: Vec<SegmentEvent>,
        emit: &mut dyn FnMut(SegmentEvent),
    ) {
        for event in events {
            emit(match event {
                SegmentEvent::Tentative {
                    mut utterance,
                    after_speech_s,
                } => {
                    utterance.id = self.session_id(channel, utterance.id);
                    utterance.channel = Some(channel);
                    SegmentEvent::Tentative {
                        utterance,
                        after_speech_s,
                    }
                }
                SegmentEvent::Resumed { id } => {
                    let open = self.open_ids[channel].iter().find(|(s, _)| *s == id);
                    match open {
                        Some(&(_, id)) => SegmentEvent::Resumed { id },
                        None => continue,
                    }
                }
                SegmentEvent::Closed {
                    mut utterance,
                    after_speech_s,
                } => {
                    let own = utterance.id;
                    utterance.id = self.session_id(channel, own);
                    utterance.channel = Some(channel);
                    self.open_ids[channel].retain(|(s, _)| *s != own);
                    SegmentEvent::Closed {
                        utterance,
                        after_speech_s,
                    }
                }
            });
        }
    }

    /// The session id of `channel`'s utterance `own` (its segmenter's id): the one given
    /// when it was announced, or the next.
    fn session_id(&mut self, channel: usize, own: u64) -> u64 {
        if let Some(&(_, id)) = self.open_ids[channel].iter().find(|(s, _)| *s == own) {
            return id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.open_ids[channel].push((own, id));
        id
    }
}

impl Segmenting for ChannelFrontEnd {
    fn push(&mut self, interleaved: &[f32], emit: &mut dyn FnMut(SegmentEvent)) {
        ChannelFrontEnd::push(self, interleaved, emit)
    }
    fn finish(&mut self, emit: &mut dyn FnMut(SegmentEvent)) {
        ChannelFrontEnd::finish(self, emit)
    }
    fn meter(&self) -> &FrontEnd {
        self.louder()
    }
}

/// What a channels capture run did: the usual summary (its discarded stretches summed
/// over both channels) and how much bleed was silenced.
#[derive(Debug)]
pub struct ChannelsOutcome {
    pub capture: CaptureOutcome,
    /// Seconds of either channel silenced as the other's bleed.
    pub gated_s: f64,
}

/// Reads a stereo `source` to its end (or until `stop`), emitting each kept utterance
/// with its channel as it closes; like [`crate::capture::run_capture`], a source error
/// ends the run after the open utterances are flushed.
pub fn run_channels_capture(
    source: &mut dyn AudioSource,
    config: &FrontEndConfig,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(usize, Utterance),
) -> Result<ChannelsOutcome, ChannelsError> {
    run_channels_capture_observed(source, config, stop, &mut |u: Utterance| {
        emit(u.channel.unwrap_or(0), u)
    })
}

/// [`run_channels_capture`] for the live pipeline: the observer hears each closed
/// utterance (its channel in [`Utterance::channel`]) and, after every block, the
/// [`louder`](ChannelFrontEnd::louder) channel's front end for the level meter.
pub fn run_channels_capture_observed(
    source: &mut dyn AudioSource,
    config: &FrontEndConfig,
    stop: &AtomicBool,
    observer: &mut dyn CaptureObserver,
) -> Result<ChannelsOutcome, ChannelsError> {
    let info = source.info().clone();
    let mut front = ChannelFrontEnd::new(&info, config)?;
    let run = drive(source, stop, &mut front, observer);
    let [a, b] = front.fronts().each_ref().map(FrontEnd::discarded);
    let discarded = Discarded {
        short: a.short + b.short,
        steady_noise: a.steady_noise + b.steady_noise,
    };
    Ok(ChannelsOutcome {
        capture: CaptureOutcome {
            summary: CaptureSummary::of_run(info, run.in_frames, run.closed, discarded, source),
            error: run.error,
        },
        gated_s: front.gated_s(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quieter_channel_is_silenced_only_where_the_other_is_much_louder() {
        let info = SourceInfo {
            name: "two-mics".into(),
            sample_rate: 48_000,
            channels: 2,
        };
        let mut front = ChannelFrontEnd::new(&info, &FrontEndConfig::default()).unwrap();
        let tone = |i: usize| (i as f32 * 0.05).sin();
        let mut stereo = Vec::new();
        // 1 s: left speaks, right hears it 16 dB down (gated); 1 s: both at 3 dB apart
        // (kept); odd-sized blocks, as devices deliver.
        for i in 0..48_000 {
            stereo.extend([0.5 * tone(i), 0.08 * tone(i)]);
        }
        for i in 0..48_000 {
            stereo.extend([0.5 * tone(i), 0.36 * tone(i + 7)]);
        }
        for block in stereo.chunks(2 * 333) {
            front.push(block, &mut |_| {});
        }
        front.finish(&mut |_| {});
        assert!(
            (front.gated_s() - 1.0).abs() <= 0.011,
            "{}",
            front.gated_s()
        );
    }

    #[test]
    fn a_mono_input_is_refused_with_what_to_do() {
        let info = SourceInfo {
            name: "talk.wav".into(),
            sample_rate: 16_000,
            channels: 1,
        };
        let err = ChannelFrontEnd::new(&info, &FrontEndConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("talk.wav has 1 channel")
                && err.contains("--mic NAME")
                && err.contains("--speakers N"),
            "{err}"
        );
    }
}
