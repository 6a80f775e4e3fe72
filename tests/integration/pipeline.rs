//! The live pipeline on real speech with stand-in scorers: every utterance is
//! accounted for (scored or skipped with a reason), backpressure skips the
//! oldest waiting work, and failures are reported without ending the session.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Noise, decode_16k};
use emomon::audio::memory::MemorySource;
use emomon::audio::{AudioError, AudioSource};
use emomon::pipeline::{Pipeline, PipelineConfig, PipelineEvent, SourceFactory};
use emomon::scoring::{ScoreError, Scorer, Scores};
use emomon::utterance::Utterance;

/// Speech clips from the repo, `repeats` times, with 0.8 s pauses.
pub(crate) fn session_audio(repeats: usize) -> Vec<f32> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    let clips: Vec<Vec<f32>> = ["03.wav", "07.wav", "12.wav"]
        .iter()
        .map(|c| decode_16k(&dir.join(c)))
        .collect();
    let mut audio = Noise::new(1).samples(8_000, -70.0);
    for _ in 0..repeats {
        for clip in &clips {
            audio.extend(clip);
            audio.extend(Noise::new(2).samples(12_800, -70.0));
        }
    }
    audio
}

pub(crate) fn memory(audio: Vec<f32>) -> SourceFactory {
    Box::new(move || {
        Ok(Box::new(MemorySource::new("session", audio, 16_000, 1)) as Box<dyn AudioSource>)
    })
}

/// Scores from the utterance's loudness, after an optional delay; panics on request.
/// With `shared` set it can be forked for a worker pool; every fork is counted.
struct StandIn {
    labels: Vec<String>,
    delay: Duration,
    panic_on: Option<u64>,
    /// Extra delay for even utterance ids, so that a later, odd one finishes first.
    even_delay: Duration,
    /// Forks made so far (`None`: this scorer cannot be shared).
    shared: Option<Arc<AtomicUsize>>,
}

impl StandIn {
    fn new(delay_ms: u64) -> Self {
        Self {
            labels: vec!["calm".into(), "aroused".into()],
            delay: Duration::from_millis(delay_ms),
            panic_on: None,
            even_delay: Duration::ZERO,
            shared: None,
        }
    }
}

impl Scorer for StandIn {
    fn model(&self) -> &str {
        "stand-in"
    }
    fn method(&self) -> &str {
        "loudness"
    }
    fn device(&self) -> &str {
        "cpu"
    }
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn max_batch(&self) -> usize {
        1
    }
    fn fork(&self) -> Option<Box<dyn Scorer>> {
        let forks = self.shared.as_ref()?;
        forks.fetch_add(1, Ordering::SeqCst);
        Some(Box::new(StandIn {
            labels: self.labels.clone(),
            delay: self.delay,
            panic_on: self.panic_on,
            even_delay: self.even_delay,
            shared: Some(Arc::clone(forks)),
        }))
    }
    fn score(&mut self, batch: &[Arc<Utterance>]) -> Result<Vec<Scores>, ScoreError> {
        std::thread::sleep(self.delay);
        if batch.iter().any(|u| u.id % 2 == 0) {
            std::thread::sleep(self.even_delay);
        }
        batch
            .iter()
            .map(|u| {
                assert!(
                    Some(u.id) != self.panic_on,
                    "stand-in scorer fails on utterance {}",
                    u.id
                );
                let aroused = ((u.rms_dbfs + 40.0) / 40.0).clamp(0.05, 0.95);
                Ok(Scores {
                    probs: vec![1.0 - aroused, aroused],
                    logits: vec![0.0, (aroused / (1.0 - aroused)).ln()],
                })
            })
            .collect()
    }
}

#[derive(Default, Debug)]
pub(crate) struct Tally {
    pub(crate) segmented: Vec<u64>,
    pub(crate) scored: Vec<u64>,
    pub(crate) skipped: Vec<(u64, String)>,
    pub(crate) errors: Vec<String>,
    pub(crate) capture_error: Option<String>,
    pub(crate) levels: usize,
    pub(crate) ended: bool,
}

pub(crate) fn drain(pipeline: Pipeline) -> Tally {
    let mut tally = Tally::default();
    for event in pipeline.events().iter() {
        match event {
            PipelineEvent::Segmented { id, .. } => tally.segmented.push(id),
            PipelineEvent::Scored(s) => {
                let sum: f32 = s.scores.probs.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "probs sum to {sum}");
                assert!(
                    s.prosody.is_some(),
                    "prosody computed for {}",
                    s.utterance.id
                );
                tally.scored.push(s.utterance.id);
            }
            PipelineEvent::Skipped {
                utterance,
                reason,
                total,
            } => {
                tally.skipped.push((utterance.id, reason));
                assert_eq!(total as usize, tally.skipped.len(), "skip counter is exact");
            }
            PipelineEvent::WorkerError(e) => tally.errors.push(e),
            PipelineEvent::CaptureEnded { error, .. } => {
                tally.ended = true;
                tally.capture_error = error;
            }
            PipelineEvent::Level { .. } => tally.levels += 1,
            PipelineEvent::Dropped { .. } => {}
        }
    }
    pipeline.join();
    tally
}

pub(crate) fn accounted(t: &Tally) -> Vec<u64> {
    let mut all: Vec<u64> = t
        .scored
        .iter()
        .copied()
        .chain(t.skipped.iter().map(|s| s.0))
        .collect();
    all.sort();
    all
}

#[test]
fn every_utterance_is_scored_when_the_queue_holds_the_backlog() {
    // Capture runs far faster than real time here; a queue as long as the
    // session stands in for a scorer that keeps up with live audio.
    let config = PipelineConfig {
        score_queue: 8,
        ..PipelineConfig::default()
    };
    let pipeline =
        Pipeline::start(config, memory(session_audio(2)), Box::new(StandIn::new(0))).unwrap();
    let t = drain(pipeline);
    assert!(t.ended && t.capture_error.is_none(), "{t:?}");
    assert_eq!(t.segmented.len(), 6, "{t:?}");
    assert!(t.skipped.is_empty(), "{t:?}");
    assert_eq!(accounted(&t), t.segmented);
    assert!(t.levels > 0);
}

#[test]
fn a_slow_scorer_skips_the_oldest_and_loses_nothing_else() {
    let config = PipelineConfig {
        score_queue: 2,
        ..PipelineConfig::default()
    };
    // Capture runs ~1000x real time; 150 ms per utterance cannot keep up.
    let pipeline = Pipeline::start(
        config,
        memory(session_audio(6)),
        Box::new(StandIn::new(150)),
    )
    .unwrap();
    let t = drain(pipeline);
    assert_eq!(t.segmented.len(), 18);
    assert!(!t.skipped.is_empty(), "expected skips: {t:?}");
    assert!(
        t.skipped
            .iter()
            .all(|(_, why)| why.contains("scorer behind")),
        "{t:?}"
    );
    assert_eq!(accounted(&t), t.segmented, "scored + skipped = segmented");
    // The newest utterance is always scored.
    assert!(t.scored.contains(t.segmented.last().unwrap()), "{t:?}");
    // Bounded: at most the batch in flight plus the queue waited at the end.
    assert!(t.scored.len() >= 3, "{t:?}");
}

#[test]
fn a_panicking_scorer_is_reported_and_the_session_goes_on() {
    let scorer = StandIn {
        panic_on: Some(1),
        ..StandIn::new(0)
    };
    let t = drain(
        Pipeline::start(
            PipelineConfig {
                score_queue: 8,
                ..PipelineConfig::default()
            },
            memory(session_audio(1)),
            Box::new(scorer),
        )
        .unwrap(),
    );
    assert_eq!(t.segmented.len(), 3);
    assert_eq!(t.scored, vec![0, 2]);
    assert_eq!(t.skipped.len(), 1);
    assert!(t.skipped[0].1.contains("panicked"), "{t:?}");
    assert!(
        t.errors.iter().any(|e| e.contains("fails on utterance 1")),
        "{t:?}"
    );
}

#[test]
fn a_source_that_cannot_open_ends_the_session_with_its_error() {
    let factory: SourceFactory = Box::new(|| Err(AudioError::NoInputDevice));
    let t = drain(
        Pipeline::start(
            PipelineConfig::default(),
            factory,
            Box::new(StandIn::new(0)),
        )
        .unwrap(),
    );
    assert!(t.ended);
    assert!(t.capture_error.unwrap().contains("no audio input device"));
    assert!(t.segmented.is_empty());
}

#[test]
fn a_worker_pool_reports_results_in_utterance_order() {
    // Even utterances take 200 ms longer, so with two workers each odd one is done
    // before the even one queued ahead of it.
    let forks = Arc::new(AtomicUsize::new(0));
    let scorer = StandIn {
        even_delay: Duration::from_millis(200),
        shared: Some(Arc::clone(&forks)),
        ..StandIn::new(10)
    };
    let pipeline = Pipeline::start(
        PipelineConfig {
            score_queue: 16,
            workers: 2,
            ..PipelineConfig::default()
        },
        memory(session_audio(2)),
        Box::new(scorer),
    )
    .unwrap();
    assert_eq!(pipeline.workers(), 2);
    assert_eq!(
        forks.load(Ordering::SeqCst),
        1,
        "one fork for the second worker"
    );
    let t = drain(pipeline);
    assert_eq!(t.segmented.len(), 6, "{t:?}");
    assert_eq!(
        t.scored, t.segmented,
        "every one scored, in utterance order"
    );
    assert!(t.skipped.is_empty() && t.errors.is_empty(), "{t:?}");
}

#[test]
fn a_pool_under_load_skips_the_oldest_and_counts_every_skip_once() {
    let scorer = StandIn {
        shared: Some(Arc::new(AtomicUsize::new(0))),
        ..StandIn::new(150)
    };
    let t = drain(
        Pipeline::start(
            PipelineConfig {
                score_queue: 2,
                workers: 2,
                ..PipelineConfig::default()
            },
            memory(session_audio(6)),
            Box::new(scorer),
        )
        .unwrap(),
    );
    // `drain` checks that each skip's running total is exactly the skips seen so far.
    assert_eq!(t.segmented.len(), 18);
    assert!(!t.skipped.is_empty(), "expected skips: {t:?}");
    assert_eq!(accounted(&t), t.segmented, "scored + skipped = segmented");
    let mut in_order = t.scored.clone();
    in_order.sort();
    assert_eq!(t.scored, in_order, "results in utterance order");
}

#[test]
fn a_worker_whose_scorer_panics_gets_a_fresh_one_and_the_pool_goes_on() {
    let forks = Arc::new(AtomicUsize::new(0));
    let scorer = StandIn {
        panic_on: Some(1),
        shared: Some(Arc::clone(&forks)),
        ..StandIn::new(0)
    };
    let t = drain(
        Pipeline::start(
            PipelineConfig {
                score_queue: 8,
                workers: 2,
                ..PipelineConfig::default()
            },
            memory(session_audio(2)),
            Box::new(scorer),
        )
        .unwrap(),
    );
    assert_eq!(t.scored, vec![0, 2, 3, 4, 5], "{t:?}");
    assert_eq!(t.skipped.len(), 1);
    assert!(t.skipped[0].1.contains("panicked"), "{t:?}");
    assert_eq!(
        forks.load(Ordering::SeqCst),
        2,
        "one fork for the second worker, one to replace the scorer that panicked"
    );
}

#[test]
fn a_scorer_that_cannot_be_shared_runs_as_a_pool_of_one() {
    let pipeline = Pipeline::start(
        PipelineConfig {
            score_queue: 8,
            workers: 4,
            ..PipelineConfig::default()
        },
        memory(session_audio(1)),
        Box::new(StandIn::new(0)),
    )
    .unwrap();
    assert_eq!(pipeline.workers(), 1);
    let t = drain(pipeline);
    assert_eq!(t.scored, vec![0, 1, 2]);
}

/// A stereo session: the left channel speaks first (three clips), then the right.
fn two_channel_session() -> Vec<f32> {
    let voice = session_audio(1);
    let quiet = vec![0.0; voice.len()];
    let left = [voice.as_slice(), &quiet].concat();
    let right = [quiet.as_slice(), &voice].concat();
    left.iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l, r])
        .collect()
}

/// The channels front end announces each utterance (tentative end) under the session id
/// it closes with, the same samples, so speculative scoring works per channel too.
#[test]
fn channels_mode_announces_utterances_under_the_ids_they_close_with() {
    use emomon::capture::{CaptureObserver, FrontEndConfig};
    use emomon::segmenter::SegmentEvent;
    struct Events(Vec<SegmentEvent>);
    impl CaptureObserver for Events {
        fn utterance(&mut self, _: Utterance) {}
        fn segment(&mut self, event: SegmentEvent) {
            self.0.push(event);
        }
    }
    let mut source = MemorySource::new("two-mics", two_channel_session(), 16_000, 2);
    let mut events = Events(Vec::new());
    emomon::speaker::channels::run_channels_capture_observed(
        &mut source,
        &FrontEndConfig::default(),
        &std::sync::atomic::AtomicBool::new(false),
        &mut events,
    )
    .unwrap();
    let mut announced = Vec::new();
    let mut closed = Vec::new();
    for event in events.0 {
        match event {
            SegmentEvent::Tentative { utterance, .. } => announced.push(utterance),
            SegmentEvent::Closed { utterance, .. } => closed.push(utterance),
            SegmentEvent::Resumed { .. } => {}
        }
    }
    let ids: Vec<(u64, Option<usize>)> = closed.iter().map(|u| (u.id, u.channel)).collect();
    let expected: Vec<(u64, Option<usize>)> =
        (0..6).map(|i| (i, Some(usize::from(i >= 3)))).collect();
    assert_eq!(ids, expected);
    for u in &closed {
        assert!(
            announced.iter().any(|a| a.id == u.id
                && a.channel == u.channel
                && Arc::ptr_eq(&a.samples, &u.samples)),
            "utterance {} closed without its tentative end",
            u.id
        );
    }
}

/// `--speakers channels` in the live pipeline: a stereo source whose left channel speaks
/// first and right channel after gives each utterance its channel, in one id sequence,
/// every one scored; a mono source ends capture with the error that says what to do.
#[test]
fn channels_mode_carries_each_utterance_channel_through_the_pipeline() {
    let stereo = two_channel_session();
    let config = PipelineConfig {
        score_queue: 8,
        speaker_channels: true,
        ..PipelineConfig::default()
    };
    let source: SourceFactory = Box::new(move || {
        Ok(Box::new(MemorySource::new("two-mics", stereo, 16_000, 2)) as Box<dyn AudioSource>)
    });
    let pipeline = Pipeline::start(config, source, Box::new(StandIn::new(0))).unwrap();
    let mut channels = Vec::new();
    for event in pipeline.events().iter() {
        match event {
            PipelineEvent::Scored(s) => channels.push((s.utterance.id, s.utterance.channel)),
            PipelineEvent::Skipped {
                utterance, reason, ..
            } => {
                panic!("utterance {} skipped: {reason}", utterance.id)
            }
            PipelineEvent::CaptureEnded { error, .. } => assert_eq!(error, None),
            _ => {}
        }
    }
    pipeline.join();
    let expected: Vec<(u64, Option<usize>)> =
        (0..6).map(|i| (i, Some(usize::from(i >= 3)))).collect();
    assert_eq!(channels, expected);

    let mono = drain(
        Pipeline::start(
            PipelineConfig {
                speaker_channels: true,
                ..PipelineConfig::default()
            },
            memory(session_audio(1)),
            Box::new(StandIn::new(0)),
        )
        .unwrap(),
    );
    let error = mono.capture_error.clone().unwrap_or_default();
    assert!(
        error.contains("needs a stereo input") && error.contains("--mic NAME"),
        "{error}"
    );
    assert!(mono.segmented.is_empty(), "{mono:?}");
}
