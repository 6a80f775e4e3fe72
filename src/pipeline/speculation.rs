//! Speculative scoring: which result a closed utterance gets, as pure logic.
//!
//! The segmenter decides an utterance early in its hangover and announces it as a
//! tentative end ([`crate::segmenter::SegmentEvent::Tentative`]); the close ~0.3 s
//! later emits exactly that utterance unless speech resumed. Scoring the tentative
//! utterance meanwhile hides the hangover from the user. This module keeps the
//! bookkeeping, with no threads or clocks, so it can be tested alone:
//!
//! * one tentative utterance at a time (the open one); a newer one replaces it, and
//!   [`Speculation::resumed`] drops it;
//! * at most one speculative job in flight: a tentative end that arrives while an
//!   older (now stale) job runs waits until that job ends ([`Finished::wake`]);
//! * a stale job's result is dropped ([`Finished::Stale`]), never published;
//! * at the close ([`Speculation::closed`]) a matching result that is ready is
//!   published at once, a matching job still running is attached to the closed
//!   utterance (its worker publishes it), and anything else is queued as usual;
//! * a speculative job is never counted as a skip: only closed utterances have
//!   outcomes, and a closed one is either queued as before or attached to a job
//!   that is already running, whose failure skips it exactly as a failed queued
//!   job would.
//!
//! `R` is a job's result, `T` the ticket of a closed utterance (its place in the
//! sequencer and its clocks).

use std::sync::Arc;

use crate::utterance::Utterance;

/// A tentative utterance and where its job is.
struct Tentative<R> {
    token: u64,
    utterance: Arc<Utterance>,
    state: State<R>,
}

enum State<R> {
    /// Waiting for a worker.
    Waiting,
    Running,
    /// Scored; waiting for the close.
    Done(R),
    /// Scoring failed: the closed utterance is queued and scored again.
    Failed,
}

/// What to do with a closed utterance.
#[derive(Debug, PartialEq)]
pub(super) enum OnClose<R, T> {
    /// Its speculative result: publish it now.
    Ready(R, T),
    /// Its speculative job is running; the worker publishes it.
    Attached,
    /// No usable speculation: queue it as without speculation.
    Queue(T),
}

/// What a worker does when a speculative job ends.
#[derive(Debug, PartialEq)]
pub(super) enum Finished<R, T> {
    /// The utterance has closed meanwhile: publish this outcome under the ticket.
    Publish(Result<R, String>, T),
    /// Kept for the close.
    Kept,
    /// Speech resumed or a newer tentative end replaced it: dropped.
    Stale,
}

/// See the module docs.
pub(super) struct Speculation<R, T> {
    next_token: u64,
    current: Option<Tentative<R>>,
    /// Token of the job being scored, current or stale.
    in_flight: Option<u64>,
    /// The job in flight, when its utterance has closed: its token and the closed
    /// utterance's ticket. Kept apart from `current`, which the next utterance's
    /// tentative end takes over while this job still runs.
    attached: Option<(u64, T)>,
}

impl<R, T> Default for Speculation<R, T> {
    fn default() -> Self {
        Self {
            next_token: 0,
            current: None,
            in_flight: None,
            attached: None,
        }
    }
}

impl<R, T> Speculation<R, T> {
    /// A tentative end: replaces any earlier one. Returns the token to hand to a
    /// worker now, or `None` if a job is in flight (its end wakes this one).
    pub(super) fn tentative(&mut self, utterance: Arc<Utterance>) -> Option<u64> {
        let token = self.next_token;
        self.next_token += 1;
        self.current = Some(Tentative {
            token,
            utterance,
            state: State::Waiting,
        });
        self.in_flight.is_none().then_some(token)
    }

    /// Speech resumed (or the utterance will not be scored): forgets tentative `id`.
    pub(super) fn resumed(&mut self, id: u64) {
        if self.current.as_ref().is_some_and(|c| c.utterance.id == id) {
            self.current = None;
        }
    }

    /// A worker asks to score job `token`: its utterance, if it is still the
    /// current tentative one, waiting, and no other job is in flight.
    pub(super) fn start(&mut self, token: u64) -> Option<Arc<Utterance>> {
        if self.in_flight.is_some() {
            return None;
        }
        let current = self.current.as_mut()?;
        if current.token != token || !matches!(current.state, State::Waiting) {
            return None;
        }
        current.state = State::Running;
        self.in_flight = Some(token);
        Some(Arc::clone(&current.utterance))
    }

    /// Job `token` ended with `result`.
    pub(super) fn finish(&mut self, token: u64, result: Result<R, String>) -> Finished<R, T> {
        if self.in_flight == Some(token) {
            self.in_flight = None;
        }
        if let Some((_, ticket)) = self.attached.take_if(|(t, _)| *t == token) {
            return Finished::Publish(result, ticket);
        }
        let Some(current) = self.current.take_if(|c| c.token == token) else {
            return Finished::Stale;
        };
        match (current.state, result) {
            (State::Running, Ok(scored)) => {
                self.current = Some(Tentative {
                    state: State::Done(scored),
                    ..current
                });
                Finished::Kept
            }
            // Failed (or finished without being started: nothing to keep).
            _ => {
                self.current = Some(Tentative {
                    state: State::Failed,
                    ..current
                });
                Finished::Kept
            }
        }
    }

    /// The token of a tentative utterance still waiting for a worker, when none is
    /// in flight: hand it to a worker (after a job ended, or a stale token was dropped).
    pub(super) fn wake(&self) -> Option<u64> {
        let current = self.current.as_ref()?;
        (self.in_flight.is_none() && matches!(current.state, State::Waiting))
            .then_some(current.token)
    }

    /// Utterance `utterance` has closed: the segmenter hands out the very
    /// tentative utterance (same samples) when speech did not resume.
    pub(super) fn closed(&mut self, utterance: &Utterance, ticket: T) -> OnClose<R, T> {
        let matches = |c: &Tentative<R>| {
            c.utterance.id == utterance.id && Arc::ptr_eq(&c.utterance.samples, &utterance.samples)
        };
        let Some(current) = self.current.take() else {
            return OnClose::Queue(ticket);
        };
        if !matches(&current) {
            return OnClose::Queue(ticket);
        }
        match current.state {
            State::Done(scored) => OnClose::Ready(scored, ticket),
            State::Running => {
                self.attached = Some((current.token, ticket));
                OnClose::Attached
            }
            State::Waiting | State::Failed => OnClose::Queue(ticket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An utterance `id` over `samples` (the segmenter shares one buffer between a
    /// tentative utterance and its close).
    fn utterance(id: u64, samples: &Arc<[f32]>) -> Arc<Utterance> {
        Arc::new(Utterance {
            id,
            start_s: 0.0,
            end_s: samples.len() as f64 / 16_000.0,
            audio_start_s: 0.0,
            samples: Arc::clone(samples),
            voiced_s: 0.5,
            rms_dbfs: -20.0,
            peak_dbfs: -6.0,
            split: false,
            channel: None,
        })
    }

    fn audio(len: usize) -> Arc<[f32]> {
        vec![0.1; len].into()
    }

    type Spec = Speculation<&'static str, u64>;

    #[test]
    fn a_result_ready_at_the_close_is_published_once() {
        let mut spec = Spec::default();
        let a = audio(8_000);
        let token = spec.tentative(utterance(0, &a)).unwrap();
        assert!(spec.start(token).is_some());
        assert!(spec.start(token).is_none(), "one job per tentative end");
        assert_eq!(spec.finish(token, Ok("scores")), Finished::Kept);
        assert_eq!(
            spec.closed(&utterance(0, &a), 7),
            OnClose::Ready("scores", 7)
        );
        // Nothing is left to publish twice.
        assert_eq!(spec.closed(&utterance(0, &a), 8), OnClose::Queue(8));
        assert_eq!(spec.finish(token, Ok("again")), Finished::Stale);
    }

    #[test]
    fn a_job_still_running_at_the_close_publishes_under_the_ticket() {
        let mut spec = Spec::default();
        let a = audio(8_000);
        let token = spec.tentative(utterance(0, &a)).unwrap();
        spec.start(token).unwrap();
        assert_eq!(spec.closed(&utterance(0, &a), 3), OnClose::Attached);
        assert_eq!(
            spec.finish(token, Ok("scores")),
            Finished::Publish(Ok("scores"), 3)
        );
        // Its failure would have skipped the closed utterance, as a queued job's does.
        let b = audio(9_000);
        let token = spec.tentative(utterance(1, &b)).unwrap();
        spec.start(token).unwrap();
        assert_eq!(spec.closed(&utterance(1, &b), 4), OnClose::Attached);
        assert_eq!(
            spec.finish(token, Err("boom".into())),
            Finished::Publish(Err("boom".into()), 4)
        );
    }

    #[test]
    fn resume_within_the_hangover_gives_one_result_for_the_longer_utterance() {
        let mut spec = Spec::default();
        let short = audio(8_000);
        let first = spec.tentative(utterance(0, &short)).unwrap();
        spec.start(first).unwrap();
        spec.resumed(0);
        // Speech went on; the longer utterance's tentative end waits for the stale job.
        let long = audio(20_000);
        assert_eq!(spec.tentative(utterance(0, &long)), None);
        assert_eq!(spec.finish(first, Ok("short")), Finished::Stale);
        let second = spec.wake().unwrap();
        assert_eq!(spec.start(second).unwrap().samples.len(), 20_000);
        assert_eq!(spec.finish(second, Ok("long")), Finished::Kept);
        assert_eq!(
            spec.closed(&utterance(0, &long), 0),
            OnClose::Ready("long", 0)
        );
        assert_eq!(spec.wake(), None);
    }

    #[test]
    fn a_close_that_differs_from_the_tentative_end_is_queued() {
        let mut spec = Spec::default();
        let a = audio(8_000);
        let token = spec.tentative(utterance(0, &a)).unwrap();
        spec.start(token).unwrap();
        assert_eq!(spec.finish(token, Ok("scores")), Finished::Kept);
        // Same id, other audio (not the segmenter's decided utterance).
        assert_eq!(
            spec.closed(&utterance(0, &audio(8_000)), 1),
            OnClose::Queue(1)
        );
        // A failed speculation is scored again at the close, not skipped.
        let token = spec.tentative(utterance(1, &a)).unwrap();
        spec.start(token).unwrap();
        assert_eq!(spec.finish(token, Err("boom".into())), Finished::Kept);
        assert_eq!(spec.closed(&utterance(1, &a), 2), OnClose::Queue(2));
        // A tentative end no worker took yet: queued, and its token goes stale.
        let token = spec.tentative(utterance(2, &a)).unwrap();
        assert_eq!(spec.closed(&utterance(2, &a), 3), OnClose::Queue(3));
        assert!(spec.start(token).is_none());
    }

    #[test]
    fn the_next_tentative_end_does_not_lose_an_attached_job() {
        let mut spec = Spec::default();
        let (a, b) = (audio(8_000), audio(9_000));
        let first = spec.tentative(utterance(0, &a)).unwrap();
        spec.start(first).unwrap();
        assert_eq!(spec.closed(&utterance(0, &a), 0), OnClose::Attached);
        // The next utterance stops while the first one's job still runs.
        assert_eq!(spec.tentative(utterance(1, &b)), None);
        assert_eq!(
            spec.finish(first, Ok("first")),
            Finished::Publish(Ok("first"), 0)
        );
        let second = spec.wake().unwrap();
        spec.start(second).unwrap();
        assert_eq!(spec.finish(second, Ok("second")), Finished::Kept);
        assert_eq!(
            spec.closed(&utterance(1, &b), 1),
            OnClose::Ready("second", 1)
        );
    }

    #[test]
    fn a_stale_token_is_not_started() {
        let mut spec = Spec::default();
        let a = audio(8_000);
        let old = spec.tentative(utterance(0, &a)).unwrap();
        let new = spec.tentative(utterance(0, &audio(9_000))).unwrap();
        assert!(spec.start(old).is_none());
        assert!(spec.start(new).is_some());
        spec.resumed(0);
        assert_eq!(spec.finish(new, Ok("x")), Finished::Stale);
        assert_eq!(spec.wake(), None);
    }
}
