//! One colour and one letter per label, used by every widget.
//!
//! Colour helps at a glance from across a room, but never carries meaning alone:
//! each label also has a unique capital letter drawn into bars and the timeline, and
//! its name is written wherever there is room.

use ratatui::style::{Color, Modifier, Style};

/// Colours for the default label set; other labels get the fallback cycle.
fn known_colour(label: &str) -> Option<Color> {
    Some(match label.to_ascii_lowercase().as_str() {
        "neutral" | "calm" => Color::Gray,
        "happy" | "joy" | "happiness" => Color::Yellow,
        "sad" | "sadness" => Color::Blue,
        "angry" | "anger" => Color::Red,
        "fear" | "fearful" => Color::Magenta,
        "disgust" | "disgusted" => Color::Green,
        "surprise" | "surprised" => Color::Cyan,
        _ => return None,
    })
}

const FALLBACK: [Color; 6] = [
    Color::LightBlue,
    Color::LightYellow,
    Color::LightMagenta,
    Color::LightGreen,
    Color::LightCyan,
    Color::LightRed,
];

/// Per-label colour and letter, built once from the label set.
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    colours: Vec<Color>,
    letters: Vec<char>,
}

impl Palette {
    /// Assigns colours and unique letters: the label's first letter if free, else its
    /// next unused letter, else a digit.
    pub fn new(labels: &[String]) -> Self {
        let mut letters: Vec<char> = Vec::with_capacity(labels.len());
        for (i, label) in labels.iter().enumerate() {
            let candidate = label
                .chars()
                .filter(|c| c.is_alphanumeric())
                .map(|c| c.to_ascii_uppercase())
                .find(|c| !letters.contains(c))
                .or_else(|| ('1'..='9').chain('a'..='z').find(|c| !letters.contains(c)))
                .unwrap_or(char::from_digit((i % 10) as u32, 10).unwrap_or('?'));
            letters.push(candidate);
        }
        let mut fallback = FALLBACK.iter().cycle();
        let colours = labels
            .iter()
            .map(|l| known_colour(l).unwrap_or_else(|| *fallback.next().unwrap_or(&Color::White)))
            .collect();
        Self { colours, letters }
    }

    /// Colour of label `i`.
    pub fn colour(&self, i: usize) -> Color {
        self.colours.get(i).copied().unwrap_or(Color::White)
    }

    /// Letter of label `i`.
    pub fn letter(&self, i: usize) -> char {
        self.letters.get(i).copied().unwrap_or('?')
    }

    /// Foreground style for label `i`.
    pub fn fg(&self, i: usize) -> Style {
        Style::default().fg(self.colour(i))
    }

    /// Filled-cell style for label `i` (letter on colour, bold for legibility).
    pub fn block(&self, i: usize) -> Style {
        Style::default()
            .fg(Color::Black)
            .bg(self.colour(i))
            .add_modifier(Modifier::BOLD)
    }
}

/// Style for warnings: reversed and bold, so it stands out in monochrome too.
pub fn warning() -> Style {
    Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD | Modifier::REVERSED)
}

/// Style for secondary text.
pub fn dim() -> Style {
    Style::default().fg(Color::DarkGray)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_unique_for_default_labels() {
        let labels: Vec<String> = [
            "neutral", "happy", "sad", "angry", "fear", "disgust", "surprise",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = Palette::new(&labels);
        let letters: String = (0..labels.len()).map(|i| p.letter(i)).collect();
        assert_eq!(letters, "NHSAFDU");
    }
}
