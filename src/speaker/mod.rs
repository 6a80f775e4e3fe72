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
    Assignment, ENROLLED_AT_LEAST, NEW_SPEAKER_BELOW, SpeakerTracker, TrackError, UNKNOWN,
};

/// How the speakers of a session are told apart.
#[derive(Debug, Clone, PartialEq)]
pub enum SpeakerMode {
    /// Online clustering into at most this many speakers.
    Cluster(usize),
    /// Enrolled voices: (name, 16 kHz mono audio of that voice).
    Enrolled(Vec<(String, Vec<f32>)>),
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

    /// The speaker of the next utterance (in session order). An utterance with no voice
    /// to embed (digital silence) is [`UNKNOWN`] and leaves the tracker unchanged.
    pub fn assign(&mut self, samples: &[f32]) -> Result<Assignment, TrackError> {
        match self.encoder.embed(samples) {
            Ok(e) => self.tracker.assign(&e),
            Err(_) => Ok(Assignment {
                label: UNKNOWN.to_string(),
                similarity: 0.0,
                new: false,
            }),
        }
    }

    /// Assigns an embedding computed elsewhere (see [`encoder`](Self::encoder)).
    pub fn assign_embedding(&mut self, embedding: &[f32]) -> Result<Assignment, TrackError> {
        self.tracker.assign(embedding)
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
