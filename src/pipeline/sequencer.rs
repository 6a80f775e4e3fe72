//! Puts the results of queued utterances back in queue order.
//!
//! With several scoring workers, a short utterance can finish before a longer one
//! queued ahead of it; the session log and the dashboard must still see results in
//! utterance order. Every utterance that enters the scoring queue gets a sequence
//! number, and exactly one outcome (scored, or skipped with a reason) is completed
//! for it, by whichever thread decides it: the capture thread when it evicts it, a
//! worker otherwise. A result waits here until every earlier utterance has its
//! outcome. A skip is sent at once (as with one worker): holding it back behind the
//! utterance being scored would keep the skipped audio in memory and tell the
//! session late, while live capture may skip many utterances during one slow score.
//!
//! Skips are numbered here too, at the moment they are sent, so the running skip
//! total each [`PipelineEvent::Skipped`] carries counts up by one in the order the
//! consumer sees them, however many threads skip.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::Sender;

use super::PipelineEvent;
use crate::utterance::Utterance;

/// One utterance's outcome, before its skip (if any) is numbered.
pub(super) enum Outcome {
    Event(PipelineEvent),
    Skipped {
        utterance: Arc<Utterance>,
        reason: String,
    },
}

struct State {
    /// The sequence number whose outcome goes out next.
    next: u64,
    /// Outcomes decided ahead of an earlier one: a result to send, or `None` for a
    /// skip (already sent).
    waiting: BTreeMap<u64, Option<PipelineEvent>>,
    /// Skips sent so far.
    skipped: u64,
}

/// Shared by the capture thread and every worker.
pub(super) struct Sequencer {
    state: Mutex<State>,
    events: Sender<PipelineEvent>,
}

impl Sequencer {
    pub(super) fn new(events: Sender<PipelineEvent>) -> Self {
        Self {
            state: Mutex::new(State {
                next: 0,
                waiting: BTreeMap::new(),
                skipped: 0,
            }),
            events,
        }
    }

    /// The outcome of queued utterance `seq`: a skip is sent now; a result once every
    /// earlier utterance has its outcome, with any later results it was holding back.
    pub(super) fn complete(&self, seq: u64, outcome: Outcome) {
        let mut state = self.lock();
        let held = match outcome {
            Outcome::Event(event) => Some(event),
            skipped @ Outcome::Skipped { .. } => {
                self.send(&mut state, skipped);
                None
            }
        };
        state.waiting.insert(seq, held);
        loop {
            let next = state.next;
            let Some(held) = state.waiting.remove(&next) else {
                break;
            };
            state.next += 1;
            if let Some(event) = held {
                self.send(&mut state, Outcome::Event(event));
            }
        }
    }

    /// A skip of an utterance that never entered the queue (e.g. heard while
    /// paused): sent at once, numbered with the others.
    pub(super) fn skip_unqueued(&self, utterance: Arc<Utterance>, reason: &str) {
        let mut state = self.lock();
        self.send(
            &mut state,
            Outcome::Skipped {
                utterance,
                reason: reason.into(),
            },
        );
    }

    fn send(&self, state: &mut State, outcome: Outcome) {
        let event = match outcome {
            Outcome::Event(event) => event,
            Outcome::Skipped { utterance, reason } => {
                state.skipped += 1;
                PipelineEvent::Skipped {
                    utterance,
                    reason,
                    total: state.skipped,
                }
            }
        };
        // The session may have gone (it stopped reading); nothing is left to tell.
        let _ = self.events.send(event);
    }

    /// A worker that panicked while holding the lock left consistent state (every
    /// update is a single insert/remove), so the lock is taken over, not abandoned.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    fn utterance(id: u64) -> Arc<Utterance> {
        Arc::new(Utterance {
            id,
            start_s: 0.0,
            end_s: 0.01,
            audio_start_s: 0.0,
            samples: vec![0.0; 160].into(),
            voiced_s: 0.01,
            rms_dbfs: -90.0,
            peak_dbfs: -90.0,
            split: false,
            channel: None,
        })
    }

    fn id(event: &PipelineEvent) -> (u64, Option<u64>) {
        match event {
            PipelineEvent::Segmented { id, .. } => (*id, None),
            PipelineEvent::Skipped {
                utterance, total, ..
            } => (utterance.id, Some(*total)),
            _ => unreachable!("only these are sent in the tests"),
        }
    }

    #[test]
    fn results_leave_in_queue_order_and_skips_at_once_numbered_as_sent() {
        let (tx, rx) = unbounded();
        let sequencer = Sequencer::new(tx);
        let done = |seq: u64| {
            Outcome::Event(PipelineEvent::Segmented {
                id: seq,
                start_s: 0.0,
                end_s: 1.0,
            })
        };
        sequencer.complete(2, done(2));
        sequencer.complete(
            1,
            Outcome::Skipped {
                utterance: utterance(1),
                reason: "evicted".into(),
            },
        );
        let early: Vec<_> = rx.try_iter().map(|e| id(&e)).collect();
        assert_eq!(
            early,
            vec![(1, Some(1))],
            "0 is not done: only the skip leaves"
        );
        sequencer.skip_unqueued(utterance(9), "paused");
        sequencer.complete(0, done(0));
        sequencer.complete(3, done(3));
        let got: Vec<_> = rx.try_iter().map(|e| id(&e)).collect();
        assert_eq!(got, vec![(9, Some(2)), (0, None), (2, None), (3, None)]);
    }
}
