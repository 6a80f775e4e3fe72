//! Reader for evaluation manifests: one CSV row per audio clip with its human
//! reference, the layout of `../shared/data/manifest.csv`.
//!
//! Columns are found by header name (extra columns are ignored):
//!
//! * `path` (required) — audio file, relative to the data root (by default the
//!   manifest's own directory) unless absolute;
//! * `dataset` (required) — groups rows for per-dataset metrics and label sets;
//! * `label` (required, may be empty) — either one emotion label (`angry`), or a
//!   vote distribution `label=count;label=count` (`angry=3;sad=1`, counts or
//!   fractions), or empty when the clip has no categorical reference;
//! * `speaker` (optional) — carried into the predictions;
//! * `extra` (optional) — `key=value;key=value`; numeric `arousal` and
//!   `valence` are read as dimensional annotations.
//!
//! Every error names the file, the line and the column, so a bad row in a
//! thousand-row manifest can be found and fixed without guessing.
//!
//! [`write_manifest`] writes the same layout (`path,dataset,speaker,label,extra`)
//! for `emomon manifest`, which turns corpus annotation files into manifests.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::table::Table;

/// A manifest that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be opened or read.
    #[error("cannot read manifest {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The header lacks a required column.
    #[error("manifest {path}: no `{column}` column in the header (found: {found})")]
    MissingColumn {
        path: String,
        column: &'static str,
        found: String,
    },
    /// A row is malformed.
    #[error("manifest {path}, line {line}, column `{column}`: {message}")]
    BadRow {
        path: String,
        line: usize,
        column: &'static str,
        message: String,
    },
    /// Header only.
    #[error("manifest {path} has no rows")]
    Empty { path: String },
}

/// The human reference of one clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// No categorical reference (e.g. only dimensional values).
    None,
    /// One label, as written in the manifest (not yet mapped).
    Label(String),
    /// Votes (or weights) per label, as written (not yet mapped or normalised).
    Votes(Vec<(String, f64)>),
}

/// One manifest row.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestItem {
    /// 1-based line number in the manifest (for messages).
    pub line: usize,
    /// The `path` column as written (what predictions report).
    pub path: String,
    /// The audio file to open.
    pub audio: PathBuf,
    /// The `dataset` column.
    pub dataset: String,
    /// The `speaker` column (empty when absent).
    pub speaker: String,
    /// The `label` column, parsed.
    pub reference: Reference,
    /// `arousal` from `extra`, if given.
    pub arousal: Option<f64>,
    /// `valence` from `extra`, if given.
    pub valence: Option<f64>,
}

/// Reads a manifest; relative audio paths are resolved against `data_root`, or
/// the manifest's directory when `None`.
pub fn read_manifest(
    path: &Path,
    data_root: Option<&Path>,
) -> Result<Vec<ManifestItem>, ManifestError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
        path: name.clone(),
        source,
    })?;
    let root = match data_root {
        Some(r) => r.to_path_buf(),
        None => path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    parse_manifest(&text, &name, &root)
}

/// Parses manifest text; `source` names it in errors.
pub fn parse_manifest(
    text: &str,
    source: &str,
    root: &Path,
) -> Result<Vec<ManifestItem>, ManifestError> {
    let table = Table::parse(text).map_err(|e| ManifestError::Io {
        path: source.to_string(),
        source: e,
    })?;
    let header = &table.header;
    if header.is_empty() {
        return Err(ManifestError::Empty {
            path: source.to_string(),
        });
    }
    let col = |name: &str| table.column(name);
    let need = |name: &'static str| {
        col(name).ok_or_else(|| ManifestError::MissingColumn {
            path: source.to_string(),
            column: name,
            found: header.join(","),
        })
    };
    let path_col = need("path")?;
    let dataset_col = need("dataset")?;
    let label_col = need("label")?;
    let speaker_col = col("speaker");
    let extra_col = col("extra");

    let mut items = Vec::new();
    for row in &table.rows {
        let line_no = row.line;
        let bad = |column: &'static str, message: String| ManifestError::BadRow {
            path: source.to_string(),
            line: line_no,
            column,
            message,
        };
        let field = |c: usize, column: &'static str| row.field(c).map_err(|m| bad(column, m));
        let rel = field(path_col, "path")?;
        if rel.is_empty() {
            return Err(bad("path", "empty path".into()));
        }
        let dataset = field(dataset_col, "dataset")?;
        if dataset.is_empty() {
            return Err(bad("dataset", "empty dataset name".into()));
        }
        let reference = parse_reference(field(label_col, "label")?).map_err(|m| bad("label", m))?;
        let speaker = match speaker_col {
            Some(c) => field(c, "speaker")?.to_string(),
            None => String::new(),
        };
        let (mut arousal, mut valence) = (None, None);
        if let Some(c) = extra_col {
            for (key, value) in key_values(field(c, "extra")?) {
                let slot = match key {
                    "arousal" => &mut arousal,
                    "valence" => &mut valence,
                    _ => continue,
                };
                let v: f64 = value
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite())
                    .ok_or_else(|| bad("extra", format!("{key}={value:?} is not a number")))?;
                *slot = Some(v);
            }
        }
        let audio = Path::new(rel);
        items.push(ManifestItem {
            line: line_no,
            path: rel.to_string(),
            audio: if audio.is_absolute() {
                audio.to_path_buf()
            } else {
                root.join(audio)
            },
            dataset: dataset.to_string(),
            speaker,
            reference,
            arousal,
            valence,
        });
    }
    if items.is_empty() {
        return Err(ManifestError::Empty {
            path: source.to_string(),
        });
    }
    Ok(items)
}

/// Items for the voice-only rows of a CREMA-D vote table ([`super::crema`]):
/// dataset `crema-d`, the crowd's votes as the reference (CREMA-D codes mapped
/// to emomon names by [`super::crema::CREMA_LABELS`]), audio at
/// `audio_dir/<fileName>.wav` (the corpus's `AudioWAV` folder). Face-only and
/// audio-visual votes are left out: emomon hears the voice only. `line` is the
/// row's position in the table (header = line 1).
pub fn crema_items(votes: &[super::crema::CremaVotes], audio_dir: &Path) -> Vec<ManifestItem> {
    use super::crema::{CREMA_LABELS, Modality};
    votes
        .iter()
        .enumerate()
        .filter(|(_, v)| v.modality == Modality::Voice)
        .map(|(i, v)| ManifestItem {
            line: i + 2,
            path: format!("{}.wav", v.clip),
            audio: audio_dir.join(format!("{}.wav", v.clip)),
            dataset: "crema-d".into(),
            speaker: v.clip.split('_').next().unwrap_or_default().to_string(),
            reference: Reference::Votes(
                CREMA_LABELS
                    .iter()
                    .zip(&v.counts)
                    .map(|((_, name), &c)| (name.to_string(), f64::from(c)))
                    .collect(),
            ),
            arousal: None,
            valence: None,
        })
        .collect()
}

/// One row for [`write_manifest`]: what the corpus readers
/// ([`super::iemocap`], [`super::msp_podcast`], [`crema_items`]) produce.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestRow {
    /// Audio file (written as given; the readers give absolute paths).
    pub path: String,
    /// The `dataset` column.
    pub dataset: String,
    /// The `speaker` column (may be empty).
    pub speaker: String,
    /// The `label` column: one label, votes, or nothing.
    pub reference: Reference,
    /// The `extra` column's `key=value` pairs, in order (`arousal`,
    /// `valence` are what `emomon eval` reads).
    pub extra: Vec<(String, String)>,
}

impl From<&ManifestItem> for ManifestRow {
    fn from(item: &ManifestItem) -> Self {
        let mut extra = Vec::new();
        if let Some(a) = item.arousal {
            extra.push(("arousal".to_string(), a.to_string()));
        }
        if let Some(v) = item.valence {
            extra.push(("valence".to_string(), v.to_string()));
        }
        Self {
            path: item.audio.display().to_string(),
            dataset: item.dataset.clone(),
            speaker: item.speaker.clone(),
            reference: item.reference.clone(),
            extra,
        }
    }
}

/// The `label` cell for `reference`: empty, the label, or `a=3;b=1` (weights
/// in Rust's shortest round-trip notation, so reading the cell back gives the
/// same numbers).
pub fn reference_cell(reference: &Reference) -> String {
    match reference {
        Reference::None => String::new(),
        Reference::Label(l) => l.clone(),
        Reference::Votes(v) => v
            .iter()
            .map(|(l, w)| format!("{l}={w}"))
            .collect::<Vec<_>>()
            .join(";"),
    }
}

/// Writes `rows` in the manifest layout [`read_manifest`] reads: header
/// `path,dataset,speaker,label,extra`, cells quoted (RFC 4180) where they need it.
pub fn write_manifest(rows: &[ManifestRow], out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(["path", "dataset", "speaker", "label", "extra"])?;
    for r in rows {
        let extra: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        csv.write_record([
            r.path.as_str(),
            &r.dataset,
            &r.speaker,
            &reference_cell(&r.reference),
            &extra.join(";"),
        ])?;
    }
    csv.flush()
}

/// `a=1;b=2` pairs (blank pieces skipped; a piece without `=` has an empty value).
fn key_values(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(';').filter(|p| !p.trim().is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (k.trim(), v.trim())
    })
}

/// A `label` cell: empty, one label, or `label=weight;…`.
fn parse_reference(cell: &str) -> Result<Reference, String> {
    if cell.is_empty() {
        return Ok(Reference::None);
    }
    if !cell.contains('=') {
        if cell.contains(';') {
            return Err(format!(
                "{cell:?}: several labels need weights (`angry=2;sad=1`)"
            ));
        }
        return Ok(Reference::Label(cell.to_string()));
    }
    let mut votes: Vec<(String, f64)> = Vec::new();
    for (label, weight) in key_values(cell) {
        if label.is_empty() {
            return Err(format!("{cell:?}: a weight without a label"));
        }
        let w: f64 = weight
            .parse()
            .ok()
            .filter(|w: &f64| w.is_finite() && *w >= 0.0)
            .ok_or_else(|| format!("{label}={weight:?} is not a non-negative number"))?;
        match votes.iter_mut().find(|(l, _)| l == label) {
            Some(v) => v.1 += w,
            None => votes.push((label.to_string(), w)),
        }
    }
    if votes.iter().all(|(_, w)| *w == 0.0) {
        return Err(format!("{cell:?}: all weights are zero"));
    }
    Ok(Reference::Votes(votes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ManifestItem>, ManifestError> {
        parse_manifest(text, "m.csv", Path::new("/data"))
    }

    #[test]
    fn shared_layout_rows() {
        let items = parse(
            "path,dataset,speaker,label,duration_s,extra,license\n\
             urdu/a.wav,urdu,SM1,angry,3.0,gender=m,\"research, only\"\n\
             p/00.wav,pyaudioanalysis,unknown,,2.0,arousal=0.7;valence=-0.7,Apache\n\
             /abs/c.wav,crowd,x,angry=3;sad=1;angry=1,1.0,,\n",
        )
        .unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].audio, Path::new("/data/urdu/a.wav"));
        assert_eq!(items[0].reference, Reference::Label("angry".into()));
        assert_eq!(items[0].speaker, "SM1");
        assert_eq!(items[0].line, 2);
        assert_eq!(items[1].reference, Reference::None);
        assert_eq!(
            (items[1].arousal, items[1].valence),
            (Some(0.7), Some(-0.7))
        );
        assert_eq!(items[2].audio, Path::new("/abs/c.wav"));
        assert_eq!(
            items[2].reference,
            Reference::Votes(vec![("angry".into(), 4.0), ("sad".into(), 1.0)])
        );
    }

    #[test]
    fn crema_voice_rows_become_vote_references() {
        let table = "fileName,clipNum,A,D,F,H,N,S,numResponses\n\
                     1001_IEO_NEU_XX,1,0,0,0,1,10,0,11\n\
                     1002_DFA_ANG_HI,7,6,1,0,0,2,0,9\n";
        let votes = super::super::crema::parse_votes(table.as_bytes(), "t.csv").unwrap();
        let items = crema_items(&votes, Path::new("/c/AudioWAV"));
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].audio, Path::new("/c/AudioWAV/1002_DFA_ANG_HI.wav"));
        assert_eq!(items[1].speaker, "1002");
        assert_eq!(items[1].line, 3);
        let Reference::Votes(v) = &items[1].reference else {
            panic!("votes expected")
        };
        let angry = v.iter().find(|(l, _)| l == "angry").unwrap().1;
        let neutral = v.iter().find(|(l, _)| l == "neutral").unwrap().1;
        assert_eq!((angry, neutral), (6.0, 2.0));
    }

    #[test]
    fn written_rows_read_back() {
        let rows = vec![
            ManifestRow {
                path: "/a, b/x.wav".into(),
                dataset: "d".into(),
                speaker: "s1".into(),
                reference: Reference::Votes(vec![("angry".into(), 1.0 / 3.0), ("sad".into(), 2.0)]),
                extra: vec![
                    ("valence".into(), "-0.25".into()),
                    ("split".into(), "Test1".into()),
                ],
            },
            ManifestRow {
                path: "y.wav".into(),
                dataset: "d".into(),
                speaker: String::new(),
                reference: Reference::None,
                extra: vec![("arousal".into(), "0.5".into())],
            },
        ];
        let mut out = Vec::new();
        write_manifest(&rows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("path,dataset,speaker,label,extra\n\"/a, b/x.wav\",d,s1,"));
        let items = parse(&text).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].audio, Path::new("/a, b/x.wav"));
        assert_eq!(items[0].reference, rows[0].reference);
        assert_eq!((items[0].valence, items[0].arousal), (Some(-0.25), None));
        assert_eq!(items[1].audio, Path::new("/data/y.wav"));
        assert_eq!(
            (items[1].reference.clone(), items[1].arousal),
            (Reference::None, Some(0.5))
        );
        // And back again: an item becomes the same row.
        let again = ManifestRow::from(&items[0]);
        assert_eq!(again.reference, rows[0].reference);
        assert_eq!(again.speaker, "s1");
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("path,label\na.wav,x\n").unwrap_err().to_string();
        assert!(e.contains("m.csv") && e.contains("`dataset`"), "{e}");
        let e = parse("path,dataset,label\na.wav,d,angry=x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("`label`"), "{e}");
        let e = parse("path,dataset,label\na.wav,d,a\nb.wav,d\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("2 field(s)"), "{e}");
        let e = parse("path,dataset,label,extra\na.wav,d,a,valence=high\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`extra`") && e.contains("valence"), "{e}");
        let e = parse("path,dataset,label\n").unwrap_err().to_string();
        assert!(e.contains("no rows"), "{e}");
        let e = parse("path,dataset,label\n,d,a\n").unwrap_err().to_string();
        assert!(e.contains("empty path"), "{e}");
    }
}
