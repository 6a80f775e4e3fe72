//! Reader for CREMA-D crowd vote tables (`tabulatedVotes.csv` and the derived
//! `voice_only_votes.csv` in `../shared/data/crema-d`).
//!
//! CREMA-D had every clip rated by several crowd workers (4–12, mean ≈ 9 for
//! voice only), each choosing one of six emotions. The per-clip vote counts are
//! the human *distribution* that ambiguous-emotion evaluation compares against.
//!
//! Layout (see `crema-d/NOTES.md`): a header row; columns `A D F H N S` hold the
//! vote counts, `fileName` the clip (`ActorID_Sentence_Emotion_Level`, audio in
//! `AudioWAV/<fileName>.wav`), `numResponses` their total (checked). In
//! `tabulatedVotes.csv` the first, unnamed column is `100000 · queryType +
//! clipNum` with queryType 1 = voice only, 2 = face only, 3 = audio-visual;
//! `voice_only_votes.csv` has `clipNum` instead and only voice-only rows.
//! Columns are found by header name, so extra columns are ignored.
//!
//! Label mapping to emomon's label names is explicit: [`CREMA_LABELS`].

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::table::Table;

/// CREMA-D vote columns and the emomon label each maps to, in column order.
pub const CREMA_LABELS: [(&str, &str); 6] = [
    ("A", "angry"),
    ("D", "disgust"),
    ("F", "fear"),
    ("H", "happy"),
    ("N", "neutral"),
    ("S", "sad"),
];

/// What the raters were shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Audio only — the condition comparable to emomon.
    Voice,
    /// Video without sound.
    Face,
    /// Audio and video.
    AudioVisual,
}

/// One clip's votes in one modality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CremaVotes {
    /// Clip name, e.g. `1001_IEO_NEU_XX` (audio: `AudioWAV/<clip>.wav`).
    pub clip: String,
    /// Stimulus number (row of `SentenceFilenames.csv`).
    pub clip_num: u32,
    /// Presentation condition of these votes.
    pub modality: Modality,
    /// Vote counts in [`CREMA_LABELS`] order.
    pub counts: [u32; 6],
}

/// A vote distribution mapped onto a session's label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappedDistribution {
    /// Probabilities aligned with the requested labels (0 for labels CREMA-D
    /// does not have, e.g. `surprise`); sums to 1 unless `probs` is all zero
    /// because every vote was unmapped.
    pub probs: Vec<f64>,
    /// emomon names of CREMA-D labels that received votes but are not in the
    /// requested label set; their votes are dropped (and reported, not hidden).
    pub unmapped: Vec<String>,
    /// Votes that were mapped.
    pub mapped_votes: u32,
}

impl CremaVotes {
    /// Total number of votes.
    pub fn total(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// Vote fractions in [`CREMA_LABELS`] order (all zero if there are no votes).
    pub fn distribution(&self) -> [f64; 6] {
        let total = self.total();
        let mut out = [0.0; 6];
        if total > 0 {
            for (o, &c) in out.iter_mut().zip(&self.counts) {
                *o = c as f64 / total as f64;
            }
        }
        out
    }

    /// Vote distribution over `labels` (emomon names), via [`CREMA_LABELS`].
    pub fn distribution_over(&self, labels: &[String]) -> MappedDistribution {
        let mut counts = vec![0u32; labels.len()];
        let mut unmapped = Vec::new();
        for (&(_, name), &c) in CREMA_LABELS.iter().zip(&self.counts) {
            match labels.iter().position(|l| l == name) {
                Some(i) => counts[i] += c,
                None if c > 0 => unmapped.push(name.to_string()),
                None => {}
            }
        }
        let mapped_votes: u32 = counts.iter().sum();
        let probs = counts
            .iter()
            .map(|&c| {
                if mapped_votes > 0 {
                    c as f64 / mapped_votes as f64
                } else {
                    0.0
                }
            })
            .collect();
        MappedDistribution {
            probs,
            unmapped,
            mapped_votes,
        }
    }

    /// The actor's intended emotion from the clip name (third `_` field,
    /// `ANG DIS FEA HAP NEU SAD`), as an emomon label name.
    pub fn intended(&self) -> Option<&'static str> {
        match self.clip.split('_').nth(2)? {
            "ANG" => Some("angry"),
            "DIS" => Some("disgust"),
            "FEA" => Some("fear"),
            "HAP" => Some("happy"),
            "NEU" => Some("neutral"),
            "SAD" => Some("sad"),
            _ => None,
        }
    }
}

/// Failure reading a vote table; messages name the file and line.
#[derive(Debug, thiserror::Error)]
pub enum CremaError {
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: header has no column {column:?}")]
    MissingColumn { path: String, column: String },
    #[error("{path}:{line}: {message}")]
    BadRow {
        path: String,
        line: usize,
        message: String,
    },
}

/// Reads a CREMA-D vote table from a file.
pub fn read_votes(path: &Path) -> Result<Vec<CremaVotes>, CremaError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| CremaError::Io {
        path: name.clone(),
        source,
    })?;
    parse_votes(file, &name)
}

/// Parses a CREMA-D vote table; `source` names it in error messages.
pub fn parse_votes(mut reader: impl Read, source: &str) -> Result<Vec<CremaVotes>, CremaError> {
    let io_err = |e| CremaError::Io {
        path: source.to_string(),
        source: e,
    };
    let mut text = String::new();
    reader.read_to_string(&mut text).map_err(io_err)?;
    let table = Table::parse(&text).map_err(io_err)?;
    if table.header.is_empty() {
        return Err(CremaError::MissingColumn {
            path: source.to_string(),
            column: "fileName".into(),
        });
    }
    let header = &table.header;
    let col = |name: &str| table.column(name);
    let need = |name: &str| {
        col(name).ok_or_else(|| CremaError::MissingColumn {
            path: source.to_string(),
            column: name.to_string(),
        })
    };
    let file_col = need("fileName")?;
    let mut count_cols = [0usize; 6];
    for (c, (code, _)) in count_cols.iter_mut().zip(CREMA_LABELS) {
        *c = need(code)?;
    }
    let responses_col = col("numResponses");
    // tabulatedVotes.csv: unnamed id column; voice_only_votes.csv: clipNum.
    let id_col = match (col(""), col("clipNum")) {
        (Some(i), _) => IdColumn::Combined(i),
        (None, Some(i)) => IdColumn::ClipNum(i),
        (None, None) => {
            return Err(CremaError::MissingColumn {
                path: source.to_string(),
                column: "clipNum (or the unnamed id column)".into(),
            });
        }
    };

    let mut out = Vec::new();
    for row in &table.rows {
        let bad = |message: String| CremaError::BadRow {
            path: source.to_string(),
            line: row.line,
            message,
        };
        let field = |c: usize| {
            row.field(c)
                .map_err(|m| bad(format!("column {}: {m}", header[c])))
        };
        let number = |c: usize| -> Result<u32, CremaError> {
            let f = field(c)?;
            f.parse::<u32>()
                .map_err(|_| bad(format!("column {}: {f:?} is not a count", header[c])))
        };
        let mut counts = [0u32; 6];
        for (n, &c) in counts.iter_mut().zip(&count_cols) {
            *n = number(c)?;
        }
        let (modality, clip_num) = match id_col {
            IdColumn::ClipNum(c) => (Modality::Voice, number(c)?),
            IdColumn::Combined(c) => {
                let id = number(c)?;
                let modality = match id / 100_000 {
                    1 => Modality::Voice,
                    2 => Modality::Face,
                    3 => Modality::AudioVisual,
                    q => return Err(bad(format!("id {id}: unknown query type {q}"))),
                };
                (modality, id % 100_000)
            }
        };
        if let Some(c) = responses_col {
            let n = number(c)?;
            let sum: u32 = counts.iter().sum();
            if n != sum {
                return Err(bad(format!("numResponses {n} != sum of votes {sum}")));
            }
        }
        let clip = field(file_col)?.to_string();
        if clip.is_empty() {
            return Err(bad("empty fileName".into()));
        }
        out.push(CremaVotes {
            clip,
            clip_num,
            modality,
            counts,
        });
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum IdColumn {
    Combined(usize),
    ClipNum(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_only_layout_and_mapping() {
        let text = "fileName,clipNum,actor,sentence,intended,level,A,D,F,H,N,S,numResponses\n\
                    1001_IEO_HAP_LO,2,1001,IEO,HAP,LO,0,0,0,3,6,0,9\n";
        let rows = parse_votes(text.as_bytes(), "inline").expect("parses");
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.modality, Modality::Voice);
        assert_eq!(r.clip_num, 2);
        assert_eq!(r.intended(), Some("happy"));
        let labels: Vec<String> = ["neutral", "happy", "surprise"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = r.distribution_over(&labels);
        assert_eq!(m.probs, vec![6.0 / 9.0, 3.0 / 9.0, 0.0]);
        assert!(m.unmapped.is_empty());
    }

    #[test]
    fn reports_bad_rows_with_line_numbers() {
        let text = "fileName,clipNum,A,D,F,H,N,S,numResponses\nx,1,0,0,0,1,1,0,3\n";
        let err = parse_votes(text.as_bytes(), "t.csv").expect_err("sum mismatch");
        assert_eq!(err.to_string(), "t.csv:2: numResponses 3 != sum of votes 2");
        let err = parse_votes("fileName,A\n".as_bytes(), "t.csv").expect_err("columns");
        assert!(err.to_string().contains("no column \"D\""));
    }
}
