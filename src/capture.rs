//! The capture stage: source → 16 kHz mono → VAD → segmenter → utterances.
//!
//! [`FrontEnd`] is the synchronous core, fed block by block; [`run_capture`]
//! drives it from any [`AudioSource`] until the stream ends, fails or is
//! stopped, and always flushes the utterance in progress, so nothing already
//! heard is lost when a file is truncated or a microphone disappears.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::audio::convert::MonoResampler;
use crate::audio::{AudioError, AudioSource, SourceInfo};
use crate::segmenter::{Activity, Discarded, SegmentEvent, Segmenter, SegmenterConfig};
use crate::utterance::Utterance;
use crate::vad::{ConfigError, FrameVad, VadConfig};

/// All front-end settings.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FrontEndConfig {
    pub vad: VadConfig,
    pub segmenter: SegmenterConfig,
}

/// Source-format audio in, utterances out.
pub struct FrontEnd {
    resampler: MonoResampler,
    vad: FrameVad,
    segmenter: Segmenter,
    /// 16 kHz mono not yet cut into whole frames.
    mono: Vec<f32>,
    consumed: usize,
    /// Level of the most recent frame, dBFS, for a live meter.
    last_frame_dbfs: f32,
    last_frame_voiced: bool,
    /// 16 kHz samples analysed so far: the session clock.
    analysed: u64,
}

impl FrontEnd {
    pub fn new(source: &SourceInfo, config: &FrontEndConfig) -> Result<Self, ConfigError> {
        let vad = FrameVad::new(config.vad)?;
        let segmenter = Segmenter::new(config.segmenter, config.vad.frame_ms)?;
        let resampler = MonoResampler::new(source.sample_rate, source.channels).map_err(|_| {
            ConfigError::Invalid {
                name: "sample rate",
                rule: "a positive number of Hz",
                value: f64::from(source.sample_rate),
            }
        })?;
        Ok(Self {
            resampler,
            vad,
            segmenter,
            mono: Vec::new(),
            consumed: 0,
            last_frame_dbfs: -120.0,
            last_frame_voiced: false,
            analysed: 0,
        })
    }

    /// Feeds a block of interleaved source samples; `emit` hears every segmenter
    /// event (tentative ends too: see [`SegmentEvent`]).
    pub fn push(&mut self, interleaved: &[f32], emit: &mut dyn FnMut(SegmentEvent)) {
        self.resampler.push(interleaved, &mut self.mono);
        self.run_frames(emit);
    }

    /// Ends the stream: flushes the resampler and the open utterance. The
    /// trailing part-frame (under 30 ms) is padded with silence.
    pub fn finish(&mut self, emit: &mut dyn FnMut(SegmentEvent)) {
        self.resampler.finish(&mut self.mono);
        let frame_len = self.vad.frame_len();
        let partial = (self.mono.len() - self.consumed) % frame_len;
        if partial > 0 {
            self.mono.resize(self.mono.len() + frame_len - partial, 0.0);
        }
        self.run_frames(emit);
        if let Some(event) = self.segmenter.finish_event() {
            emit(event);
        }
    }

    pub fn activity(&self) -> Activity {
        self.segmenter.activity()
    }

    /// Level and VAD decision of the latest frame.
    pub fn last_frame(&self) -> (f32, bool) {
        (self.last_frame_dbfs, self.last_frame_voiced)
    }

    pub fn discarded(&self) -> Discarded {
        self.segmenter.discarded()
    }

    /// Seconds of audio analysed so far (the session clock).
    pub fn analysed_s(&self) -> f64 {
        self.analysed as f64 / f64::from(crate::audio::TARGET_RATE)
    }

    fn run_frames(&mut self, emit: &mut dyn FnMut(SegmentEvent)) {
        let frame_len = self.vad.frame_len();
        while self.mono.len() - self.consumed >= frame_len {
            let frame = &self.mono[self.consumed..self.consumed + frame_len];
            let voiced = self.vad.is_speech(frame);
            let mean_square = frame.iter().map(|s| s * s).sum::<f32>() / frame_len as f32;
            self.last_frame_dbfs = crate::utterance::to_dbfs(mean_square.sqrt());
            self.last_frame_voiced = voiced;
            for event in self.segmenter.step(frame, voiced) {
                emit(event);
            }
            self.consumed += frame_len;
            self.analysed += frame_len as u64;
        }
        // Compact now and then rather than on every frame.
        if self.consumed > 1 << 16 {
            self.mono.drain(..self.consumed);
            self.consumed = 0;
        }
    }
}

/// What a capture run did.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSummary {
    pub source: SourceInfo,
    /// Seconds of 16 kHz audio analysed.
    pub seconds: f64,
    pub utterances: u64,
    /// Frames the source dropped (ring overruns); also part of `seconds`' gaps.
    pub dropped_frames: u64,
    /// Stretches not kept: too short, or steady noise.
    pub discarded: Discarded,
}

impl CaptureSummary {
    /// The summary of a run that read `in_frames` input frames of `source` (described
    /// by `info`) and kept `utterances`.
    pub(crate) fn of_run(
        info: SourceInfo,
        in_frames: u64,
        utterances: u64,
        discarded: Discarded,
        source: &dyn AudioSource,
    ) -> Self {
        Self {
            seconds: in_frames as f64 / f64::from(info.sample_rate.max(1)),
            source: info,
            utterances,
            dropped_frames: source.dropped_frames(),
            discarded,
        }
    }
}

/// How a capture run ended: its summary, and the error that ended it early, if any.
/// Utterances found before an error have already been emitted.
#[derive(Debug)]
pub struct CaptureOutcome {
    pub summary: CaptureSummary,
    pub error: Option<AudioError>,
}

/// Receives what a capture run produces, as it happens.
pub trait CaptureObserver {
    /// An utterance has closed.
    fn utterance(&mut self, utterance: Utterance);
    /// Any segmenter event; the default passes closed utterances to
    /// [`utterance`](Self::utterance) and ignores tentative ends.
    fn segment(&mut self, event: SegmentEvent) {
        if let SegmentEvent::Closed { utterance, .. } = event {
            self.utterance(utterance);
        }
    }
    /// A block of input was processed; `front` and `source` can be inspected
    /// for live levels and dropped-sample counts.
    fn block(&mut self, _front: &FrontEnd, _source: &dyn AudioSource) {}
}

impl<F: FnMut(Utterance)> CaptureObserver for F {
    fn utterance(&mut self, utterance: Utterance) {
        self(utterance)
    }
}

/// Reads `source` to its end (or until `stop` is set), emitting utterances as
/// they close. Errors from the source end the run after the open utterance is
/// flushed.
pub fn run_capture(
    source: &mut dyn AudioSource,
    config: &FrontEndConfig,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(Utterance),
) -> Result<CaptureOutcome, ConfigError> {
    run_capture_observed(source, config, stop, &mut |u| emit(u))
}

/// [`run_capture`] with an observer that also hears about every block.
pub fn run_capture_observed(
    source: &mut dyn AudioSource,
    config: &FrontEndConfig,
    stop: &AtomicBool,
    observer: &mut dyn CaptureObserver,
) -> Result<CaptureOutcome, ConfigError> {
    let info = source.info().clone();
    let mut front = FrontEnd::new(&info, config)?;
    let run = drive(source, stop, &mut front, observer);
    Ok(CaptureOutcome {
        summary: CaptureSummary::of_run(info, run.in_frames, run.closed, front.discarded(), source),
        error: run.error,
    })
}

/// A front end that [`drive`] can feed: the mono [`FrontEnd`], or the two channels'
/// front ends of `--speakers channels`.
pub(crate) trait Segmenting {
    /// Feeds a block of interleaved source samples; `emit` hears every segmenter event.
    fn push(&mut self, interleaved: &[f32], emit: &mut dyn FnMut(SegmentEvent));
    /// Ends the stream, flushing open utterances through `emit`.
    fn finish(&mut self, emit: &mut dyn FnMut(SegmentEvent));
    /// The front end whose level and activity a live meter shows.
    fn meter(&self) -> &FrontEnd;
}

impl Segmenting for FrontEnd {
    fn push(&mut self, interleaved: &[f32], emit: &mut dyn FnMut(SegmentEvent)) {
        FrontEnd::push(self, interleaved, emit)
    }
    fn finish(&mut self, emit: &mut dyn FnMut(SegmentEvent)) {
        FrontEnd::finish(self, emit)
    }
    fn meter(&self) -> &FrontEnd {
        self
    }
}

/// What [`drive`] counted.
pub(crate) struct DriveRun {
    /// Input frames read.
    pub in_frames: u64,
    /// Utterances closed.
    pub closed: u64,
    /// The source error that ended the run, if any.
    pub error: Option<AudioError>,
}

/// Feeds `source` through `front` to its end (or `stop`, or a source error, after which
/// the open utterances are still flushed): `observer` hears every segmenter event and,
/// after every block and once at the end, the metered front end.
pub(crate) fn drive(
    source: &mut dyn AudioSource,
    stop: &AtomicBool,
    front: &mut dyn Segmenting,
    observer: &mut dyn CaptureObserver,
) -> DriveRun {
    let mut closed = 0u64;
    let mut hear = |event: SegmentEvent, observer: &mut dyn CaptureObserver| {
        closed += u64::from(matches!(event, SegmentEvent::Closed { .. }));
        observer.segment(event);
    };
    let (in_frames, error) = read_blocks(source, stop, &mut |block, source| {
        front.push(block, &mut |event| hear(event, observer));
        observer.block(front.meter(), source);
    });
    front.finish(&mut |event| hear(event, observer));
    observer.block(front.meter(), source);
    DriveRun {
        in_frames,
        closed,
        error,
    }
}

/// Reads `source` block by block until its end, `stop`, or an error, handing every
/// block read (the one that came with an error too) to `on_block`. Returns the input
/// frames read and the error that ended the run, if any.
pub(crate) fn read_blocks(
    source: &mut dyn AudioSource,
    stop: &AtomicBool,
    on_block: &mut dyn FnMut(&[f32], &dyn AudioSource),
) -> (u64, Option<AudioError>) {
    let channels = usize::from(source.info().channels.max(1));
    let mut block = Vec::new();
    let mut in_frames = 0u64;
    let error = loop {
        if stop.load(Ordering::Relaxed) {
            break None;
        }
        block.clear();
        let result = source.read_block(&mut block);
        in_frames += (block.len() / channels) as u64;
        on_block(&block, source);
        match result {
            Ok(true) => {}
            Ok(false) => break None,
            Err(e) => break Some(e),
        }
    };
    (in_frames, error)
}
