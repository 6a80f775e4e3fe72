//! One rolling aggregation per speaker, beside the session's own.
//!
//! When speakers are tracked, the therapist's calm questions must not dilute the
//! client's distress: each speaker gets an [`Aggregator`] of their own (same labels and
//! settings), created when they are first heard, and the tracks never mix. The
//! session-wide aggregator is kept by the caller as before.

use crate::{AggregateError, Aggregator, AggregatorConfig, Snapshot};

/// Per-speaker aggregators, in order of first appearance.
#[derive(Debug, Clone)]
pub struct SpeakerAggregators {
    labels: Vec<String>,
    config: AggregatorConfig,
    tracks: Vec<(String, Aggregator)>,
}

impl SpeakerAggregators {
    /// No speakers yet; `labels` and `config` are checked as [`Aggregator::new`] does.
    pub fn new(labels: Vec<String>, config: AggregatorConfig) -> Result<Self, AggregateError> {
        Aggregator::new(labels.clone(), config.clone())?;
        Ok(Self {
            labels,
            config,
            tracks: Vec::new(),
        })
    }

    /// Adds one utterance of `speaker` to that speaker's track (opened if new) and
    /// returns the track's snapshot.
    pub fn push(
        &mut self,
        speaker: &str,
        start_s: f64,
        end_s: f64,
        probs: &[f32],
    ) -> Result<Snapshot, AggregateError> {
        let index = match self.tracks.iter().position(|(s, _)| s == speaker) {
            Some(i) => i,
            None => {
                let fresh = Aggregator::new(self.labels.clone(), self.config.clone())?;
                self.tracks.push((speaker.to_string(), fresh));
                self.tracks.len() - 1
            }
        };
        self.tracks[index].1.push(start_s, end_s, probs)
    }

    /// The speakers heard so far, in order of first appearance.
    pub fn speakers(&self) -> impl Iterator<Item = &str> {
        self.tracks.iter().map(|(s, _)| s.as_str())
    }

    /// One speaker's aggregator.
    pub fn get(&self, speaker: &str) -> Option<&Aggregator> {
        self.tracks
            .iter()
            .find(|(s, _)| s == speaker)
            .map(|(_, a)| a)
    }

    /// Every speaker's snapshot at `now_s`, in order of first appearance.
    pub fn snapshots(&self, now_s: f64) -> Vec<(String, Snapshot)> {
        self.tracks
            .iter()
            .map(|(s, a)| (s.clone(), a.snapshot(now_s)))
            .collect()
    }

    /// Whether no speaker was heard yet.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["calm".into(), "distress".into()]
    }

    #[test]
    fn tracks_do_not_bleed_into_each_other() {
        let mut both = SpeakerAggregators::new(labels(), AggregatorConfig::default()).unwrap();
        let mut client_alone = Aggregator::new(labels(), AggregatorConfig::default()).unwrap();
        let turns = [
            ("therapist", 0.0, 2.0, [0.9, 0.1]),
            ("client", 2.5, 5.0, [0.2, 0.8]),
            ("therapist", 5.5, 7.0, [0.95, 0.05]),
            ("client", 7.5, 11.0, [0.1, 0.9]),
        ];
        for (who, s, e, p) in turns {
            both.push(who, s, e, &p).unwrap();
            if who == "client" {
                client_alone.push(s, e, &p).unwrap();
            }
        }
        assert_eq!(both.speakers().collect::<Vec<_>>(), ["therapist", "client"]);
        // The client's track is exactly the client's utterances aggregated alone.
        let got = both.get("client").unwrap().snapshot(11.0);
        assert_eq!(got, client_alone.snapshot(11.0));
        let session = got.session.unwrap();
        assert!(session.probs[1] > 0.8, "{:?}", session.probs);
        let therapist = both
            .get("therapist")
            .unwrap()
            .snapshot(11.0)
            .session
            .unwrap();
        assert!(therapist.probs[0] > 0.9, "{:?}", therapist.probs);
        assert_eq!(both.snapshots(11.0).len(), 2);
    }

    #[test]
    fn bad_utterances_are_refused_without_opening_a_track_twice() {
        let mut a = SpeakerAggregators::new(labels(), AggregatorConfig::default()).unwrap();
        assert!(a.is_empty());
        assert!(a.push("S1", 0.0, 1.0, &[1.0]).is_err());
        a.push("S1", 0.0, 1.0, &[0.5, 0.5]).unwrap();
        assert_eq!(a.speakers().count(), 1);
        assert!(SpeakerAggregators::new(vec![], AggregatorConfig::default()).is_err());
    }
}
