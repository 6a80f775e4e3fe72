//! Reader for MSP-Podcast label files (`Labels/labels_detailed.csv`,
//! `Labels/labels_consensus.csv`), turning them into per-clip vote
//! distributions and dimensional values for an evaluation manifest.
//!
//! MSP-Podcast (Lotfian & Busso 2019) is licensed per user by UT Dallas;
//! nothing of it is in this repository. Users point `emomon manifest
//! msp-podcast --labels FILE --audio DIR` at their own copy.
//!
//! # Columns accepted
//!
//! Columns are found by header name (others are ignored). The kind of file
//! is told by its header:
//!
//! * **per-annotator** (`labels_detailed.csv`): `FileName` and `EmoClass_Major`
//!   required; `EmoAct`, `EmoVal`, `EmoDom` optional. One row per annotator
//!   and clip; `EmoClass_Major` is the annotator's primary emotion as a word
//!   (`Angry`, `Sad`, `Happy`, `Surprise`, `Fear`, `Disgust`, `Contempt`,
//!   `Neutral`, `Other` or `Other-<free text>`) or its one-letter code. Each
//!   row is one vote (an empty cell is no vote); `EmoClass_Second`
//!   (secondary emotions) is not read. A
//!   clip's dimensional values are the mean of its annotators' numbers.
//! * **consensus** (`labels_consensus.csv`): `FileName` and `EmoClass`
//!   required; `EmoAct`, `EmoVal`, `EmoDom`, `SpkrID`, `Split_Set` optional.
//!   `EmoClass` is the consensus code `A S H U F D C N O`, or `X` for no
//!   agreement (the clip then has no categorical reference but keeps its
//!   dimensional values).
//!
//! A header with neither `EmoClass_Major` nor `EmoClass`, or without
//! `FileName`, is an error naming the file, line 1 and the missing column; a
//! bad cell names file, line and column.
//!
//! Codes and words map to emomon labels explicitly by [`MSP_CLASSES`].
//! Dimensional values (1–7: `EmoVal` 1 = very negative, `EmoAct` 1 = very
//! calm) are rescaled to −1…+1 with `(x − 4) / 3`, the range of the shared
//! manifest's `valence=`/`arousal=` values. Audio is `<audio dir>/<FileName>`
//! (`.wav` appended when `FileName` has no extension).

use std::collections::HashMap;
use std::path::Path;

use super::manifest::{ManifestRow, Reference};
use super::table::Table;

/// MSP-Podcast's emotion classes: consensus code, the word per-annotator
/// rows use, and the emomon label.
pub const MSP_CLASSES: [(&str, &str, &str); 9] = [
    ("A", "Angry", "angry"),
    ("S", "Sad", "sad"),
    ("H", "Happy", "happy"),
    ("U", "Surprise", "surprise"),
    ("F", "Fear", "fear"),
    ("D", "Disgust", "disgust"),
    ("C", "Contempt", "contempt"),
    ("N", "Neutral", "neutral"),
    ("O", "Other", "other"),
];

/// A label file that is not in an accepted layout.
#[derive(Debug, thiserror::Error)]
pub enum MspError {
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:1: no `{column}` column in the header (found: {found})")]
    MissingColumn {
        path: String,
        column: &'static str,
        found: String,
    },
    #[error("{path}:{line}: column `{column}`: {message}")]
    BadRow {
        path: String,
        line: usize,
        column: &'static str,
        message: String,
    },
}

/// Which layout a file had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelsKind {
    /// One row per annotator (`labels_detailed.csv`).
    PerAnnotator,
    /// One consensus row per clip (`labels_consensus.csv`).
    Consensus,
}

/// One clip's annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct MspClip {
    /// `FileName` as written.
    pub file_name: String,
    /// 1-based line of the clip's first row.
    pub line: usize,
    /// Per-annotator: votes per emomon label in first-mention order;
    /// consensus: empty.
    pub votes: Vec<(String, f64)>,
    /// Consensus: the emomon label (`None` for `X`, no agreement).
    pub consensus: Option<String>,
    /// Rows (annotators) read for the clip.
    pub n_rows: usize,
    /// Mean `EmoAct`, `EmoVal`, `EmoDom` on the 1–7 scale, when given.
    pub arousal: Option<f64>,
    pub valence: Option<f64>,
    pub dominance: Option<f64>,
    /// `SpkrID` (consensus files).
    pub speaker: Option<String>,
    /// `Split_Set` (consensus files).
    pub split: Option<String>,
}

impl MspClip {
    /// The manifest row; audio at `audio_dir/FileName` (`.wav` added when
    /// the name has no extension).
    pub fn manifest_row(&self, audio_dir: &Path, dataset: &str) -> ManifestRow {
        let name = if Path::new(&self.file_name).extension().is_some() {
            self.file_name.clone()
        } else {
            format!("{}.wav", self.file_name)
        };
        let reference = if !self.votes.is_empty() {
            Reference::Votes(self.votes.clone())
        } else if let Some(l) = &self.consensus {
            Reference::Label(l.clone())
        } else {
            Reference::None
        };
        let scale = |x: f64| ((x - 4.0) / 3.0).to_string();
        let mut extra = Vec::new();
        for (key, v) in [
            ("arousal", self.arousal),
            ("valence", self.valence),
            ("dominance", self.dominance),
        ] {
            if let Some(v) = v {
                extra.push((key.to_string(), scale(v)));
            }
        }
        if let Some(s) = &self.split {
            extra.push(("split".to_string(), s.clone()));
        }
        ManifestRow {
            path: audio_dir.join(name).display().to_string(),
            dataset: dataset.to_string(),
            speaker: self.speaker.clone().unwrap_or_default(),
            reference,
            extra,
        }
    }
}

/// The emomon label of a class code or word (`Other-…` → `other`); `Ok(None)`
/// for `X` (no agreement) or an empty cell (no answer); `Err` for anything else.
pub fn map_class(cell: &str) -> Result<Option<&'static str>, String> {
    let c = cell.trim();
    if c.is_empty() || c.eq_ignore_ascii_case("X") {
        return Ok(None);
    }
    if c.len() >= 5 && c[..5].eq_ignore_ascii_case("other") {
        return Ok(Some("other"));
    }
    MSP_CLASSES
        .iter()
        .find(|(code, word, _)| c.eq_ignore_ascii_case(code) || c.eq_ignore_ascii_case(word))
        .map(|&(_, _, l)| Some(l))
        .ok_or_else(|| {
            format!(
                "{c:?} is not an MSP-Podcast emotion class (codes {} or X; words {}, Other-…)",
                MSP_CLASSES.map(|(c, _, _)| c).join(" "),
                MSP_CLASSES.map(|(_, w, _)| w).join(", ")
            )
        })
}

/// Reads a label file (either kind) from disk.
pub fn read_labels(path: &Path) -> Result<(LabelsKind, Vec<MspClip>), MspError> {
    let text = std::fs::read_to_string(path).map_err(|source| MspError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_labels(&text, &path.display().to_string())
}

/// Parses a label file's text; `source` names it in errors. Clips keep the
/// order of their first row.
pub fn parse_labels(text: &str, source: &str) -> Result<(LabelsKind, Vec<MspClip>), MspError> {
    let table = Table::parse(text).map_err(|e| MspError::Io {
        path: source.to_string(),
        source: e,
    })?;
    let header = &table.header;
    let col = |name: &str| table.column(name);
    let missing = |column: &'static str| MspError::MissingColumn {
        path: source.to_string(),
        column,
        found: header.join(","),
    };
    let file_col = col("FileName").ok_or_else(|| missing("FileName"))?;
    let (kind, class_col, class_name) = match (col("EmoClass_Major"), col("EmoClass")) {
        (Some(c), _) => (LabelsKind::PerAnnotator, c, "EmoClass_Major"),
        (None, Some(c)) => (LabelsKind::Consensus, c, "EmoClass"),
        (None, None) => {
            return Err(missing(
                "EmoClass_Major` (labels_detailed.csv) or `EmoClass` (labels_consensus.csv)",
            ));
        }
    };
    let dims = [col("EmoAct"), col("EmoVal"), col("EmoDom")];
    let (speaker_col, split_col) = (col("SpkrID"), col("Split_Set"));

    let mut clips: Vec<MspClip> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Per clip: sums and counts of the annotators' EmoAct, EmoVal, EmoDom.
    let mut sums: Vec<[(f64, usize); 3]> = Vec::new();
    for row in &table.rows {
        let line_no = row.line;
        let bad = |column: &'static str, message: String| MspError::BadRow {
            path: source.to_string(),
            line: line_no,
            column,
            message,
        };
        let field = |c: usize, column: &'static str| row.field(c).map_err(|m| bad(column, m));
        let name = field(file_col, "FileName")?;
        if name.is_empty() {
            return Err(bad("FileName", "empty file name".into()));
        }
        let class = map_class(field(class_col, class_name)?).map_err(|m| bad(class_name, m))?;
        let mut values = [None; 3];
        for ((slot, c), column) in values
            .iter_mut()
            .zip(dims)
            .zip(["EmoAct", "EmoVal", "EmoDom"])
        {
            let Some(c) = c else { continue };
            let cell = field(c, column)?;
            if cell.is_empty() {
                continue;
            }
            *slot = Some(
                cell.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| bad(column, format!("{cell:?} is not a number")))?,
            );
        }
        let k = match index.get(name) {
            Some(&k) if kind == LabelsKind::PerAnnotator => k,
            Some(_) => {
                return Err(bad(
                    "FileName",
                    format!("{name} appears twice in a consensus file"),
                ));
            }
            None => {
                index.insert(name.to_string(), clips.len());
                clips.push(MspClip {
                    file_name: name.to_string(),
                    line: line_no,
                    votes: Vec::new(),
                    consensus: None,
                    n_rows: 0,
                    arousal: None,
                    valence: None,
                    dominance: None,
                    speaker: None,
                    split: None,
                });
                sums.push([(0.0, 0); 3]);
                clips.len() - 1
            }
        };
        let clip = &mut clips[k];
        clip.n_rows += 1;
        for (s, v) in sums[k].iter_mut().zip(values) {
            if let Some(v) = v {
                s.0 += v;
                s.1 += 1;
            }
        }
        match kind {
            LabelsKind::PerAnnotator => {
                let Some(label) = class else {
                    continue; // No answer (empty or `X`): no vote.
                };
                match clip.votes.iter_mut().find(|(l, _)| l == label) {
                    Some(v) => v.1 += 1.0,
                    None => clip.votes.push((label.to_string(), 1.0)),
                }
            }
            LabelsKind::Consensus => {
                clip.consensus = class.map(str::to_string);
                if let Some(c) = speaker_col {
                    clip.speaker = Some(field(c, "SpkrID")?.to_string());
                }
                if let Some(c) = split_col {
                    clip.split = Some(field(c, "Split_Set")?.to_string());
                }
            }
        }
    }
    for (clip, s) in clips.iter_mut().zip(&sums) {
        let mean = |(sum, n): (f64, usize)| (n > 0).then(|| sum / n as f64);
        clip.arousal = mean(s[0]);
        clip.valence = mean(s[1]);
        clip.dominance = mean(s[2]);
    }
    Ok((kind, clips))
}

/// Per-annotator clips completed from a consensus file: speaker and split
/// taken from it, and its released dimensional values preferred over the
/// annotator means. Clips missing from the consensus file are kept as they are.
pub fn merge_consensus(detailed: &mut [MspClip], consensus: &[MspClip]) {
    let by_name: HashMap<&str, &MspClip> = consensus
        .iter()
        .map(|c| (c.file_name.as_str(), c))
        .collect();
    for clip in detailed {
        let Some(c) = by_name.get(clip.file_name.as_str()) else {
            continue;
        };
        clip.speaker = c.speaker.clone();
        clip.split = c.split.clone();
        clip.arousal = c.arousal.or(clip.arousal);
        clip.valence = c.valence.or(clip.valence);
        clip.dominance = c.dominance.or(clip.dominance);
        clip.consensus = c.consensus.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_annotator_rows_become_votes() {
        let text = "FileName,WorkerID,EmoClass_Major,EmoClass_Second,EmoAct,EmoVal,EmoDom\n\
                    a.wav,W1,Angry,\"Frustrated,Annoyed\",6,2,5\n\
                    b.wav,W1,Neutral,,4,4,4\n\
                    a.wav,W2,Other-annoyed,,5,3,\n\
                    a.wav,W3,angry,,7,1,6\n";
        let (kind, clips) = parse_labels(text, "d.csv").unwrap();
        assert_eq!(kind, LabelsKind::PerAnnotator);
        assert_eq!(clips.len(), 2);
        let a = &clips[0];
        assert_eq!(
            a.votes,
            vec![("angry".to_string(), 2.0), ("other".to_string(), 1.0)]
        );
        assert_eq!((a.n_rows, a.arousal, a.valence), (3, Some(6.0), Some(2.0)));
        assert_eq!(a.dominance, Some(5.5));
        // An empty primary class is no vote, but its ratings still count.
        let (_, clips) = parse_labels(
            "FileName,EmoClass_Major,EmoVal\nc.wav,,2\nc.wav,Sad,4\n",
            "d.csv",
        )
        .unwrap();
        assert_eq!(clips[0].votes, vec![("sad".to_string(), 1.0)]);
        assert_eq!(clips[0].valence, Some(3.0));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse_labels("FileName,EmoAct\na.wav,3\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.csv:1: no `EmoClass_Major`"), "{e}");
        let e = parse_labels("EmoClass\nA\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.csv:1: no `FileName`"), "{e}");
        let e = parse_labels("FileName,EmoClass,EmoVal\na.wav,A,3\nb.wav,Q,3\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.csv:3: column `EmoClass`: \"Q\""), "{e}");
        let e = parse_labels("FileName,EmoClass,EmoVal\na.wav,A,high\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.csv:2: column `EmoVal`"), "{e}");
    }
}
