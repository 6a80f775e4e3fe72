//! The live pipeline: capture → scorer, on plain threads joined by a
//! crossbeam channel, reporting everything as [`PipelineEvent`]s.
//!
//! ```text
//! capture thread ──(bounded, evicting)──▶ N scoring workers ──┬─ model on its device
//!        │                                     │              └─ prosody (and speaker embedding)
//!        │                                     │                 on CPU threads, in parallel
//!        │                                  sequencer (back in utterance order)
//!        └──────── events (levels, drops, skips, results) ◀┘
//! ```
//!
//! Worker pool: [`PipelineConfig::workers`] scorers take jobs from the one queue. They
//! share one copy of the weights ([`Scorer::fork`]); a scorer that cannot be shared
//! gives a pool of one. Each worker computes in its own rayon pool with its share of
//! the CPU threads ([`WorkerPlan`]). A worker whose scorer panics reports it, skips
//! the batch with the panic as the reason, takes a fresh fork and goes on. Results pass through a sequencer that releases them in
//! utterance order, whatever order the workers finish in; skips go out at once, numbered
//! as they are sent, so the skip total stays exact.
//!
//! Backpressure policy ([`Backpressure::SkipOldest`], for live audio): at most
//! `score_queue` utterances wait for the scorer.
//! When a new one arrives and the queue is full, the **oldest waiting**
//! utterance is skipped, so the scorer always works on recent speech and
//! latency stays bounded; every skip is reported with a reason and counted.
//! The capture thread never blocks (a blocked capture thread would make the
//! microphone ring overrun). Prosody is computed only for utterances that are
//! scored, alongside the model. A panic inside the scorer or the prosody
//! analysis is caught, reported, and the pipeline goes on.
//!
//! A file read as fast as possible is not live: nothing is gained by skipping,
//! so there [`Backpressure::Wait`] makes capture wait for room in the queue
//! (reading the file simply slows down to the scorer's pace).
//!
//! The event channel is bounded too ([`EVENT_QUEUE`]): level meter events are
//! dropped when it is full (the next one supersedes them), everything else
//! waits for room, so a stalled consumer cannot grow memory without limit and
//! no utterance, skip or loss report is ever dropped.
//!
//! Shutdown: [`Pipeline::request_stop`] ends capture and lets queued work
//! finish (end of a file). [`Pipeline::cancel`] (the user quit) also ends
//! capture, lets the batch being scored finish, and skips whatever still
//! waits with the reason [`CANCELLED`], so quitting takes at most one batch's
//! scoring time and every utterance is still accounted for. While
//! [`Pipeline::set_paused`] is on, new utterances are skipped with the reason
//! [`PAUSED`] (the user asked not to listen; they are counted, not scored).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::audio::{AudioError, AudioSource};
use crate::capture::{
    CaptureObserver, CaptureSummary, FrontEnd, FrontEndConfig, run_capture_observed,
};
use crate::prosody::{Prosody, ProsodyAnalyzer, ProsodyConfig};
use crate::scoring::{Scorer, Scores};
use crate::segmenter::Activity;
use crate::utterance::Utterance;
use crate::workers::WorkerPlan;

mod sequencer;
use sequencer::{Outcome, Sequencer};

/// Capacity of the event channel from the pipeline threads to the session.
pub const EVENT_QUEUE: usize = 256;
/// Skip reason for utterances still waiting when the user quit.
pub const CANCELLED: &str = "session stopped before scoring";
/// Skip reason for utterances heard while listening was paused.
pub const PAUSED: &str = "listening paused by the user";

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub frontend: FrontEndConfig,
    /// Utterances that may wait for the scorer before the oldest is skipped.
    pub score_queue: usize,
    /// What capture does when the queue is full.
    pub backpressure: Backpressure,
    /// Compute prosody descriptors for scored utterances.
    pub prosody: bool,
    /// How often the capture thread reports the input level.
    pub level_interval: Duration,
    /// Scoring workers sharing the model (at least 1; see the module doc).
    pub workers: usize,
    /// Embed each scored utterance's voice with this encoder, beside prosody (for
    /// `--speakers`/`--enroll`; the session assigns the speaker, in utterance order).
    pub speaker_encoder: Option<Arc<crate::speaker::SpeakerEncoder>>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            frontend: FrontEndConfig::default(),
            score_queue: 3,
            backpressure: Backpressure::SkipOldest,
            prosody: true,
            level_interval: Duration::from_millis(50),
            workers: 1,
            speaker_encoder: None,
        }
    }
}

/// What capture does when `score_queue` utterances already wait for the scorer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Live audio cannot wait: skip (and report) the oldest waiting utterance.
    SkipOldest,
    /// Offline input can: block capture until the scorer takes one.
    Wait,
}

/// A scored utterance with everything the log and the dashboard show.
#[derive(Debug, Clone)]
pub struct ScoredUtterance {
    pub utterance: Arc<Utterance>,
    pub scores: Scores,
    pub prosody: Option<Prosody>,
    /// Unit-length voice embedding, when the pipeline has a speaker encoder (`None` also
    /// for an utterance with no voice to embed).
    pub embedding: Option<Vec<f32>>,
    /// From the moment the segmenter closed the utterance to its result.
    pub latency: Duration,
}

/// What the pipeline reports, in the order it happens.
#[derive(Debug, Clone)]
pub enum PipelineEvent {
    /// Input level and VAD activity at session time `at_s`.
    Level {
        at_s: f64,
        dbfs: f32,
        activity: Activity,
    },
    /// An utterance was cut and is on its way to the scorer.
    Segmented {
        id: u64,
        start_s: f64,
        end_s: f64,
    },
    Scored(ScoredUtterance),
    /// An utterance that will not be scored, and why.
    Skipped {
        utterance: Arc<Utterance>,
        reason: String,
        total: u64,
    },
    /// Input samples were lost (ring buffer overrun), in source frames.
    Dropped {
        frames: u64,
        total: u64,
    },
    /// A worker failed; the pipeline goes on.
    WorkerError(String),
    /// Capture has stopped: end of input, a stop request, or an error. Work
    /// already queued is still finished and reported after this.
    CaptureEnded {
        summary: Option<CaptureSummary>,
        error: Option<String>,
    },
}

/// Builds the audio source on the capture thread (a microphone stream must
/// live on the thread that uses it).
pub type SourceFactory = Box<dyn FnOnce() -> Result<Box<dyn AudioSource>, AudioError> + Send>;

/// A running pipeline. Read [`Pipeline::events`] until it disconnects: that
/// happens once capture has ended and every queued utterance is accounted for.
pub struct Pipeline {
    events: Receiver<PipelineEvent>,
    stop: Arc<AtomicBool>,
    cancel: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    workers: usize,
}

struct Job {
    /// Position in the scoring queue (the sequencer's order).
    seq: u64,
    utterance: Arc<Utterance>,
    closed_at: Instant,
}

impl Pipeline {
    pub fn start(
        config: PipelineConfig,
        source: SourceFactory,
        scorer: Box<dyn Scorer>,
    ) -> std::io::Result<Self> {
        let (event_tx, events) = bounded(EVENT_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let cancel = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let sequencer = Arc::new(Sequencer::new(event_tx.clone()));
        let (score_tx, score_rx) = bounded::<Job>(config.score_queue.max(1));
        let mut threads = Vec::new();

        // Forked before any thread starts, so a scorer that cannot be shared is known
        // up front (the pool then has one worker) rather than failing mid-session.
        let mut scorers = vec![scorer];
        while scorers.len() < config.workers.max(1) {
            match scorers[0].fork() {
                Some(forked) => scorers.push(forked),
                None => break,
            }
        }
        let workers = scorers.len();
        // Each worker computes on its share of the CPU threads (see crate::workers).
        let plan = WorkerPlan::new(workers);

        let capture = CaptureThread {
            events: event_tx.clone(),
            queue: score_tx,
            evict: score_rx.clone(),
            sequencer: Arc::clone(&sequencer),
            next_seq: 0,
            level_interval: config.level_interval,
            last_level: None,
            dropped_reported: 0,
            paused: Arc::clone(&paused),
            backpressure: config.backpressure,
        };
        let frontend = config.frontend;
        let capture_stop = Arc::clone(&stop);
        threads.push(
            std::thread::Builder::new()
                .name("emomon-capture".into())
                .spawn(move || {
                    // A panic in capture (decoder, resampler, VAD) must still end
                    // the session with an error, not look like the end of input.
                    let events = capture.events.clone();
                    let run = catch_unwind(AssertUnwindSafe(|| {
                        capture.run(source, &frontend, &capture_stop)
                    }));
                    if let Err(panic) = run {
                        let _ = events.send(PipelineEvent::CaptureEnded {
                            summary: None,
                            error: Some(format!(
                                "capture failed: {}",
                                panic_message(panic.as_ref())
                            )),
                        });
                    }
                })?,
        );

        for (index, scorer) in scorers.into_iter().enumerate() {
            let worker = ScoringWorker {
                jobs: score_rx.clone(),
                events: event_tx.clone(),
                sequencer: Arc::clone(&sequencer),
                prosody: config.prosody,
                speaker_encoder: config.speaker_encoder.clone(),
                cancel: Arc::clone(&cancel),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("emomon-scorer-{index}"))
                    .spawn(move || plan.install(move || worker.run(scorer)))?,
            );
        }
        Ok(Self {
            events,
            stop,
            cancel,
            paused,
            threads,
            workers,
        })
    }

    /// Scoring workers running: [`PipelineConfig::workers`], or 1 when the scorer
    /// cannot be shared ([`Scorer::fork`]).
    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn events(&self) -> &Receiver<PipelineEvent> {
        &self.events
    }

    /// Asks capture to stop; queued utterances are still scored and reported.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops capture and skips (with reason [`CANCELLED`]) every utterance not
    /// yet being scored; the batch in the scorer finishes and is reported.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Pauses (or resumes) listening: utterances heard meanwhile are skipped
    /// with reason [`PAUSED`].
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// A handle that stops capture from elsewhere (e.g. a Ctrl-C handler).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Waits for every thread (call after the events have disconnected).
    pub fn join(self) {
        for thread in self.threads {
            // Panics inside workers are caught and reported; a thread can only
            // fail here if reporting itself panicked, which leaves nothing to do.
            let _ = thread.join();
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Skips a queued utterance (its outcome, in queue order).
fn skip(sequencer: &Sequencer, job: Job, reason: &str) {
    sequencer.complete(
        job.seq,
        Outcome::Skipped {
            utterance: job.utterance,
            reason: reason.into(),
        },
    );
}

struct CaptureThread {
    events: Sender<PipelineEvent>,
    queue: Sender<Job>,
    /// The queue's receiving end, to drop its oldest entry when full.
    evict: Receiver<Job>,
    sequencer: Arc<Sequencer>,
    /// Sequence number of the next utterance to enter the queue.
    next_seq: u64,
    level_interval: Duration,
    last_level: Option<Instant>,
    dropped_reported: u64,
    paused: Arc<AtomicBool>,
    backpressure: Backpressure,
}

impl CaptureThread {
    fn run(mut self, source: SourceFactory, frontend: &FrontEndConfig, stop: &AtomicBool) {
        let mut source = match source() {
            Ok(source) => source,
            Err(e) => {
                let _ = self.events.send(PipelineEvent::CaptureEnded {
                    summary: None,
                    error: Some(e.to_string()),
                });
                return;
            }
        };
        let (summary, error) =
            match run_capture_observed(source.as_mut(), frontend, stop, &mut self) {
                Ok(outcome) => (Some(outcome.summary), outcome.error.map(|e| e.to_string())),
                Err(e) => (None, Some(e.to_string())),
            };
        let _ = self
            .events
            .send(PipelineEvent::CaptureEnded { summary, error });
    }
}

impl CaptureObserver for CaptureThread {
    fn utterance(&mut self, utterance: Utterance) {
        let utterance = Arc::new(utterance);
        let _ = self.events.send(PipelineEvent::Segmented {
            id: utterance.id,
            start_s: utterance.start_s,
            end_s: utterance.end_s,
        });
        if self.paused.load(Ordering::Relaxed) {
            self.sequencer.skip_unqueued(utterance, PAUSED);
            return;
        }
        let job = Job {
            seq: self.next_seq,
            utterance,
            closed_at: Instant::now(),
        };
        self.next_seq += 1;
        self.enqueue(job);
    }

    fn block(&mut self, front: &FrontEnd, source: &dyn AudioSource) {
        let dropped = source.dropped_frames();
        if dropped > self.dropped_reported {
            let _ = self.events.send(PipelineEvent::Dropped {
                frames: dropped - self.dropped_reported,
                total: dropped,
            });
            self.dropped_reported = dropped;
        }
        if self
            .last_level
            .is_none_or(|t| t.elapsed() >= self.level_interval)
        {
            self.last_level = Some(Instant::now());
            let (dbfs, _) = front.last_frame();
            // Levels are superseded 20 times a second: drop one rather than wait.
            let _ = self.events.try_send(PipelineEvent::Level {
                at_s: front.analysed_s(),
                dbfs,
                activity: front.activity(),
            });
        }
    }
}

impl CaptureThread {
    /// Newest first: a full queue gives up its oldest job to make room.
    fn enqueue(&self, mut job: Job) {
        if self.backpressure == Backpressure::Wait {
            if let Err(e) = self.queue.send(job) {
                skip(&self.sequencer, e.into_inner(), "scorer stopped");
            }
            return;
        }
        loop {
            match self.queue.try_send(job) {
                Ok(()) => return,
                Err(TrySendError::Disconnected(job)) => {
                    skip(&self.sequencer, job, "scorer stopped");
                    return;
                }
                Err(TrySendError::Full(back)) => {
                    job = back;
                    if let Ok(oldest) = self.evict.try_recv() {
                        skip(
                            &self.sequencer,
                            oldest,
                            "scorer behind live audio: oldest waiting utterance skipped",
                        );
                    }
                }
            }
        }
    }
}

/// One worker of the pool: takes batches from the shared queue.
struct ScoringWorker {
    jobs: Receiver<Job>,
    events: Sender<PipelineEvent>,
    sequencer: Arc<Sequencer>,
    prosody: bool,
    speaker_encoder: Option<Arc<crate::speaker::SpeakerEncoder>>,
    cancel: Arc<AtomicBool>,
}

impl ScoringWorker {
    fn run(self, mut scorer: Box<dyn Scorer>) {
        let analyzer = if self.prosody {
            ProsodyAnalyzer::new(ProsodyConfig::default())
                .map_err(|e| {
                    let _ = self
                        .events
                        .send(PipelineEvent::WorkerError(format!("prosody disabled: {e}")));
                })
                .ok()
        } else {
            None
        };
        let max_batch = scorer.max_batch().max(1);
        while let Ok(first) = self.jobs.recv() {
            if self.cancel.load(Ordering::Relaxed) {
                skip(&self.sequencer, first, CANCELLED);
                continue;
            }
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let utterances: Vec<Arc<Utterance>> =
                batch.iter().map(|j| Arc::clone(&j.utterance)).collect();
            // Prosody and speaker embeddings on CPU threads while the model scores.
            let (result, prosodies, embeddings) = std::thread::scope(|scope| {
                let prosody = scope.spawn(|| {
                    analyzer.as_ref().map(|a| {
                        utterances
                            .iter()
                            .map(|u| a.analyze(u.speech()))
                            .collect::<Vec<_>>()
                    })
                });
                let voices = scope.spawn(|| {
                    let encoder = self.speaker_encoder.as_ref();
                    utterances
                        .iter()
                        .map(|u| encoder.and_then(|e| e.embed(&u.samples).ok()))
                        .collect::<Vec<_>>()
                });
                let result = catch_unwind(AssertUnwindSafe(|| scorer.score(&utterances)));
                (result, prosody.join(), voices.join())
            });
            let embeddings = embeddings.unwrap_or_else(|panic| {
                let _ = self.events.send(PipelineEvent::WorkerError(format!(
                    "speaker embedding failed: {}",
                    panic_message(panic.as_ref())
                )));
                vec![None; batch.len()]
            });
            let prosodies: Vec<Option<Prosody>> = match prosodies {
                Ok(Some(p)) => p.into_iter().map(Some).collect(),
                Ok(None) => vec![None; batch.len()],
                Err(panic) => {
                    let _ = self.events.send(PipelineEvent::WorkerError(format!(
                        "prosody failed: {}",
                        panic_message(panic.as_ref())
                    )));
                    vec![None; batch.len()]
                }
            };
            let failure = match result {
                Ok(Ok(scores)) if scores.len() == batch.len() => {
                    let outcomes = scores.into_iter().zip(prosodies).zip(embeddings);
                    for (job, ((scores, prosody), embedding)) in batch.drain(..).zip(outcomes) {
                        let scored = ScoredUtterance {
                            latency: job.closed_at.elapsed(),
                            utterance: job.utterance,
                            scores,
                            prosody,
                            embedding,
                        };
                        self.sequencer
                            .complete(job.seq, Outcome::Event(PipelineEvent::Scored(scored)));
                    }
                    continue;
                }
                Ok(Ok(scores)) => format!(
                    "scorer returned {} results for {} utterances",
                    scores.len(),
                    batch.len()
                ),
                Ok(Err(e)) => format!("scoring failed: {e}"),
                Err(panic) => {
                    // The scorer may be left half-updated: take a fresh one sharing the
                    // same weights where the scorer allows it, and go on.
                    if let Some(fresh) = scorer.fork() {
                        scorer = fresh;
                    }
                    format!("scorer panicked: {}", panic_message(panic.as_ref()))
                }
            };
            let _ = self
                .events
                .send(PipelineEvent::WorkerError(failure.clone()));
            for job in batch {
                skip(&self.sequencer, job, &failure);
            }
        }
    }
}
