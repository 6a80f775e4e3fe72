//! Snapshot tests: the dashboard rendered into a ratatui buffer, compared as text.
//!
//! Review changes with `cargo insta review` (or `INSTA_UPDATE=always cargo test -p
//! emomon-tui` and read the diff of `tests/snapshots/`).

use emomon_tui::view::{Aggregator, AggregatorConfig};
use emomon_tui::{
    App, Health, ProsodyView, Rolling, RollingWindow, UtteranceView, VadState, ViewState,
    app::Command, ui,
};
use ratatui::{Terminal, backend::TestBackend, buffer::Buffer, layout::Rect, style::Modifier};

const LABELS: [&str; 7] = [
    "neutral", "happy", "sad", "angry", "fear", "disgust", "surprise",
];

fn labels() -> Vec<String> {
    LABELS.iter().map(|s| s.to_string()).collect()
}

fn base_view() -> ViewState {
    let mut v = ViewState::new(labels());
    v.rolling = Rolling::empty(&AggregatorConfig::default());
    v.source = "replay sample.jsonl ×1".into();
    v.is_replay = true;
    v.health = Health {
        model: "qwen2-audio-7b-instruct".into(),
        device: "cpu".into(),
        ..Health::default()
    };
    v
}

/// Softmax of fixed logits, so fixtures are exact and readable.
fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|z| (z - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

fn one_utterance_view() -> ViewState {
    let mut v = base_view();
    v.session_s = 6.0;
    // 60 % sad / 35 % neutral: must read as MIXED.
    let mut probs = vec![0.35, 0.01, 0.60, 0.01, 0.01, 0.01, 0.01];
    let s: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= s);
    let mut agg = Aggregator::new(labels(), AggregatorConfig::default()).expect("config");
    push(
        &mut v,
        &mut agg,
        UtteranceView {
            id: 1,
            start_s: 1.2,
            end_s: 4.8,
            probs,
            method: "first-token".into(),
            speaker: None,
        },
    );
    v.rolling = Rolling::from_aggregator(&agg, v.session_s);
    v.voice.prosody = Some(ProsodyView {
        f0_median_hz: Some(172.0),
        f0_range_hz: Some(64.0),
        voiced_fraction: 0.68,
        energy_db_mean: Some(-24.0),
        energy_db_var: Some(16.0),
        speaking_rate_syll_s: Some(3.9),
        pause_ratio: Some(0.12),
    });
    v.health.latency_last_ms = Some(412.0);
    v.health.latency_p50_ms = Some(412.0);
    v.health.latency_p95_ms = Some(412.0);
    v.health.real_time_factor = Some(0.11);
    v
}

/// What a driver does with a scored utterance: the aggregator first, then the view.
fn push(v: &mut ViewState, agg: &mut Aggregator, u: UtteranceView) {
    agg.push(u.start_s, u.end_s, &u.probs)
        .expect("valid utterance");
    v.push_utterance(u);
}

/// A deterministic ~4-minute session drifting neutral → happy → sad/neutral → angry → mixed.
fn long_session_view() -> ViewState {
    long_session_view_with(AggregatorConfig::default())
}

fn long_session_view_with(config: AggregatorConfig) -> ViewState {
    let mut v = base_view();
    let mut agg = Aggregator::new(labels(), config).expect("config");
    let phases: [[f32; 7]; 5] = [
        [3.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.5],
        [1.5, 3.2, 0.0, 0.0, 0.0, 0.0, 1.5],
        [2.4, 0.0, 2.8, 0.3, 0.8, 0.0, 0.0],
        [1.0, 0.0, 0.8, 3.3, 0.8, 1.4, 0.4],
        [1.8, 0.6, 1.6, 0.4, 1.9, 0.2, 1.2],
    ];
    let mut t = 0.8;
    let mut lat = Vec::new();
    for id in 1..=60u64 {
        let phase = phases[((id - 1) / 12) as usize];
        // Deterministic wobble, different per label and utterance.
        let logits: Vec<f32> = phase
            .iter()
            .enumerate()
            .map(|(k, z)| z + 0.6 * (((id * 7 + k as u64 * 13) % 11) as f32 / 10.0 - 0.5))
            .collect();
        let dur = 1.4 + ((id * 5) % 7) as f64 * 0.45;
        v.session_s = t + dur + 0.5;
        push(
            &mut v,
            &mut agg,
            UtteranceView {
                id,
                start_s: t,
                end_s: t + dur,
                probs: softmax(&logits),
                method: "first-token".into(),
                speaker: None,
            },
        );
        lat.push(300.0 + ((id * 37) % 200) as f64);
        t += dur + 1.1 + ((id * 3) % 5) as f64 * 0.3;
    }
    v.markers.push(emomon_tui::Marker {
        at_s: 40.0,
        note: None,
    });
    v.markers.push(emomon_tui::Marker {
        at_s: 150.0,
        note: None,
    });
    v.session_s = t;
    v.rolling = Rolling::from_aggregator(&agg, t);
    v.voice.vad = VadState::Speech;
    v.voice.speech_s = 1.6;
    v.voice.level_db = Some(-21.0);
    v.voice.prosody = one_utterance_view().voice.prosody;
    v.health.latency_last_ms = lat.last().copied();
    v.health.latency_p50_ms = Some(398.0);
    v.health.latency_p95_ms = Some(489.0);
    v.health.queue_depth = 1;
    v.health.real_time_factor = Some(0.14);
    v
}

/// Renders the app into a `w`×`h` buffer through a `TestBackend` terminal, as the real loop does.
fn render(app: &App, w: u16, h: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    terminal.draw(|f| ui::draw(f, app)).expect("draw");
    terminal.backend().buffer().clone()
}

/// Buffer text, one line per row, trailing spaces trimmed.
fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn snap(app: &App, w: u16, h: u16) -> String {
    text(&render(app, w, h))
}

#[test]
fn empty_session() {
    let app = App::new(base_view());
    let s = snap(&app, 80, 24);
    assert!(s.contains("Waiting for the first utterance"));
    insta::assert_snapshot!(s);
}

#[test]
fn one_utterance() {
    let app = App::new(one_utterance_view());
    let s = snap(&app, 80, 24);
    assert!(s.contains("60%") && s.contains("35%"), "{s}");
    assert!(s.contains("MIXED"), "60/35 must read as mixed:\n{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn long_mixed_session_80x24() {
    insta::assert_snapshot!(snap(&App::new(long_session_view()), 80, 24));
}

#[test]
fn long_mixed_session_100x30() {
    let s = snap(&App::new(long_session_view()), 100, 30);
    assert!(s.contains("▲"), "markers drawn:\n{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn long_mixed_session_two_minute_window() {
    let mut app = App::new(long_session_view());
    app.window = RollingWindow::Trailing(1);
    let s = snap(&app, 100, 30);
    assert!(s.contains("[2 min]"));
    insta::assert_snapshot!(s);
}

/// `--half-life` reaches the screen: the decayed panel of the same session differs
/// with the half-life, and says which one it uses.
#[test]
fn half_life_changes_the_decayed_panel() {
    let short = AggregatorConfig {
        half_life_s: 5.0,
        ..AggregatorConfig::default()
    };
    let long = AggregatorConfig {
        half_life_s: 600.0,
        ..AggregatorConfig::default()
    };
    let (a, b) = (
        snap(&App::new(long_session_view_with(short)), 100, 30),
        snap(&App::new(long_session_view_with(long)), 100, 30),
    );
    assert!(
        a.contains("[decayed]") && a.contains("half-life 5 s"),
        "{a}"
    );
    assert!(b.contains("half-life 10 min"), "{b}");
    let rolling_rows = |s: &str| -> Vec<String> {
        s.lines()
            .skip(2)
            .take(7)
            .map(|l| l.chars().skip(51).collect())
            .collect()
    };
    assert_ne!(rolling_rows(&a), rolling_rows(&b));
}

#[test]
fn tiny_terminal_says_so() {
    let s = snap(&App::new(long_session_view()), 60, 20);
    assert!(s.contains("Terminal too small"), "{s}");
    assert!(s.contains("60×20"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn very_tiny_terminal_does_not_panic() {
    for (w, h) in [(1, 1), (10, 2), (79, 24), (80, 23), (0, 0)] {
        let _ = snap(&App::new(long_session_view()), w.max(1), h.max(1));
    }
}

#[test]
fn huge_terminal() {
    let s = snap(&App::new(long_session_view()), 200, 60);
    assert!(
        s.contains("60 of 60 utterances"),
        "the whole session fits:\n{s}"
    );
    insta::assert_snapshot!(s);
}

#[test]
fn paused() {
    let mut app = App::new(one_utterance_view());
    app.handle_key(crossterm::event::KeyEvent::from(
        crossterm::event::KeyCode::Char(' '),
    ));
    assert_eq!(app.take_commands(), vec![Command::SetPaused(true)]);
    let s = snap(&app, 100, 30);
    assert!(s.contains("PAUSED"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn dropped_audio_warning() {
    let mut view = long_session_view();
    view.health.dropped_samples = 4800;
    view.health.skipped_utterances = 2;
    let app = App::new(view);
    let buf = render(&app, 100, 30);
    let s = text(&buf);
    assert!(s.contains("⚠ DROPPED 4800 samples"), "{s}");
    assert!(s.contains("⚠ SKIPPED 2 utt"), "{s}");
    assert!(s.contains("LOST"), "header warns too:\n{s}");
    // The warning does not rely on colour: it is reversed (and has a ⚠ and words).
    let (x, y) = find(&buf, "⚠ DROPPED").expect("warning cell");
    assert!(buf[(x, y)].modifier.contains(Modifier::REVERSED));
    insta::assert_snapshot!(s);
}

#[test]
fn help_overlay() {
    let mut app = App::new(long_session_view());
    app.show_help = true;
    let s = snap(&app, 100, 30);
    assert!(s.contains("Keys") && s.contains("S sad"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn finished_replay_with_notice() {
    let mut view = long_session_view();
    view.finished = true;
    view.notice = Some("log: line 61: truncated last line".into());
    let s = snap(&App::new(view), 100, 30);
    assert!(s.contains("LOG ENDED"), "{s}");
    assert!(s.contains("truncated last line"), "{s}");
}

#[test]
fn label_letters_carry_meaning_without_colour() {
    // Every label's letter appears next to its name in the Now panel.
    let s = snap(&App::new(one_utterance_view()), 80, 24);
    for (name, letter) in [("neutral", 'N'), ("sad", 'S'), ("surprise", 'U')] {
        assert!(
            s.lines()
                .any(|l| l.contains(&format!("{name} ")) && l.contains(&format!(" {letter} "))),
            "{name}/{letter}:\n{s}"
        );
    }
}

/// Position of the first cell where `needle` starts on a row.
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    let area: Rect = buf.area;
    for y in 0..area.height {
        let mut row = String::new();
        let mut xs = Vec::new();
        for x in 0..area.width {
            xs.push((row.len(), x));
            row.push_str(buf[(x, y)].symbol());
        }
        if let Some(byte) = row.find(needle) {
            let x = xs.iter().rev().find(|(b, _)| *b <= byte).map(|(_, x)| *x)?;
            return Some((x, y));
        }
    }
    None
}

#[test]
fn label_colours_are_consistent_everywhere() {
    // Every letter cell drawn on a label colour (bars, timeline, legend) uses that
    // label's one colour, in every panel.
    let mut app = App::new(long_session_view());
    app.show_help = true;
    let buf = render(&app, 120, 40);
    let palette = emomon_tui::palette::Palette::new(&app.view.labels);
    let mut seen = std::collections::BTreeMap::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let cell = &buf[(x, y)];
            let Some(i) =
                (0..LABELS.len()).find(|&i| cell.symbol() == palette.letter(i).to_string())
            else {
                continue;
            };
            if cell.bg != ratatui::style::Color::Reset {
                assert_eq!(
                    cell.bg,
                    palette.colour(i),
                    "cell ({x},{y}) letter {}",
                    cell.symbol()
                );
                *seen.entry(i).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(
        seen.len(),
        LABELS.len(),
        "every label drawn with its colour: {seen:?}"
    );
}

#[test]
fn remote_scoring_is_named_in_the_header() {
    let mut view = long_session_view();
    view.health.device = "remote: gpu.lab:8000".into();
    let header = |view: &ViewState, width| {
        let s = text(&render(&App::new(view.clone()), width, 30));
        s.lines().next().unwrap_or_default().to_string()
    };
    assert!(
        header(&view, 100).contains("⇄ remote: gpu.lab:8000"),
        "{}",
        header(&view, 100)
    );
    // With losses the warning comes first; a wide terminal shows both.
    view.health.skipped_utterances = 3;
    assert!(
        header(&view, 100).contains("LOST"),
        "{}",
        header(&view, 100)
    );
    let wide = header(&view, 140);
    assert!(
        wide.contains("LOST") && wide.contains("⇄ remote: gpu.lab:8000"),
        "{wide}"
    );
}

/// Issue 17: a therapist (calm, neutral) and a client (sad) alternate; each has an
/// aggregator of their own, as the driver keeps them.
fn two_speaker_view() -> ViewState {
    let mut v = base_view();
    let mut all = Aggregator::new(labels(), AggregatorConfig::default()).expect("config");
    let mut tracks = [
        Aggregator::new(labels(), AggregatorConfig::default()).expect("config"),
        Aggregator::new(labels(), AggregatorConfig::default()).expect("config"),
    ];
    let mut t = 0.5;
    for id in 1..=16u64 {
        let who = usize::from(id % 4 >= 2);
        let logits: [f32; 7] = if who == 0 {
            [3.0, 0.8, 0.2, 0.0, 0.0, 0.0, 0.3]
        } else {
            [1.0, 0.0, 3.2, 0.4, 1.2, 0.0, 0.0]
        };
        let dur = 1.5 + (id % 3) as f64;
        let u = UtteranceView {
            id,
            start_s: t,
            end_s: t + dur,
            probs: softmax(&logits),
            method: "first-token".into(),
            speaker: Some(["S1", "S2"][who].into()),
        };
        tracks[who]
            .push(u.start_s, u.end_s, &u.probs)
            .expect("valid");
        push(&mut v, &mut all, u);
        t += dur + 0.8;
    }
    v.session_s = t;
    v.rolling = Rolling::from_aggregator(&all, t);
    for (track, agg) in v.speakers.iter_mut().zip(&tracks) {
        track.rolling = Rolling::from_aggregator(agg, t);
    }
    v
}

#[test]
fn two_speakers_80x24_show_the_focused_pair_and_a_speaker_row() {
    let mut app = App::new(two_speaker_view());
    assert_eq!(
        app.view
            .speakers
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["S1", "S2"]
    );
    let first = snap(&app, 80, 24);
    assert!(first.contains("S1 · Now"), "{first}");
    assert!(
        first.contains("speaker") && first.contains("1122"),
        "{first}"
    );
    assert!(first.contains("s speaker"), "{first}");
    insta::assert_snapshot!("two_speakers_80x24_focus_s1", first);
    // `s` moves the focus to S2: its own Now and Rolling, nothing of S1's.
    app.handle_key(crossterm::event::KeyEvent::from(
        crossterm::event::KeyCode::Char('s'),
    ));
    let second = snap(&app, 80, 24);
    assert!(
        second.contains("S2 · Now") && !second.contains("S1 · Now"),
        "{second}"
    );
    assert_ne!(first, second);
    insta::assert_snapshot!("two_speakers_80x24_focus_s2", second);
    app.handle_key(crossterm::event::KeyEvent::from(
        crossterm::event::KeyCode::Char('s'),
    ));
    assert_eq!(app.speaker_focus, 0);
}

#[test]
fn two_speakers_on_a_tall_terminal_show_both_pairs() {
    let s = snap(&App::new(two_speaker_view()), 100, 40);
    assert!(s.contains("S1 · Now") && s.contains("S2 · Now"), "{s}");
    insta::assert_snapshot!("two_speakers_100x40", s);
}
