//! `--speakers N`, `--enroll NAME=FILE`, `--speaker-encoder DIR`: the options that make a
//! command keep one track per speaker (shared by `score` and `run`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use emomon::speaker::{SpeakerMode, SpeakerStage, load_encoder};

#[derive(Debug, Clone, Default, Args)]
pub struct SpeakerArgs {
    /// Tell speakers apart: N = online clustering of voice embeddings into at most N
    /// speakers, labelled S1, S2, … in order of first appearance (never relabelled);
    /// `channels` = a stereo input with one person per channel, labelled L and R.
    #[arg(long, value_name = "N|channels", conflicts_with = "enroll", value_parser = parse_speakers)]
    pub speakers: Option<Speakers>,
    /// A known voice: NAME=FILE, a few seconds of that person speaking (repeatable).
    /// Utterances go to the nearest enrolled voice, or to `unknown`.
    #[arg(long, value_name = "NAME=FILE")]
    pub enroll: Vec<String>,
    /// Directory of the speaker encoder (default: where `emomon setup` puts it).
    #[arg(long, value_name = "DIR")]
    pub speaker_encoder: Option<PathBuf>,
}

/// What `--speakers` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speakers {
    /// Online clustering into at most this many speakers.
    Count(usize),
    /// One person per channel of a stereo input.
    Channels,
}

fn parse_speakers(value: &str) -> Result<Speakers, String> {
    if value.eq_ignore_ascii_case("channels") {
        return Ok(Speakers::Channels);
    }
    match value.parse::<usize>() {
        Ok(0) => Err("--speakers needs at least 1 (e.g. --speakers 2)".into()),
        Ok(n) => Ok(Speakers::Count(n)),
        Err(_) => Err(format!(
            "expected a number of speakers (e.g. 2) or `channels`, not `{value}`"
        )),
    }
}

impl SpeakerArgs {
    /// True for `--speakers channels`: the speaker is the channel, no voice is embedded.
    pub fn channels(&self) -> bool {
        self.speakers == Some(Speakers::Channels)
    }

    /// The voice-based speaker mode asked for, with enrolment recordings read; `None`
    /// when speakers are not tracked or are told apart by channel.
    pub fn mode(&self) -> anyhow::Result<Option<SpeakerMode>> {
        match self.speakers {
            Some(Speakers::Count(n)) => return Ok(Some(SpeakerMode::Cluster(n))),
            Some(Speakers::Channels) => return Ok(None),
            None => {}
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

    /// A ready speaker stage, or `None` when speakers are not tracked by voice.
    pub fn stage(&self) -> anyhow::Result<Option<SpeakerStage>> {
        let Some(mode) = self.mode()? else {
            return Ok(None);
        };
        let encoder = load_encoder(self.speaker_encoder.as_deref())?;
        Ok(Some(SpeakerStage::new(encoder, &mode)?))
    }
}
