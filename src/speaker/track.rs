//! Who spoke an utterance, from its speaker embedding alone (pure logic, no model).
//!
//! Two ways, chosen on the command line:
//! * **Online clustering** (`--speakers N`): each embedding joins the most similar known
//!   speaker, or opens a new one (`S1`, `S2`, … in order of first appearance) when it is
//!   less similar than [`NEW_SPEAKER_BELOW`] to all of them, fewer than `N` exist and the
//!   utterance lasts at least [`OPENS_FROM_S`] (a shorter one is too noisy to found a
//!   voice on, and joins the nearest). A label once given is never changed: the past is
//!   not relabelled, so what the log and the dashboard showed stays true. An utterance
//!   that does not open a speaker joins the one whose utterances it is most similar to
//!   on average (mean cosine to the members, not the cosine to their centroid, which
//!   favours a speaker whose utterances spread more: +3.8 points in `bench speakers`
//!   over nine seeds, README).
//! * **Enrolment** (`--enroll NAME=FILE`): each embedding goes to the most similar
//!   enrolled voice, or to [`UNKNOWN`] when even that is less similar than
//!   [`ENROLLED_AT_LEAST`].
//!
//! The thresholds were measured with `emomon bench speakers` on EmoDB and RAVDESS voices
//! (README, "Who is speaking").

/// Label of an utterance no enrolled voice matches.
pub const UNKNOWN: &str = "unknown";

/// Cosine similarity below which an utterance opens a new speaker (while fewer than `N`
/// exist). Same-speaker utterances of 1–10 s sit mostly above it, different speakers
/// mostly below.
pub const NEW_SPEAKER_BELOW: f32 = 0.75;

/// Shortest utterance, seconds, that may open a new speaker: 0.75 of the encoder's 1.6 s
/// partial window, resemblyzer's own minimum coverage of a window. Shorter utterances are
/// embedded from one window that is mostly padding; their same-speaker similarities spread
/// widest, and in `bench speakers` (seeds 1, 3, 4) most wrongly opened second speakers
/// were the second utterance of the first speaker's first turn, short and unlike the
/// first. Opening only from 1.2 s raised `--speakers 2` from 78.7 % to 81.6 % there
/// (README, "Who is speaking").
pub const OPENS_FROM_S: f32 = 1.2;

/// Cosine similarity an utterance needs to an enrolled voice to be given its name.
/// Chosen on `bench speakers --seed 1`: 0.65 names 91 % of utterances right with 4 %
/// wrong, where 0.70 named 84 % right with 3 % wrong but left 13 % `unknown`; the price
/// is that a stranger passes for an enrolled voice more often (66 % against 44 %).
pub const ENROLLED_AT_LEAST: f32 = 0.65;

/// Why a tracker could not be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrackError {
    /// `--speakers 0`.
    #[error("--speakers needs at least 1 speaker")]
    NoSpeakers,
    /// `--enroll` with the same name twice.
    #[error("--enroll names `{0}` twice; give each voice its own name")]
    DuplicateName(String),
    /// A name that would be confused with the unknown label or is empty.
    #[error("--enroll name `{0}` is reserved or empty; choose another name")]
    ReservedName(String),
    /// Embeddings of different lengths.
    #[error("speaker embedding has {found} values, expected {expected}")]
    Dimension {
        /// Length given.
        found: usize,
        /// Length of the first embedding seen.
        expected: usize,
    },
}

/// One utterance's speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// `S1`, `S2`, …, an enrolled name, or [`UNKNOWN`].
    pub label: String,
    /// Cosine similarity to the chosen speaker before this utterance joined it (1 for
    /// the first utterance of a new speaker).
    pub similarity: f32,
    /// True when this utterance opened a new speaker.
    pub new: bool,
}

#[derive(Debug, Clone)]
struct Voice {
    label: String,
    /// Sum of the unit-length member embeddings (clustering) or the enrolled embedding.
    sum: Vec<f32>,
    /// Members summed (1 for an enrolled voice).
    members: usize,
}

impl Voice {
    /// Cosine similarity of `e` to the centroid.
    fn similarity(&self, e: &[f32]) -> f32 {
        let norm = self.sum.iter().map(|a| a * a).sum::<f32>().sqrt();
        if norm == 0.0 {
            0.0
        } else {
            dot(&self.sum, e) / norm
        }
    }

    /// Mean cosine similarity of `e` to the members. Unlike the cosine to the centroid it
    /// does not grow as the centroid's length shrinks, so a speaker whose utterances
    /// spread more (several emotions) does not draw utterances from a tighter one.
    fn mean_similarity(&self, e: &[f32]) -> f32 {
        if self.members == 0 {
            return 0.0;
        }
        dot(&self.sum, e) / self.members as f32
    }

    fn add(&mut self, e: &[f32]) {
        let n = norm(e);
        if n > 0.0 {
            self.sum.iter_mut().zip(e).for_each(|(s, x)| *s += x / n);
            self.members += 1;
        }
    }
}

/// `a · b / ‖b‖` (0 when `b` is zero).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let nb = norm(b);
    if nb == 0.0 {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / nb
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[derive(Debug, Clone)]
enum Mode {
    Cluster {
        max: usize,
        threshold: f32,
        opens_from_s: f32,
    },
    Enrolled {
        threshold: f32,
    },
}

/// Assigns a speaker to each utterance embedding, in session order.
#[derive(Debug, Clone)]
pub struct SpeakerTracker {
    mode: Mode,
    voices: Vec<Voice>,
    dim: Option<usize>,
}

impl SpeakerTracker {
    /// Online clustering into at most `max` speakers.
    pub fn clustering(max: usize) -> Result<Self, TrackError> {
        Self::clustering_with(max, NEW_SPEAKER_BELOW, OPENS_FROM_S)
    }

    /// Online clustering with an explicit new-speaker threshold and shortest opening
    /// utterance (seconds).
    pub fn clustering_with(
        max: usize,
        threshold: f32,
        opens_from_s: f32,
    ) -> Result<Self, TrackError> {
        if max == 0 {
            return Err(TrackError::NoSpeakers);
        }
        Ok(Self {
            mode: Mode::Cluster {
                max,
                threshold,
                opens_from_s,
            },
            voices: Vec::new(),
            dim: None,
        })
    }

    /// Nearest of the enrolled `(name, embedding)` voices, or [`UNKNOWN`] below `threshold`.
    pub fn enrolled(voices: Vec<(String, Vec<f32>)>, threshold: f32) -> Result<Self, TrackError> {
        let mut tracker = Self {
            mode: Mode::Enrolled { threshold },
            voices: Vec::new(),
            dim: None,
        };
        for (name, embedding) in voices {
            if name.trim().is_empty() || name == UNKNOWN || is_cluster_label(&name) {
                return Err(TrackError::ReservedName(name));
            }
            if tracker.voices.iter().any(|v| v.label == name) {
                return Err(TrackError::DuplicateName(name));
            }
            tracker.check_dim(&embedding)?;
            tracker.voices.push(Voice {
                label: name,
                sum: embedding,
                members: 1,
            });
        }
        if tracker.voices.is_empty() {
            return Err(TrackError::NoSpeakers);
        }
        Ok(tracker)
    }

    /// How this tracker tells speakers apart, for the session log.
    pub fn setup(&self) -> super::SpeakerSetup {
        match self.mode {
            Mode::Cluster {
                max,
                threshold,
                opens_from_s,
            } => super::SpeakerSetup::Cluster {
                max,
                new_speaker_below: threshold,
                opens_from_s,
            },
            Mode::Enrolled { threshold } => super::SpeakerSetup::Enrolled {
                names: self.voices.iter().map(|v| v.label.clone()).collect(),
                enrolled_at_least: threshold,
            },
        }
    }

    /// The labels known so far, in order of first appearance (enrolled: in enrolment order).
    pub fn labels(&self) -> Vec<&str> {
        self.voices.iter().map(|v| v.label.as_str()).collect()
    }

    fn check_dim(&mut self, e: &[f32]) -> Result<(), TrackError> {
        match self.dim {
            Some(expected) if expected != e.len() => Err(TrackError::Dimension {
                found: e.len(),
                expected,
            }),
            _ => {
                self.dim = Some(e.len());
                Ok(())
            }
        }
    }

    /// The speaker of the next utterance, whose embedding is `embedding`, when its length
    /// is not known (it may open a new speaker); see [`assign_speech`](Self::assign_speech).
    pub fn assign(&mut self, embedding: &[f32]) -> Result<Assignment, TrackError> {
        self.assign_speech(embedding, f32::INFINITY)
    }

    /// The speaker of the next utterance, `seconds` long, whose embedding is `embedding`.
    pub fn assign_speech(
        &mut self,
        embedding: &[f32],
        seconds: f32,
    ) -> Result<Assignment, TrackError> {
        self.check_dim(embedding)?;
        let best = self
            .voices
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.similarity(embedding)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match self.mode {
            Mode::Enrolled { threshold } => Ok(match best {
                Some((i, sim)) if sim >= threshold => Assignment {
                    label: self.voices[i].label.clone(),
                    similarity: sim,
                    new: false,
                },
                other => Assignment {
                    label: UNKNOWN.to_string(),
                    similarity: other.map_or(0.0, |(_, s)| s),
                    new: false,
                },
            }),
            Mode::Cluster {
                max,
                threshold,
                opens_from_s,
            } => {
                // Whether to open a speaker goes by the centroid; which one to join, by
                // the mean similarity to its members (see `Voice::mean_similarity`).
                let join = match best {
                    Some((_, sim))
                        if sim >= threshold
                            || self.voices.len() >= max
                            || seconds < opens_from_s =>
                    {
                        self.voices
                            .iter()
                            .enumerate()
                            .map(|(i, v)| (i, v.mean_similarity(embedding)))
                            .max_by(|a, b| a.1.total_cmp(&b.1))
                            .map(|(i, _)| i)
                    }
                    _ => None,
                };
                Ok(match join {
                    Some(i) => {
                        let voice = &mut self.voices[i];
                        let similarity = voice.similarity(embedding);
                        voice.add(embedding);
                        Assignment {
                            label: voice.label.clone(),
                            similarity,
                            new: false,
                        }
                    }
                    None => {
                        let label = format!("S{}", self.voices.len() + 1);
                        let mut voice = Voice {
                            label: label.clone(),
                            sum: vec![0.0; embedding.len()],
                            members: 0,
                        };
                        voice.add(embedding);
                        self.voices.push(voice);
                        Assignment {
                            label,
                            similarity: 1.0,
                            new: true,
                        }
                    }
                })
            }
        }
    }
}

/// `S` followed by digits: the clustering labels, which enrolled names must not mimic.
fn is_cluster_label(name: &str) -> bool {
    name.strip_prefix('S')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector near axis `axis` of a 16-d space, tilted by `noise` along `tilt`.
    fn voice(axis: usize, tilt: usize, noise: f32) -> Vec<f32> {
        let mut v = [0.0f32; 16];
        v[axis] = 1.0;
        v[tilt] += noise;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn labels(tracker: &mut SpeakerTracker, es: &[Vec<f32>]) -> Vec<String> {
        es.iter()
            .map(|e| tracker.assign(e).unwrap().label)
            .collect()
    }

    #[test]
    fn labels_follow_first_appearance_and_never_change() {
        let mut t = SpeakerTracker::clustering(2).unwrap();
        let (a, b) = (
            |k: usize| voice(0, 5 + k, 0.2),
            |k: usize| voice(1, 5 + k, 0.2),
        );
        let got = labels(&mut t, &[b(0), a(1), b(2), b(3), a(4), a(5)]);
        // The first voice heard is S1, whichever it is.
        assert_eq!(got, ["S1", "S2", "S1", "S1", "S2", "S2"]);
        assert_eq!(t.labels(), ["S1", "S2"]);
    }

    #[test]
    fn a_late_speaker_opens_a_new_track_after_a_long_monologue() {
        let mut t = SpeakerTracker::clustering(3).unwrap();
        let mono: Vec<Vec<f32>> = (0..40).map(|k| voice(0, 3 + k % 10, 0.3)).collect();
        assert!(labels(&mut t, &mono).iter().all(|l| l == "S1"));
        let late = t.assign(&voice(2, 4, 0.2)).unwrap();
        assert_eq!((late.label.as_str(), late.new), ("S2", true));
        assert_eq!(t.assign(&voice(0, 7, 0.3)).unwrap().label, "S1");
    }

    #[test]
    fn only_an_utterance_long_enough_to_trust_opens_a_speaker() {
        let mut t = SpeakerTracker::clustering(2).unwrap();
        // The very first utterance opens S1 whatever its length: there is no one to join.
        assert_eq!(t.assign_speech(&voice(0, 3, 0.1), 0.5).unwrap().label, "S1");
        let short = t
            .assign_speech(&voice(1, 3, 0.1), OPENS_FROM_S - 0.1)
            .unwrap();
        assert_eq!((short.label.as_str(), short.new), ("S1", false));
        assert!(short.similarity < NEW_SPEAKER_BELOW);
        let long = t.assign_speech(&voice(1, 4, 0.1), OPENS_FROM_S).unwrap();
        assert_eq!((long.label.as_str(), long.new), ("S2", true));
        // Once both exist a short one goes to its nearest, as any other.
        assert_eq!(t.assign_speech(&voice(1, 5, 0.2), 0.4).unwrap().label, "S2");
    }

    #[test]
    fn an_utterance_joins_the_speaker_it_is_most_like_on_average_not_the_widest_centroid() {
        let unit = |v: &[(usize, f32)]| {
            let mut x = [0.0f32; 16];
            v.iter().for_each(|&(i, a)| x[i] = a);
            let n = x.iter().map(|a| a * a).sum::<f32>().sqrt();
            x.map(|a| a / n).to_vec()
        };
        let mut t = SpeakerTracker::clustering(2).unwrap();
        // S1 spreads (axis 0 with a different second axis each time), S2 is tight.
        assert_eq!(t.assign(&unit(&[(0, 1.0), (5, 1.0)])).unwrap().label, "S1");
        assert_eq!(t.assign(&unit(&[(1, 1.0)])).unwrap().label, "S2");
        for k in 6..9 {
            assert_eq!(t.assign(&unit(&[(0, 1.0), (k, 1.0)])).unwrap().label, "S1");
            assert_eq!(
                t.assign(&unit(&[(1, 1.0), (k + 4, 0.1)])).unwrap().label,
                "S2"
            );
        }
        // Mean cosine 0.55 to S1's utterances and 0.62 to S2's; yet 0.70 to S1's
        // centroid (short: its members spread) against 0.62 to S2's.
        let u = unit(&[(0, 1.0), (1, 0.8)]);
        let a = t.assign(&u).unwrap();
        assert_eq!(a.label, "S2");
        assert!(a.similarity < 0.65, "{}", a.similarity);
    }

    #[test]
    fn at_the_limit_an_unfamiliar_voice_joins_the_nearest_speaker() {
        let mut t = SpeakerTracker::clustering(1).unwrap();
        t.assign(&voice(0, 3, 0.0)).unwrap();
        let a = t.assign(&voice(1, 3, 0.0)).unwrap();
        assert_eq!((a.label.as_str(), a.new), ("S1", false));
        assert!(a.similarity < NEW_SPEAKER_BELOW);
    }

    #[test]
    fn enrolled_voices_get_their_names_and_strangers_are_unknown() {
        let mut t = SpeakerTracker::enrolled(
            vec![
                ("therapist".into(), voice(0, 3, 0.0)),
                ("client".into(), voice(1, 3, 0.0)),
            ],
            ENROLLED_AT_LEAST,
        )
        .unwrap();
        let got = labels(
            &mut t,
            &[voice(1, 4, 0.3), voice(0, 5, 0.3), voice(2, 6, 0.1)],
        );
        assert_eq!(got, ["client", "therapist", UNKNOWN]);
        // Enrolment does not learn: the voices stay as enrolled.
        assert_eq!(t.labels(), ["therapist", "client"]);
    }

    #[test]
    fn bad_settings_and_inputs_are_errors_naming_the_problem() {
        assert_eq!(
            SpeakerTracker::clustering(0).unwrap_err(),
            TrackError::NoSpeakers
        );
        let dup =
            SpeakerTracker::enrolled(vec![("a".into(), vec![1.0]), ("a".into(), vec![1.0])], 0.5);
        assert_eq!(dup.unwrap_err(), TrackError::DuplicateName("a".into()));
        for name in ["unknown", "S2", " "] {
            let bad = SpeakerTracker::enrolled(vec![(name.into(), vec![1.0])], 0.5);
            assert_eq!(bad.unwrap_err(), TrackError::ReservedName(name.into()));
        }
        let mut t = SpeakerTracker::clustering(2).unwrap();
        t.assign(&[1.0, 0.0]).unwrap();
        assert!(
            t.assign(&[1.0, 0.0, 0.0])
                .unwrap_err()
                .to_string()
                .contains("3 values, expected 2")
        );
    }
}
