//! Two-person conversations built from single-speaker clips, with the truth of who spoke
//! when: what `emomon bench speakers` and the speaker tests measure the tracker on.
//!
//! A conversation alternates turns between its speakers; a turn holds one or more clips
//! of its speaker (cut so the turn lasts `turn_s`), clips within a turn are 0.15–0.4 s
//! apart and turns `gap_s` apart. Each clip's span is recorded, and an utterance the
//! segmenter cuts from the mix is credited to the speaker whose clips it overlaps most.

use std::collections::BTreeMap;

use crate::audio::TARGET_RATE;

/// One clip of a known speaker, 16 kHz mono.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Index of the speaker in the conversation (0, 1, …).
    pub speaker: usize,
    pub samples: Vec<f32>,
}

/// Turn lengths and gaps, seconds.
#[derive(Debug, Clone, Copy)]
pub struct TurnPlan {
    pub turn_s: (f64, f64),
    pub gap_s: (f64, f64),
}

impl Default for TurnPlan {
    /// The plan: turns of 1–10 s, 0.3–2 s apart.
    fn default() -> Self {
        Self {
            turn_s: (1.0, 10.0),
            gap_s: (0.3, 2.0),
        }
    }
}

/// A conversation's audio and who spoke when.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    pub audio: Vec<f32>,
    /// (start_s, end_s, speaker) of every clip placed.
    pub spans: Vec<(f64, f64, usize)>,
}

impl Conversation {
    /// Appends `seconds` of silence.
    pub fn pause(&mut self, seconds: f64) {
        let n = (seconds * f64::from(TARGET_RATE)).round() as usize;
        self.audio.resize(self.audio.len() + n, 0.0);
    }

    /// Appends a clip (or its first `max_s` seconds) and records its span.
    pub fn speak(&mut self, speaker: usize, samples: &[f32], max_s: f64) {
        let rate = f64::from(TARGET_RATE);
        let n = samples.len().min((max_s * rate).round() as usize);
        let start = self.audio.len() as f64 / rate;
        self.audio.extend_from_slice(&samples[..n]);
        self.spans.push((start, start + n as f64 / rate, speaker));
    }

    /// Alternating turns (`turns` of them, the first by `speakers[0]`) from each speaker's
    /// clips, taken in order and reused round-robin; `rng` draws lengths and gaps.
    pub fn alternating(
        clips: &[Vec<Clip>],
        turns: usize,
        plan: TurnPlan,
        rng: &mut fastrand::Rng,
    ) -> Self {
        let mut conv = Self::default();
        let mut next = vec![0usize; clips.len()];
        let uniform = |rng: &mut fastrand::Rng, (lo, hi): (f64, f64)| lo + rng.f64() * (hi - lo);
        for turn in 0..turns {
            let who = turn % clips.len();
            if clips[who].is_empty() {
                continue;
            }
            if turn > 0 {
                conv.pause(uniform(rng, plan.gap_s));
            }
            let mut left = uniform(rng, plan.turn_s);
            let mut first = true;
            while left > 0.5 || first {
                if !first {
                    conv.pause(uniform(rng, (0.15, 0.4)));
                }
                let clip = &clips[who][next[who] % clips[who].len()];
                next[who] += 1;
                let before = conv.audio.len();
                conv.speak(clip.speaker, &clip.samples, left.max(1.0));
                left -= (conv.audio.len() - before) as f64 / f64::from(TARGET_RATE);
                first = false;
            }
        }
        conv
    }

    /// The speaker whose clips overlap `start_s..end_s` most; `None` if none does.
    pub fn truth(&self, start_s: f64, end_s: f64) -> Option<usize> {
        let mut overlap: BTreeMap<usize, f64> = BTreeMap::new();
        for &(s, e, who) in &self.spans {
            let o = end_s.min(e) - start_s.max(s);
            if o > 0.0 {
                *overlap.entry(who).or_default() += o;
            }
        }
        overlap
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(who, _)| who)
    }
}

/// Share of `(label, truth)` pairs right under the best one-to-one mapping of labels to
/// speakers (cluster labels are arbitrary names; a label left unmapped counts wrong).
pub fn clustering_accuracy(pairs: &[(String, usize)]) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    let labels: Vec<&str> = {
        let mut l: Vec<&str> = pairs.iter().map(|(l, _)| l.as_str()).collect();
        l.sort_unstable();
        l.dedup();
        l
    };
    let speakers = pairs.iter().map(|p| p.1).max().map_or(0, |m| m + 1);
    let count = |label: &str, who: usize| {
        pairs
            .iter()
            .filter(|(l, t)| l == label && *t == who)
            .count()
    };
    // Exhaustive search over assignments of labels to distinct speakers (a handful each).
    fn best(
        k: usize,
        labels: &[&str],
        used: &mut Vec<bool>,
        count: &dyn Fn(&str, usize) -> usize,
    ) -> usize {
        if k == labels.len() {
            return 0;
        }
        let mut top = best(k + 1, labels, used, count); // label k maps to nobody
        for who in 0..used.len() {
            if !used[who] {
                used[who] = true;
                top = top.max(count(labels[k], who) + best(k + 1, labels, used, count));
                used[who] = false;
            }
        }
        top
    }
    let right = best(0, &labels, &mut vec![false; speakers], &count);
    right as f64 / pairs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(speaker: usize, seconds: f64) -> Clip {
        Clip {
            speaker,
            samples: vec![0.1; (seconds * 16_000.0) as usize],
        }
    }

    #[test]
    fn turns_alternate_with_gaps_and_record_who_spoke() {
        let clips = vec![vec![tone(0, 2.0)], vec![tone(1, 3.0)]];
        let mut rng = fastrand::Rng::with_seed(7);
        let conv = Conversation::alternating(&clips, 6, TurnPlan::default(), &mut rng);
        let mut last_end = 0.0;
        let mut speakers_by_turn = Vec::new();
        for &(s, e, who) in &conv.spans {
            assert!(s >= last_end && e > s);
            if speakers_by_turn.last() != Some(&who) {
                assert!(
                    s == 0.0 || s - last_end >= 0.3 - 1e-9,
                    "turn gap {}",
                    s - last_end
                );
                speakers_by_turn.push(who);
            }
            last_end = e;
        }
        assert_eq!(speakers_by_turn, [0, 1, 0, 1, 0, 1]);
        let (s, e, who) = conv.spans[1];
        assert_eq!(conv.truth(s + 0.1, e - 0.1), Some(who));
        assert_eq!(conv.truth(e + 1e3, e + 2e3), None);
    }

    #[test]
    fn accuracy_uses_the_best_mapping_of_labels_to_speakers() {
        let p = |l: &str, t| (l.to_string(), t);
        assert_eq!(
            clustering_accuracy(&[p("S1", 1), p("S2", 0), p("S2", 0)]),
            1.0
        );
        assert_eq!(clustering_accuracy(&[p("S1", 0), p("S1", 1)]), 0.5);
        // A spurious third label cannot share a speaker with the right one.
        let acc = clustering_accuracy(&[p("S1", 0), p("S2", 1), p("S3", 1), p("S3", 1)]);
        assert!((acc - 0.75).abs() < 1e-12);
    }
}
