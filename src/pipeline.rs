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
//! Speculative scoring ([`PipelineConfig::speculative`], live input): the segmenter
//! announces an utterance as soon as speech stops, ~0.3 s before the hangover closes
//! it; an idle worker scores it meanwhile, and if it closes unchanged that result is
//! published at the close (or as soon as the job ends), so the hangover is hidden.
//! Closed utterances always come first: a worker takes a speculative job only when
//! no closed one waits, at most one such job runs at a time, and a stale one
//! (speech resumed) is dropped. Only closed utterances are published, skipped or
//! counted; the bookkeeping is in [`speculation`].
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

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select};

use crate::audio::{AudioError, AudioSource};
use crate::capture::{
    CaptureObserver, CaptureSummary, FrontEnd, FrontEndConfig, run_capture_observed,
};
use crate::prosody::{Prosody, ProsodyAnalyzer, ProsodyConfig};
use crate::scoring::{Scorer, Scores};
use crate::segmenter::{Activity, SegmentEvent};
use crate::speaker::channels::run_channels_capture_observed;
use crate::utterance::Utterance;
use crate::workers::WorkerPlan;

mod sequencer;
mod speculation;
use sequencer::{Outcome, Sequencer};
use speculation::{Finished, OnClose, Speculation};

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
    /// Score utterances during their hangover (see the module doc). Pays only for
    /// live input: a file read as fast as possible closes them at once anyway.
    pub speculative: bool,
    /// `--speakers channels`: the input is stereo with one person per channel; each
    /// channel is segmented on its own ([`crate::speaker::channels`]) and each utterance
    /// carries its [`Utterance::channel`]. A mono input ends capture with an error that
    /// says what to do.
    pub speaker_channels: bool,
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
            speculative: true,
            speaker_channels: false,
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
    /// From the end of its last voiced frame (as heard: audio time to the close,
    /// then wall time) to its result: what a speaker waits after they stop.
    pub speech_latency: Duration,
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
    /// Audio time from the end of speech to the close.
    after_speech: Duration,
}

/// One utterance's result, before it is timed and published.
struct Analysed {
    scores: Scores,
    prosody: Option<Prosody>,
    embedding: Option<Vec<f32>>,
}

/// Speculative jobs' bookkeeping, shared by capture and the workers.
type SharedSpeculation = Arc<std::sync::Mutex<Speculation<Analysed, Job>>>;

fn lock_speculation(
    speculation: &SharedSpeculation,
) -> std::sync::MutexGuard<'_, Speculation<Analysed, Job>> {
    // Every update is a single assignment: a panicking holder left it consistent.
    speculation
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands a speculative job's token to a worker: the newest replaces one not yet taken.
fn wake(tokens: &Sender<u64>, evict: &Receiver<u64>, token: u64) {
    while let Err(TrySendError::Full(_)) = tokens.try_send(token) {
        let _ = evict.try_recv();
    }
}

/// Publishes a closed utterance's result in queue order.
fn publish(sequencer: &Sequencer, job: Job, analysed: Analysed) {
    let latency = job.closed_at.elapsed();
    let scored = ScoredUtterance {
        latency,
        speech_latency: latency + job.after_speech,
        utterance: job.utterance,
        scores: analysed.scores,
        prosody: analysed.prosody,
        embedding: analysed.embedding,
    };
    sequencer.complete(job.seq, Outcome::Event(PipelineEvent::Scored(scored)));
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
        let (tokens, evict) = bounded::<u64>(1);
        let speculation = SpeculativeSide {
            state: SharedSpeculation::default(),
            tokens,
            evict,
        };
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
            speculation: config.speculative.then(|| speculation.clone()),
            channels: config.speaker_channels,
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
                speculation: speculation.clone(),
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
    /// Set when scoring speculatively.
    speculation: Option<SpeculativeSide>,
    /// Segment each channel on its own (`PipelineConfig::speaker_channels`).
    channels: bool,
}

/// The speculative jobs' state and the channel that wakes a worker for one.
#[derive(Clone)]
struct SpeculativeSide {
    state: SharedSpeculation,
    tokens: Sender<u64>,
    /// The channel's receiving end, to replace a token not taken yet.
    evict: Receiver<u64>,
}

impl SpeculativeSide {
    fn wake(&self, token: Option<u64>) {
        if let Some(token) = token {
            wake(&self.tokens, &self.evict, token);
        }
    }
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
        let outcome = if self.channels {
            run_channels_capture_observed(source.as_mut(), frontend, stop, &mut self)
                .map(|outcome| {
                    tracing::info!(
                        gated_s = outcome.gated_s,
                        "--speakers channels: seconds silenced as the other channel's bleed"
                    );
                    outcome.capture
                })
                .map_err(|e| e.to_string())
        } else {
            run_capture_observed(source.as_mut(), frontend, stop, &mut self)
                .map_err(|e| e.to_string())
        };
        let (summary, error) = match outcome {
            Ok(outcome) => (Some(outcome.summary), outcome.error.map(|e| e.to_string())),
            Err(e) => (None, Some(e)),
        };
        let _ = self
            .events
            .send(PipelineEvent::CaptureEnded { summary, error });
    }
}

impl CaptureObserver for CaptureThread {
    fn utterance(&mut self, utterance: Utterance) {
        self.closed(utterance, Duration::ZERO);
    }

    fn segment(&mut self, event: SegmentEvent) {
        let speculating = self.speculation.is_some() && !self.paused.load(Ordering::Relaxed);
        match event {
            SegmentEvent::Closed {
                utterance,
                after_speech_s,
            } => self.closed(utterance, Duration::from_secs_f64(after_speech_s)),
            SegmentEvent::Tentative { utterance, .. } if speculating => {
                if let Some(side) = &self.speculation {
                    let token = lock_speculation(&side.state).tentative(Arc::new(utterance));
                    side.wake(token);
                }
            }
            SegmentEvent::Resumed { id } => {
                if let Some(side) = &self.speculation {
                    lock_speculation(&side.state).resumed(id);
                }
            }
            SegmentEvent::Tentative { .. } => {}
        }
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
    /// A closed utterance: its speculative result, or the queue.
    fn closed(&mut self, utterance: Utterance, after_speech: Duration) {
        let utterance = Arc::new(utterance);
        let _ = self.events.send(PipelineEvent::Segmented {
            id: utterance.id,
            start_s: utterance.start_s,
            end_s: utterance.end_s,
        });
        if self.paused.load(Ordering::Relaxed) {
            if let Some(side) = &self.speculation {
                lock_speculation(&side.state).resumed(utterance.id);
            }
            self.sequencer.skip_unqueued(utterance, PAUSED);
            return;
        }
        let job = Job {
            seq: self.next_seq,
            utterance: Arc::clone(&utterance),
            closed_at: Instant::now(),
            after_speech,
        };
        self.next_seq += 1;
        let on_close = match &self.speculation {
            Some(side) => lock_speculation(&side.state).closed(&utterance, job),
            None => OnClose::Queue(job),
        };
        match on_close {
            OnClose::Ready(analysed, job) => publish(&self.sequencer, job, analysed),
            OnClose::Attached => {}
            OnClose::Queue(job) => self.enqueue(job),
        }
    }

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

/// One worker of the pool: takes batches from the shared queue, and speculative
/// jobs when no closed utterance waits.
struct ScoringWorker {
    jobs: Receiver<Job>,
    events: Sender<PipelineEvent>,
    sequencer: Arc<Sequencer>,
    prosody: bool,
    speaker_encoder: Option<Arc<crate::speaker::SpeakerEncoder>>,
    cancel: Arc<AtomicBool>,
    speculation: SpeculativeSide,
}

/// What a worker takes next.
enum Work {
    Closed(Job),
    Speculative(u64),
}

impl ScoringWorker {
    /// Closed utterances first; `None` once capture has ended and the queue is empty.
    fn next(&self) -> Option<Work> {
        if let Ok(job) = self.jobs.try_recv() {
            return Some(Work::Closed(job));
        }
        select! {
            recv(self.jobs) -> job => job.ok().map(Work::Closed),
            recv(self.speculation.evict) -> token => match token {
                // A closed utterance that arrived meanwhile still goes first.
                Ok(token) => match self.jobs.try_recv() {
                    Ok(job) => {
                        // The token goes back for a worker that is free.
                        let next = lock_speculation(&self.speculation.state).wake();
                        self.speculation.wake(next);
                        Some(Work::Closed(job))
                    }
                    Err(_) => Some(Work::Speculative(token)),
                },
                // Workers hold a sender themselves: this cannot disconnect first.
                Err(_) => self.jobs.recv().ok().map(Work::Closed),
            },
        }
    }

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
        while let Some(work) = self.next() {
            let first = match work {
                Work::Closed(job) => job,
                Work::Speculative(token) => {
                    self.speculate(&mut scorer, analyzer.as_ref(), token);
                    continue;
                }
            };
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
            match self.analyse(&mut scorer, analyzer.as_ref(), &utterances, true) {
                Ok(analysed) => {
                    for (job, analysed) in batch.into_iter().zip(analysed) {
                        publish(&self.sequencer, job, analysed);
                    }
                }
                Err(failure) => {
                    for job in batch {
                        skip(&self.sequencer, job, &failure);
                    }
                }
            }
        }
    }

    /// Scores tentative job `token` if it is still current; publishes it if its
    /// utterance closed meanwhile.
    fn speculate(
        &self,
        scorer: &mut Box<dyn Scorer>,
        analyzer: Option<&ProsodyAnalyzer>,
        token: u64,
    ) {
        let state = &self.speculation.state;
        let started = (!self.cancel.load(Ordering::Relaxed))
            .then(|| lock_speculation(state).start(token))
            .flatten();
        if let Some(utterance) = started {
            // A failed speculation is not reported: the closed utterance is scored
            // again, and reports its own failure.
            let result = self
                .analyse(scorer, analyzer, &[utterance], false)
                .map(|mut analysed| analysed.remove(0));
            let finished = lock_speculation(state).finish(token, result);
            if let Finished::Publish(result, job) = finished {
                match result {
                    Ok(analysed) => publish(&self.sequencer, job, analysed),
                    Err(failure) => {
                        let _ = self
                            .events
                            .send(PipelineEvent::WorkerError(failure.clone()));
                        skip(&self.sequencer, job, &failure);
                    }
                }
            }
        }
        // A newer tentative end that waited for this job; not this one again if it
        // could not start (the job in flight wakes it when it ends; or cancelled).
        let next = lock_speculation(state).wake();
        self.speculation.wake(next.filter(|&t| t != token));
    }

    /// Scores `utterances` with prosody and speaker embeddings beside the model;
    /// `Err` is the reason to skip them (sent as a worker error when `report`).
    fn analyse(
        &self,
        scorer: &mut Box<dyn Scorer>,
        analyzer: Option<&ProsodyAnalyzer>,
        utterances: &[Arc<Utterance>],
        report: bool,
    ) -> Result<Vec<Analysed>, String> {
        // Prosody and speaker embeddings on CPU threads while the model scores.
        let (result, prosodies, embeddings) = std::thread::scope(|scope| {
            let prosody = scope.spawn(|| {
                analyzer.map(|a| {
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
            let result = catch_unwind(AssertUnwindSafe(|| scorer.score(utterances)));
            (result, prosody.join(), voices.join())
        });
        let n = utterances.len();
        let embeddings = embeddings.unwrap_or_else(|panic| {
            let _ = self.events.send(PipelineEvent::WorkerError(format!(
                "speaker embedding failed: {}",
                panic_message(panic.as_ref())
            )));
            vec![None; n]
        });
        let prosodies: Vec<Option<Prosody>> = match prosodies {
            Ok(Some(p)) => p.into_iter().map(Some).collect(),
            Ok(None) => vec![None; n],
            Err(panic) => {
                let _ = self.events.send(PipelineEvent::WorkerError(format!(
                    "prosody failed: {}",
                    panic_message(panic.as_ref())
                )));
                vec![None; n]
            }
        };
        let failure = match result {
            Ok(Ok(scores)) if scores.len() == n => {
                let outcomes = scores.into_iter().zip(prosodies).zip(embeddings);
                return Ok(outcomes
                    .map(|((scores, prosody), embedding)| Analysed {
                        scores,
                        prosody,
                        embedding,
                    })
                    .collect());
            }
            Ok(Ok(scores)) => format!(
                "scorer returned {} results for {n} utterances",
                scores.len()
            ),
            Ok(Err(e)) => format!("scoring failed: {e}"),
            Err(panic) => {
                // The scorer may be left half-updated: take a fresh one sharing the
                // same weights where the scorer allows it, and go on.
                if let Some(fresh) = scorer.fork() {
                    *scorer = fresh;
                }
                format!("scorer panicked: {}", panic_message(panic.as_ref()))
            }
        };
        if report {
            let _ = self
                .events
                .send(PipelineEvent::WorkerError(failure.clone()));
        }
        Err(failure)
    }
}
