//! Who is speaking: a speaker embedding per utterance (resemblyzer's GE2E encoder on burn,
//! `emomon_models::speaker`) and a [`SpeakerTracker`] that turns embeddings into stable
//! labels, by online clustering or against enrolled voices.

pub mod channels;
pub mod conversation;
mod track;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use emomon_models::speaker::{SpeakerEncoder, SpeakerError, cosine};
pub use track::{
    Assignment, ENROLLED_AT_LEAST, NEW_SPEAKER_BELOW, OPENS_FROM_S, SpeakerTracker, TrackError,
    UNKNOWN,
};

/// How the speakers of a session are told apart.
#[derive(Debug, Clone, PartialEq)]
pub enum SpeakerMode {
    /// Online clustering into at most this many speakers.
    Cluster(usize),
    /// Enrolled voices: (name, 16 kHz mono audio of that voice).
    Enrolled(Vec<(String, Vec<f32>)>),
}

/// How a session told its speakers apart, as `emomon run` records it in the log's
/// `session_start.config.speakers` (`{"mode": "cluster", "max": 2, …}`). Logs of sessions
/// that did not track speakers, and logs written before this was recorded, have none.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum SpeakerSetup {
    /// `--speakers channels`: one person per channel of a stereo input, `L` and `R`.
    Channels,
    /// `--speakers N`: online clustering into at most `max` speakers.
    Cluster {
        /// At most this many speakers.
        max: usize,
        /// Cosine similarity below which a new speaker is opened.
        new_speaker_below: f32,
        /// Shortest utterance (seconds) that may open one (0 in logs written before it
        /// was recorded, when any utterance could).
        #[serde(default)]
        opens_from_s: f32,
    },
    /// `--enroll NAME=FILE`: the nearest enrolled voice, or `unknown`.
    Enrolled {
        /// The enrolled names, in enrolment order.
        names: Vec<String>,
        /// Cosine similarity an utterance needs to an enrolled voice.
        enrolled_at_least: f32,
    },
}

impl SpeakerSetup {
    /// The setup a `session_start` `config` records; `None` when it records none (or one
    /// this version does not know).
    pub fn from_config(config: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(config.get("speakers")?.clone()).ok()
    }

    /// For people: "online clustering into at most 2 speakers", ….
    pub fn describe(&self) -> String {
        match self {
            Self::Channels => "one person per channel (L, R)".into(),
            Self::Cluster {
                max,
                new_speaker_below,
                opens_from_s,
            } => format!(
                "online clustering into at most {max} speaker{} (a new one below cosine \
                 {new_speaker_below}{})",
                if *max == 1 { "" } else { "s" },
                if *opens_from_s > 0.0 {
                    format!(", from an utterance of {opens_from_s} s or more")
                } else {
                    String::new()
                }
            ),
            Self::Enrolled {
                names,
                enrolled_at_least,
            } => format!(
                "enrolled voices {} (`{UNKNOWN}` below cosine {enrolled_at_least})",
                names.join(", ")
            ),
        }
    }
}

/// Why the speaker stage could not start.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The encoder weights are not set up.
    #[error(
        "no speaker encoder in {0} (run `emomon setup`, which fetches it, or pass \
         --speaker-encoder DIR)"
    )]
    NotSetUp(PathBuf),
    /// The weights did not load.
    #[error("speaker encoder {path}: {source}")]
    Load {
        /// Where they were read from.
        path: PathBuf,
        /// What went wrong (boxed: the load error is large).
        source: Box<SpeakerError>,
    },
    /// An enrolment recording could not be embedded.
    #[error("--enroll {name}: {source}")]
    Enroll {
        /// The voice's name.
        name: String,
        /// What went wrong (boxed: the load error is large).
        source: Box<SpeakerError>,
    },
    /// Bad speaker settings.
    #[error(transparent)]
    Track(#[from] TrackError),
}

/// Loads the encoder from `dir` (default: where `emomon setup` puts it).
pub fn load_encoder(dir: Option<&Path>) -> Result<Arc<SpeakerEncoder>, StageError> {
    let dir = dir.map_or_else(emomon_models::speaker::default_dir, Path::to_path_buf);
    let file = if dir.is_file() {
        dir.clone()
    } else {
        dir.join(emomon_models::speaker::WEIGHTS_FILE)
    };
    if !file.is_file() {
        return Err(StageError::NotSetUp(dir));
    }
    let device = emomon_models::Device::flex();
    SpeakerEncoder::load(&file, &device)
        .map(Arc::new)
        .map_err(|source| StageError::Load {
            path: file,
            source: Box::new(source),
        })
}

/// The encoder and the tracker: one per session, fed utterances in order.
#[derive(Debug)]
pub struct SpeakerStage {
    encoder: Arc<SpeakerEncoder>,
    tracker: SpeakerTracker,
}

impl SpeakerStage {
    /// A stage for `mode`; enrolment recordings are embedded here, once.
    pub fn new(encoder: Arc<SpeakerEncoder>, mode: &SpeakerMode) -> Result<Self, StageError> {
        let tracker = match mode {
            SpeakerMode::Cluster(n) => SpeakerTracker::clustering(*n)?,
            SpeakerMode::Enrolled(voices) => {
                let mut embedded = Vec::with_capacity(voices.len());
                for (name, audio) in voices {
                    let e =
                        enrolment_voice(&encoder, audio).map_err(|source| StageError::Enroll {
                            name: name.clone(),
                            source: Box::new(source),
                        })?;
                    embedded.push((name.clone(), e));
                }
                SpeakerTracker::enrolled(embedded, ENROLLED_AT_LEAST)?
            }
        };
        Ok(Self { encoder, tracker })
    }

    /// The encoder, to embed utterances on another thread than the one that assigns.
    pub fn encoder(&self) -> &Arc<SpeakerEncoder> {
        &self.encoder
    }

    /// The speaker of the next utterance (in session order), all of whose `samples` are
    /// speech (a clip). An utterance with no voice to embed (digital silence) is
    /// [`UNKNOWN`] and leaves the tracker unchanged.
    pub fn assign(&mut self, samples: &[f32]) -> Result<Assignment, TrackError> {
        let seconds = samples.len() as f32 / crate::audio::TARGET_RATE as f32;
        self.assign_speech(samples, seconds)
    }

    /// The speaker of the next utterance, whose speech lasts `seconds` (its `start_s` to
    /// `end_s`, without the segmenter's pre- and post-roll that `samples` also hold).
    pub fn assign_speech(
        &mut self,
        samples: &[f32],
        seconds: f32,
    ) -> Result<Assignment, TrackError> {
        match self.encoder.embed(samples) {
            Ok(e) => self.tracker.assign_speech(&e, seconds),
            Err(_) => Ok(Assignment {
                label: UNKNOWN.to_string(),
                similarity: 0.0,
                new: false,
            }),
        }
    }

    /// Assigns the embedding, computed elsewhere (see [`encoder`](Self::encoder)), of an
    /// utterance `seconds` long.
    pub fn assign_embedding(
        &mut self,
        embedding: &[f32],
        seconds: f32,
    ) -> Result<Assignment, TrackError> {
        self.tracker.assign_speech(embedding, seconds)
    }

    /// The encoder (for the pipeline's workers) and the tracker (for the session, which
    /// assigns in utterance order).
    pub fn into_parts(self) -> (Arc<SpeakerEncoder>, SpeakerTracker) {
        (self.encoder, self.tracker)
    }

    /// Labels known so far, in order of first appearance.
    pub fn labels(&self) -> Vec<&str> {
        self.tracker.labels()
    }
}

/// The voice of an enrolment recording: the unit-length mean of the embeddings of its
/// utterances, cut by emomon's own segmenter (resemblyzer's `embed_speaker`), so the voice
/// is measured the way a session's utterances are. Embedding the whole recording in one
/// piece instead (windows straddling pauses, one volume normalisation for all) named
/// 77 % of utterances right against 89 % this way (`emomon bench speakers`, README).
/// A recording the segmenter finds no utterance in is embedded whole.
pub fn enrolment_voice(encoder: &SpeakerEncoder, audio: &[f32]) -> Result<Vec<f32>, SpeakerError> {
    let mut utterances = Vec::new();
    let mut source = crate::audio::memory::MemorySource::new(
        "enrolment",
        audio.to_vec(),
        crate::audio::TARGET_RATE,
        1,
    );
    // The default front end always builds; should it not, the whole recording is used.
    let _ = crate::capture::run_capture(
        &mut source,
        &crate::capture::FrontEndConfig::default(),
        &std::sync::atomic::AtomicBool::new(false),
        &mut |u| utterances.push(u.samples),
    );
    if utterances.is_empty() {
        return encoder.embed(audio);
    }
    let mut sum = vec![0.0f32; emomon_models::speaker::EMBEDDING_DIM];
    for samples in &utterances {
        let e = encoder.embed(samples)?;
        sum.iter_mut().zip(&e).for_each(|(s, x)| *s += x);
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return Err(SpeakerError::ZeroEmbedding);
    }
    Ok(sum.into_iter().map(|x| x / norm).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setup_reads_back_from_a_start_record_and_old_logs_have_none() {
        let clustering = SpeakerTracker::clustering(2).unwrap().setup();
        let enrolled = SpeakerTracker::enrolled(vec![("therapist".into(), vec![1.0, 0.0])], 0.65)
            .unwrap()
            .setup();
        for setup in [SpeakerSetup::Channels, clustering.clone(), enrolled.clone()] {
            let config = serde_json::json!({"vad": {}, "speakers": setup});
            assert_eq!(SpeakerSetup::from_config(&config), Some(setup));
        }
        assert_eq!(
            serde_json::to_value(&clustering).unwrap(),
            serde_json::json!({"mode": "cluster", "max": 2, "new_speaker_below": NEW_SPEAKER_BELOW,
                               "opens_from_s": OPENS_FROM_S})
        );
        assert_eq!(
            enrolled.describe(),
            "enrolled voices therapist (`unknown` below cosine 0.65)"
        );
        assert_eq!(
            clustering.describe(),
            "online clustering into at most 2 speakers (a new one below cosine 0.75, from an \
             utterance of 1.2 s or more)"
        );
        // A log written before the shortest opening utterance was recorded still reads.
        let old = serde_json::json!({"speakers": {"mode": "cluster", "max": 2,
                                                  "new_speaker_below": 0.75}});
        assert_eq!(
            SpeakerSetup::from_config(&old),
            Some(SpeakerSetup::Cluster {
                max: 2,
                new_speaker_below: 0.75,
                opens_from_s: 0.0
            })
        );
        // A log written before the setup was recorded, or of a session without speakers.
        assert_eq!(
            SpeakerSetup::from_config(&serde_json::json!({"vad": {}})),
            None
        );
        let none = serde_json::json!({"speakers": null});
        assert_eq!(SpeakerSetup::from_config(&none), None);
    }
}
