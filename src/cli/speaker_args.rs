//! `--speakers N`, `--enroll NAME=FILE`, `--speaker-encoder DIR`: the options that make a
//! command keep one track per speaker (shared by `score` and `run`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use emomon::speaker::{SpeakerMode, SpeakerStage, load_encoder};

#[derive(Debug, Clone, Default, Args)]
pub struct SpeakerArgs {
    /// Tell speakers apart by online clustering of voice embeddings into at most N
    /// speakers, labelled S1, S2, … in order of first appearance (never relabelled).
    #[arg(long, value_name = "N", conflicts_with = "enroll")]
    pub speakers: Option<usize>,
    /// A known voice: NAME=FILE, a few seconds of that person speaking (repeatable).
    /// Utterances go to the nearest enrolled voice, or to `unknown`.
    #[arg(long, value_name = "NAME=FILE")]
    pub enroll: Vec<String>,
    /// Directory of the speaker encoder (default: where `emomon setup` puts it).
    #[arg(long, value_name = "DIR")]
    pub speaker_encoder: Option<PathBuf>,
}

impl SpeakerArgs {
    /// The speaker mode asked for, with enrolment recordings read; `None` when speakers
    /// are not tracked.
    pub fn mode(&self) -> anyhow::Result<Option<SpeakerMode>> {
        if let Some(n) = self.speakers {
            if n == 0 {
                bail!("--speakers needs at least 1 (e.g. --speakers 2)");
            }
            return Ok(Some(SpeakerMode::Cluster(n)));
        }
        if self.enroll.is_empty() {
            return Ok(None);
        }
        let mut voices = Vec::with_capacity(self.enroll.len());
        for spec in &self.enroll {
            let Some((name, file)) = spec.split_once('=') else {
                bail!("--enroll {spec}: expected NAME=FILE, e.g. --enroll therapist=me.wav");
            };
            let audio = emomon::audio::whole_file::read_16k(std::path::Path::new(file))
                .with_context(|| format!("--enroll {name}: cannot read the voice sample"))?;
            if audio.len() < 16_000 {
                bail!(
                    "--enroll {name}: {file} holds {:.2} s of audio; give at least 1 s (a few \
                     seconds of speech work best)",
                    audio.len() as f64 / 16_000.0
                );
            }
            voices.push((name.to_string(), audio));
        }
        Ok(Some(SpeakerMode::Enrolled(voices)))
    }

    /// A ready speaker stage, or `None` when speakers are not tracked.
    pub fn stage(&self) -> anyhow::Result<Option<SpeakerStage>> {
        let Some(mode) = self.mode()? else {
            return Ok(None);
        };
        let encoder = load_encoder(self.speaker_encoder.as_deref())?;
        Ok(Some(SpeakerStage::new(encoder, &mode)?))
    }
}
