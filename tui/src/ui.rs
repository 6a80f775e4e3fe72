//! Layout: where each panel goes for a given terminal size.
//!
//! From the minimum (80×24) up, the screen is a header line, Now | Rolling side by
//! side, the Timeline taking the remaining height, Voice | Health, and a key-hint
//! footer. Below the minimum the dashboard says so instead of drawing a garbled layout.
//!
//! A session that tracks speakers gets one Now | Rolling pair per speaker, stacked as
//! far as the height allows, starting with the speaker in focus (`s` cycles it); at
//! 80×24 that is the focused speaker's pair alone.

use ratatui::{
    Frame,
    buffer::Buffer,
    layout::{Constraint, Flex, Layout, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Paragraph, Widget, Wrap},
};

use crate::app::App;
use crate::palette::{self, Palette};
use crate::view::{ViewState, clock};
use crate::widgets::{HealthPanel, HelpOverlay, NowPanel, RollingPanel, TimelinePanel, VoicePanel};

/// Smallest width the dashboard lays out.
pub const MIN_WIDTH: u16 = 80;
/// Smallest height the dashboard lays out (grows with very large label sets).
pub const MIN_HEIGHT: u16 = 24;

/// Height needed for `labels` labels: header, bar panels, 3-row timeline, Voice/Health, footer.
pub fn min_height(labels: usize) -> u16 {
    let bars = labels as u16 + 4;
    (1 + bars + 3 + 6 + 1).max(MIN_HEIGHT)
}

/// Draws the whole dashboard into a frame.
pub fn draw(frame: &mut Frame, app: &App) {
    render(app, frame.area(), frame.buffer_mut());
}

/// Draws the whole dashboard into a buffer region (what [`draw`] and tests use).
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let view = &app.view;
    let need_h = min_height(view.labels.len());
    if area.width < MIN_WIDTH || area.height < need_h {
        too_small(area, buf, need_h);
        return;
    }
    let palette = Palette::new(&view.labels);
    let bars_h = view.labels.len() as u16 + 4;
    let pairs = if view.speakers.is_empty() {
        1
    } else {
        (1 + (area.height - need_h) / bars_h).min(view.speakers.len() as u16)
    };
    let [header, top, timeline, bottom, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(bars_h * pairs),
        Constraint::Min(3),
        Constraint::Length(6),
        Constraint::Length(1),
    ])
    .areas(area);
    let [voice, health] =
        Layout::horizontal([Constraint::Percentage(52), Constraint::Percentage(48)]).areas(bottom);

    header_line(app).render(header, buf);
    let rows = Layout::vertical(vec![Constraint::Length(bars_h); pairs as usize]).split(top);
    for (k, row) in rows.iter().enumerate() {
        let [now, rolling] =
            Layout::horizontal([Constraint::Percentage(52), Constraint::Percentage(48)])
                .areas(*row);
        // A speaker's pair is drawn from a view holding only that speaker's data.
        let track_view;
        let shown = match view.speakers.len() {
            0 => view,
            n => {
                let track = &view.speakers[(app.speaker_focus + k) % n];
                track_view = ViewState {
                    labels: view.labels.clone(),
                    session_s: view.session_s,
                    latest: track.latest.clone(),
                    rolling: track.rolling.clone(),
                    ..ViewState::default()
                };
                &track_view
            }
        };
        NowPanel {
            view: shown,
            palette: &palette,
        }
        .render(now, buf);
        RollingPanel {
            view: shown,
            window: app.window,
            palette: &palette,
        }
        .render(rolling, buf);
    }
    TimelinePanel {
        view,
        palette: &palette,
    }
    .render(timeline, buf);
    VoicePanel { view }.render(voice, buf);
    HealthPanel { view }.render(health, buf);
    footer_line(app).render(footer, buf);
    if app.show_help {
        HelpOverlay {
            labels: &view.labels,
            palette: &palette,
        }
        .render(area, buf);
    }
}

/// Title, source, clock, state (PAUSED / LOG ENDED), the server when scoring is
/// remote, and a loss warning.
fn header_line(app: &App) -> Line<'static> {
    let view = &app.view;
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut spans = vec![
        Span::styled(" emomon ", bold.add_modifier(Modifier::REVERSED)),
        Span::raw(format!(" {} · {} ", view.source, clock(view.session_s))),
    ];
    if view.paused {
        spans.push(Span::styled(
            " ⏸ PAUSED ",
            bold.add_modifier(Modifier::REVERSED),
        ));
    } else if view.finished {
        spans.push(Span::styled(
            " ■ LOG ENDED · q to quit ",
            bold.add_modifier(Modifier::REVERSED),
        ));
    } else if view.is_replay {
        spans.push(Span::styled(" ▶ PLAYING ", bold));
    } else {
        spans.push(Span::styled(" ● LIVE ", bold));
    }
    let h = &view.health;
    if h.dropped_samples > 0 || h.skipped_utterances > 0 {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(
            " ⚠ AUDIO OR UTTERANCES LOST (see Health) ",
            palette::warning(),
        ));
    }
    // Audio leaves the machine only with remote scoring: then the header says where
    // (after a loss warning, which must never be pushed off a narrow terminal).
    if h.device.starts_with("remote:") {
        spans.push(Span::styled(format!(" ⇄ {} ", h.device), bold));
    }
    Line::from(spans)
}

/// Key hints, or the driver's notice when there is one.
fn footer_line(app: &App) -> Line<'static> {
    // A notice matters more than the full key list (which `?` shows anyway).
    let hints = match (&app.view.notice, app.view.speakers.len() > 1) {
        (Some(_), _) => " q quit · ? help ",
        (None, true) => " q quit · space pause · m marker · w window · s speaker · ? help ",
        (None, false) => " q quit · space pause · m marker · w window · ? help ",
    };
    let mut spans = vec![Span::styled(hints, palette::dim())];
    if let Some(n) = &app.view.notice {
        spans.push(Span::styled(
            format!("│ {n} "),
            Style::default().add_modifier(Modifier::BOLD),
        ));
    }
    Line::from(spans)
}

/// The message shown below the minimum size.
fn too_small(area: Rect, buf: &mut Buffer, need_h: u16) {
    let text = vec![
        Line::styled(
            "Terminal too small",
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Line::raw(format!(
            "{}×{} here; emomon needs at least {}×{}.",
            area.width, area.height, MIN_WIDTH, need_h
        )),
        Line::raw("Enlarge the window or reduce the font size. q quits."),
    ];
    let h = 3.min(area.height);
    let [mid] = Layout::vertical([Constraint::Length(h)])
        .flex(Flex::Center)
        .areas(area);
    Paragraph::new(text)
        .centered()
        .wrap(Wrap { trim: true })
        .render(mid, buf);
}
