//! Valence/arousal coordinates of emotion labels, for projecting a predicted
//! distribution onto the two axes of the circumplex (Russell 1980) and
//! correlating it with dimensional annotations.
//!
//! # Source
//!
//! The coordinates are the human ratings of the label *words* themselves from
//! the **Glasgow Norms**: Scott, G. G., Keitel, A., Becirspahic, M., Yao, B. &
//! Sereno, S. C. (2019). *The Glasgow Norms: Ratings of 5,500 words on nine
//! scales.* Behavior Research Methods 51(3), 1258–1270,
//! doi:10.3758/s13428-018-1099-3. The article is open access under the
//! Creative Commons Attribution licence (CC BY 4.0; University of Glasgow
//! eprint 165799); the values are the `VAL` and `AROU` means (`M` columns) of
//! its supplementary file `13428_2018_1099_MOESM2_ESM.csv` (5,553 words, about
//! 33 raters per word). Each word was rated on 1–9 scales (valence: 1 =
//! unpleasant, 9 = pleasant; arousal: 1 = calm/unaroused, 9 = excited), which
//! [`coordinates`] maps linearly onto −1…+1 with `(x − 5) / 4`, the range the
//! shared manifest's `valence=`/`arousal=` values use.
//!
//! Why word ratings: they place each emotion term in the valence × arousal
//! plane by direct human judgement, as Russell (1980) did for 28 terms, but
//! the Glasgow set covers every label emomon and the common corpora use
//! (including `neutral`, `calm`, `boredom`, `frustration`, `contempt`) and its
//! licence allows redistribution with attribution. Earlier tables (ANEW,
//! Warriner et al. 2013, NRC-VAD) carry non-commercial or
//! research-only terms.
//!
//! Labels not in [`GLASGOW_VA`] (e.g. `other`) have no coordinates: the
//! projection leaves them out and the summary names them, rather than
//! guessing a position.

/// `(word, valence, arousal)` on the Glasgow Norms' 1–9 scales, exactly as
/// published (see the module documentation).
pub const GLASGOW_VA: [(&str, f64, f64); 27] = [
    ("neutral", 5.206, 4.000),
    ("happy", 8.242, 6.938),
    ("sad", 2.200, 3.941),
    ("angry", 2.394, 5.906),
    ("fear", 2.559, 5.171),
    ("disgust", 2.371, 4.514),
    ("surprise", 7.088, 7.353),
    ("calm", 7.343, 3.743),
    ("boredom", 2.429, 2.457),
    ("excited", 8.143, 7.882),
    ("frustration", 2.400, 5.114),
    ("contempt", 3.286, 4.714),
    ("anger", 2.529, 5.636),
    ("happiness", 8.571, 6.970),
    ("sadness", 1.849, 3.767),
    ("joy", 8.061, 6.941),
    ("fearful", 2.364, 6.323),
    ("afraid", 2.206, 5.514),
    ("disgusted", 2.029, 4.576),
    ("bored", 2.943, 2.469),
    ("frustrated", 2.576, 4.559),
    ("excitement", 8.294, 7.697),
    ("anxious", 2.657, 5.686),
    ("anxiety", 2.257, 5.265),
    ("content", 5.939, 3.968),
    ("tired", 3.406, 3.161),
    ("sleepy", 4.121, 2.697),
];

/// Citation printed with the projection results.
pub const SOURCE: &str = "Glasgow Norms (Scott et al. 2019, Behav. Res. Methods 51:1258-1270, \
doi:10.3758/s13428-018-1099-3, CC BY 4.0): word valence/arousal means, (x-5)/4";

/// A label's position in the valence × arousal plane, each in −1…+1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    /// Pleasantness: −1 unpleasant … +1 pleasant.
    pub valence: f64,
    /// Activation: −1 calm … +1 excited.
    pub arousal: f64,
}

/// The coordinates of `label` (trimmed, case-insensitive), or `None` when the
/// word is not in the table.
pub fn coordinates(label: &str) -> Option<Coordinates> {
    let key = label.trim().to_lowercase();
    GLASGOW_VA
        .iter()
        .find(|(w, _, _)| *w == key)
        .map(|&(_, v, a)| Coordinates {
            valence: (v - 5.0) / 4.0,
            arousal: (a - 5.0) / 4.0,
        })
}

/// One distribution projected onto both axes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    /// `Σ pₖ vₖ` over the labels with coordinates, `p` renormalised over them.
    pub valence: f64,
    /// `Σ pₖ aₖ`, likewise.
    pub arousal: f64,
    /// Probability that fell on labels without coordinates (left out).
    pub mass_without_coordinates: f64,
}

/// Projects `probs` over `labels` onto valence and arousal: the expected
/// coordinate under the distribution renormalised over the labels that have
/// coordinates. `None` when no probability falls on such a label (nothing to
/// project) or the inputs are inconsistent.
pub fn project(labels: &[String], probs: &[f64]) -> Option<Projection> {
    if labels.len() != probs.len() {
        return None;
    }
    let (mut mass, mut missing, mut v, mut a) = (0.0, 0.0, 0.0, 0.0);
    for (l, &p) in labels.iter().zip(probs) {
        if !(p.is_finite() && p >= 0.0) {
            return None;
        }
        match coordinates(l) {
            Some(c) => {
                mass += p;
                v += p * c.valence;
                a += p * c.arousal;
            }
            None => missing += p,
        }
    }
    if mass <= 0.0 {
        return None;
    }
    Some(Projection {
        valence: v / mass,
        arousal: a / mass,
        mass_without_coordinates: missing / (mass + missing),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn table_is_rescaled_and_case_insensitive() {
        let happy = coordinates(" Happy ").expect("happy");
        assert!((happy.valence - (8.242 - 5.0) / 4.0).abs() < 1e-12);
        assert!((happy.arousal - (6.938 - 5.0) / 4.0).abs() < 1e-12);
        assert_eq!(coordinates("other"), None);
        // Every built-in emomon label has coordinates.
        for l in [
            "neutral", "happy", "sad", "angry", "fear", "disgust", "boredom", "calm", "surprise",
        ] {
            assert!(coordinates(l).is_some(), "{l}");
        }
        // Circumplex sanity: happy pleasant, sad/angry unpleasant; angry more
        // aroused than sad, calm and boredom low arousal.
        let c = |l| coordinates(l).expect("in table");
        assert!(c("happy").valence > 0.5 && c("sad").valence < -0.5);
        assert!(c("angry").arousal > c("sad").arousal);
        assert!(c("calm").arousal < 0.0 && c("boredom").arousal < 0.0);
        for (w, v, a) in GLASGOW_VA {
            assert!((1.0..=9.0).contains(&v) && (1.0..=9.0).contains(&a), "{w}");
        }
    }

    #[test]
    fn projection_renormalises_over_labels_with_coordinates() {
        let l = labels(&["happy", "sad", "other"]);
        let p = project(&l, &[0.3, 0.3, 0.4]).expect("projects");
        let (h, s) = (coordinates("happy").unwrap(), coordinates("sad").unwrap());
        assert!((p.valence - (h.valence + s.valence) / 2.0).abs() < 1e-12);
        assert!((p.arousal - (h.arousal + s.arousal) / 2.0).abs() < 1e-12);
        assert!((p.mass_without_coordinates - 0.4).abs() < 1e-12);
        assert_eq!(project(&l, &[0.0, 0.0, 1.0]), None);
        assert_eq!(project(&l, &[0.5, 0.5]), None);
    }
}
