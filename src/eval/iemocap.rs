//! Reader for IEMOCAP's per-evaluator emotion annotations
//! (`Session*/dialog/EmoEvaluation/*.txt`), turning them into per-turn vote
//! distributions and dimensional values for an evaluation manifest.
//!
//! IEMOCAP (Busso et al. 2008) is licensed per user by USC SAIL; nothing of it
//! is in this repository. Users point `emomon manifest iemocap --root DIR` at
//! their own `IEMOCAP_full_release` directory.
//!
//! # Layout read
//!
//! One file per dialog, `SessionN/dialog/EmoEvaluation/<dialog>.txt` (the
//! `Categorical/`, `Attribute/` and `Self-evaluation/` subfolders are not
//! read: the same judgements are in the dialog file). In it:
//!
//! * lines starting with `%` are comments (the first line names the columns);
//! * a turn starts with a header line, fields separated by tabs:
//!   `[START - END]  TURN_NAME  EMOTION  [V, A, D]`, e.g.
//!   `[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`:
//!   times in seconds, the turn (also the audio file's stem), the consensus
//!   code (`neu`, `xxx` for no agreement, …) and the mean valence, activation
//!   and dominance of the evaluators on 1–5 scales;
//! * then one line per categorical evaluation, `C-<who>:<TAB>Label; Label;<TAB>(comment)`,
//!   where `<who>` is `E1`… for the external evaluators and `F1`/`M1` for the
//!   actor's own (self) evaluation; several labels may be chosen;
//! * then one line per dimensional evaluation, `A-<who>:<TAB>val 3; act 2; dom  2;<TAB>(…)`,
//!   which are not read (the header carries their mean);
//! * blank lines separate turns.
//!
//! Audio: `SessionN/sentences/wav/<dialog>/<turn>.wav`, where `<dialog>` is
//! the turn name without its last `_` part.
//!
//! # Votes
//!
//! Every categorical evaluation line is one vote, split equally over the
//! labels it names (`Frustration; Anger;` gives ½ + ½), so every evaluator
//! weighs the same however many labels they ticked. Self-evaluations
//! (`C-F*`, `C-M*`) count unless `include_self` is false. Label names map to
//! emomon's explicitly, by [`IEMOCAP_LABELS`]; an `Other` label, with or
//! without the evaluator's free text (`Other:curious`), becomes `other`; any
//! other name is an error naming the file and line, not a guess.
//!
//! Dimensional values are rescaled from 1–5 to −1…+1 with `(x − 3) / 2`,
//! the range of the shared manifest's `valence=`/`arousal=` values.

use std::path::{Path, PathBuf};

use super::manifest::{ManifestRow, Reference};

/// IEMOCAP categorical label names (as evaluators' lines spell them) and the
/// emomon label each maps to. `Other…` is handled separately (→ `other`).
pub const IEMOCAP_LABELS: [(&str, &str); 10] = [
    ("Neutral state", "neutral"),
    ("Neutral", "neutral"),
    ("Frustration", "frustration"),
    ("Anger", "angry"),
    ("Happiness", "happy"),
    ("Excited", "excited"),
    ("Sadness", "sad"),
    ("Fear", "fear"),
    ("Surprise", "surprise"),
    ("Disgust", "disgust"),
];

/// A file or directory that is not in IEMOCAP's layout.
#[derive(Debug, thiserror::Error)]
pub enum IemocapError {
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{root}: no Session*/dialog/EmoEvaluation/*.txt files found; --root must be the \
         IEMOCAP release directory (the one holding Session1 … Session5)"
    )]
    NoFiles { root: String },
    #[error("{path}:{line}: {message}")]
    BadLine {
        path: String,
        line: usize,
        message: String,
    },
}

/// One annotated turn.
#[derive(Debug, Clone, PartialEq)]
pub struct IemocapTurn {
    /// Turn name, e.g. `Ses01F_impro01_F000` (the audio file's stem).
    pub turn: String,
    /// Session directory the annotation came from, e.g. `Session1`.
    pub session: String,
    /// 1-based line of the turn's header in its file.
    pub line: usize,
    /// Start and end in the dialog, seconds.
    pub start_s: f64,
    pub end_s: f64,
    /// The file's consensus code (`neu`, `fru`, …, `xxx` = no agreement).
    pub consensus: String,
    /// Votes per emomon label, in first-mention order (see the module docs).
    pub votes: Vec<(String, f64)>,
    /// Categorical evaluation lines counted.
    pub n_evaluations: usize,
    /// Mean valence, activation (arousal) and dominance, on IEMOCAP's 1–5 scale.
    pub valence: f64,
    pub arousal: f64,
    pub dominance: f64,
}

impl IemocapTurn {
    /// The dialog the turn belongs to (turn name without its last `_` part).
    pub fn dialog(&self) -> &str {
        self.turn
            .rsplit_once('_')
            .map_or(self.turn.as_str(), |(d, _)| d)
    }

    /// The speaking actor: session prefix plus the turn's `F`/`M`
    /// (`Ses01F_impro01_M003` → `Ses01M`), empty if the name is not in that form.
    pub fn speaker(&self) -> String {
        let last = self.turn.rsplit('_').next().unwrap_or_default();
        match (self.turn.get(..5), last.chars().next()) {
            (Some(ses), Some(g @ ('F' | 'M'))) if ses.starts_with("Ses") => format!("{ses}{g}"),
            _ => String::new(),
        }
    }

    /// `root/SessionN/sentences/wav/<dialog>/<turn>.wav`.
    pub fn audio_path(&self, root: &Path) -> PathBuf {
        root.join(&self.session)
            .join("sentences/wav")
            .join(self.dialog())
            .join(format!("{}.wav", self.turn))
    }

    /// The manifest row: votes as the reference (none if no evaluation
    /// counted), speaker, and valence/arousal/dominance rescaled to −1…+1.
    pub fn manifest_row(&self, root: &Path, dataset: &str) -> ManifestRow {
        let scale = |x: f64| ((x - 3.0) / 2.0).to_string();
        ManifestRow {
            path: self.audio_path(root).display().to_string(),
            dataset: dataset.to_string(),
            speaker: self.speaker(),
            reference: if self.votes.is_empty() {
                Reference::None
            } else {
                Reference::Votes(self.votes.clone())
            },
            extra: vec![
                ("arousal".into(), scale(self.arousal)),
                ("valence".into(), scale(self.valence)),
                ("dominance".into(), scale(self.dominance)),
            ],
        }
    }
}

/// The emomon label for an evaluator's label name, `None` if unknown.
pub fn map_label(name: &str) -> Option<&'static str> {
    let name = name.trim();
    if name.len() >= 5 && name[..5].eq_ignore_ascii_case("other") {
        return Some("other");
    }
    IEMOCAP_LABELS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, l)| l)
}

/// Parses one `EmoEvaluation` file's text; `source` names it in errors and
/// `session` is recorded on every turn.
pub fn parse_evaluation(
    text: &str,
    source: &str,
    session: &str,
    include_self: bool,
) -> Result<Vec<IemocapTurn>, IemocapError> {
    let mut turns: Vec<IemocapTurn> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        let bad = |message: String| IemocapError::BadLine {
            path: source.to_string(),
            line: line_no,
            message,
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('%') {
            continue;
        }
        if trimmed.starts_with('[') {
            turns.push(parse_header(trimmed, session, line_no).map_err(bad)?);
        } else if let Some(rest) = trimmed.strip_prefix("C-") {
            let Some(turn) = turns.last_mut() else {
                return Err(bad("evaluation line before any turn header".into()));
            };
            let (who, labels) = rest
                .split_once(':')
                .ok_or_else(|| bad(format!("{trimmed:?}: expected `C-<evaluator>:<TAB>Label;`")))?;
            if !include_self && (who.starts_with('F') || who.starts_with('M')) {
                continue;
            }
            // Drop the trailing `(comment)`.
            let labels = labels.find('(').map_or(labels, |p| &labels[..p]);
            let names: Vec<&str> = labels
                .split(';')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                continue;
            }
            let share = 1.0 / names.len() as f64;
            for name in names {
                let label = map_label(name).ok_or_else(|| {
                    bad(format!(
                        "unknown IEMOCAP label {name:?} (known: {}, Other)",
                        IEMOCAP_LABELS.map(|(n, _)| n).join(", ")
                    ))
                })?;
                match turn.votes.iter_mut().find(|(l, _)| l == label) {
                    Some(v) => v.1 += share,
                    None => turn.votes.push((label.to_string(), share)),
                }
            }
            turn.n_evaluations += 1;
        } else if trimmed.starts_with("A-") {
            if turns.is_empty() {
                return Err(bad("evaluation line before any turn header".into()));
            }
        } else {
            return Err(bad(format!(
                "unrecognised line {trimmed:?} (expected a `[start - end]` turn header, a `C-` \
                 or `A-` evaluation, a `%` comment or a blank line)"
            )));
        }
    }
    Ok(turns)
}

/// `[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`.
fn parse_header(line: &str, session: &str, line_no: usize) -> Result<IemocapTurn, String> {
    let expected = "expected `[START - END]<TAB>TURN<TAB>EMOTION<TAB>[V, A, D]`";
    let fields: Vec<&str> = line
        .split('\t')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    let [times, turn, consensus, vad] = fields[..] else {
        return Err(format!(
            "turn header has {} tab-separated field(s); {expected}",
            fields.len()
        ));
    };
    let inner = |s: &str, what: &str| {
        s.strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .map(str::to_string)
            .ok_or_else(|| format!("{what} {s:?} is not in brackets; {expected}"))
    };
    let number = |s: &str, what: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("{what} {s:?} is not a number"))
    };
    let times = inner(times, "time span")?;
    let (start, end) = times
        .split_once(" - ")
        .ok_or_else(|| format!("time span [{times}] is not `[START - END]`"))?;
    let vad = inner(vad, "V, A, D")?;
    let vad: Vec<&str> = vad.split(',').collect();
    let [v, a, d] = vad[..] else {
        return Err(format!("[V, A, D] has {} value(s), expected 3", vad.len()));
    };
    if turn.contains(['/', '\\']) {
        return Err(format!("turn name {turn:?} contains a path separator"));
    }
    Ok(IemocapTurn {
        turn: turn.to_string(),
        session: session.to_string(),
        line: line_no,
        start_s: number(start, "start time")?,
        end_s: number(end, "end time")?,
        consensus: consensus.to_string(),
        votes: Vec::new(),
        n_evaluations: 0,
        valence: number(v, "valence")?,
        arousal: number(a, "activation")?,
        dominance: number(d, "dominance")?,
    })
}

/// Every turn under `root` (`Session*/dialog/EmoEvaluation/*.txt`, sessions
/// and files in name order).
pub fn read_root(root: &Path, include_self: bool) -> Result<Vec<IemocapTurn>, IemocapError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| IemocapError::Io { path, source }
    };
    let mut sessions: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .map_err(io(root))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let dir = e.path().join("dialog/EmoEvaluation");
            (name.starts_with("Session") && dir.is_dir()).then_some((name, dir))
        })
        .collect();
    sessions.sort();
    let mut turns = Vec::new();
    let mut n_files = 0;
    for (session, dir) in sessions {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension().is_some_and(|x| x == "txt")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(io(&file))?;
            n_files += 1;
            turns.extend(parse_evaluation(
                &text,
                &file.display().to_string(),
                &session,
                include_self,
            )?);
        }
    }
    if n_files == 0 {
        return Err(IemocapError::NoFiles {
            root: root.display().to_string(),
        });
    }
    Ok(turns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\
        \n\
        [1.0000 - 2.5000]\tSes09F_impro01_F000\tfru\t[2.0000, 3.5000, 3.0000]\n\
        C-E1:\tFrustration; Anger;\t()\n\
        C-E2:\tFrustration;\t(annoyed)\n\
        C-F1:\tNeutral state;\t()\n\
        A-E1:\tval 2; act 4; dom  3;\t()\n\
        \n\
        [3.0000 - 4.0000]\tSes09F_impro01_M000\txxx\t[3.0000, 3.0000, 3.0000]\n\
        C-E1:\tOther:curious;\t()\n";

    #[test]
    fn votes_split_per_evaluator() {
        let turns = parse_evaluation(FILE, "f.txt", "Session9", true).unwrap();
        assert_eq!(turns.len(), 2);
        let t = &turns[0];
        assert_eq!(t.line, 3);
        assert_eq!(
            t.votes,
            vec![
                ("frustration".to_string(), 1.5),
                ("angry".to_string(), 0.5),
                ("neutral".to_string(), 1.0)
            ]
        );
        assert_eq!(t.n_evaluations, 3);
        assert_eq!((t.valence, t.arousal, t.dominance), (2.0, 3.5, 3.0));
        assert_eq!(t.dialog(), "Ses09F_impro01");
        assert_eq!(turns[1].speaker(), "Ses09M");
        assert_eq!(turns[1].votes, vec![("other".to_string(), 1.0)]);
        let no_self = parse_evaluation(FILE, "f.txt", "Session9", false).unwrap();
        assert_eq!(no_self[0].n_evaluations, 2);
        assert!(no_self[0].votes.iter().all(|(l, _)| l != "neutral"));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse_evaluation("C-E1:\tAnger;\t()\n", "f.txt", "S", true)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f.txt:1: evaluation line before"), "{e}");
        let text = FILE.replace("Frustration;\t(annoyed)", "Grumpy;\t()");
        let e = parse_evaluation(&text, "f.txt", "S", true)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("f.txt:5: unknown IEMOCAP label \"Grumpy\""),
            "{e}"
        );
        let text = FILE.replace("[2.0000, 3.5000, 3.0000]", "[2.0000, 3.5000]");
        let e = parse_evaluation(&text, "f.txt", "S", true)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f.txt:3: [V, A, D] has 2 value(s)"), "{e}");
    }
}
