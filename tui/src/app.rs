//! Dashboard state beyond the data: selected window, help, quit; and key handling.
//!
//! Key handling only changes this state and queues [`Command`]s for whoever drives
//! the dashboard (pause the microphone, write a marker to the log), so it is testable
//! without a terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::view::{Marker, RollingWindow, ViewState};

/// A request from the user to the driver (live pipeline or replay).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Pause (`true`) or resume (`false`) listening / playback.
    SetPaused(bool),
    /// The user added a marker at this session time; the live driver logs it.
    Marker(Marker),
    /// The user asked to quit.
    Quit,
}

/// The dashboard: a view state plus UI state.
#[derive(Debug, Clone)]
pub struct App {
    /// The data shown.
    pub view: ViewState,
    /// Rolling window shown in the Rolling panel.
    pub window: RollingWindow,
    /// Help overlay visible.
    pub show_help: bool,
    /// The user asked to quit; the loop ends after this frame.
    pub should_quit: bool,
    /// Index into [`ViewState::speakers`] of the speaker in focus (`s` cycles it): the
    /// pair shown first, or the only one on a small terminal.
    pub speaker_focus: usize,
    commands: Vec<Command>,
}

impl App {
    /// A dashboard over `view`.
    pub fn new(view: ViewState) -> Self {
        Self {
            view,
            window: RollingWindow::default(),
            show_help: false,
            should_quit: false,
            speaker_focus: 0,
            commands: Vec::new(),
        }
    }

    /// Commands queued since the last call, oldest first.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// Applies one key press. Key releases and repeats of non-idempotent keys are ignored.
    pub fn handle_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => self.quit(),
            KeyCode::Char('q') | KeyCode::Char('Q') => self.quit(),
            KeyCode::Esc if self.show_help => self.show_help = false,
            KeyCode::Char('?') | KeyCode::F(1) => self.show_help = !self.show_help,
            KeyCode::Char(' ') if key.kind == KeyEventKind::Press => {
                self.view.paused = !self.view.paused;
                self.commands.push(Command::SetPaused(self.view.paused));
            }
            KeyCode::Char('m') | KeyCode::Char('M') if key.kind == KeyEventKind::Press => {
                let marker = Marker {
                    at_s: self.view.session_s,
                    note: None,
                };
                self.view.markers.push(marker.clone());
                self.commands.push(Command::Marker(marker));
            }
            KeyCode::Char('s') | KeyCode::Char('S') if key.kind == KeyEventKind::Press => {
                let n = self.view.speakers.len();
                if n > 0 {
                    self.speaker_focus = (self.speaker_focus + 1) % n;
                }
            }
            KeyCode::Char('w') | KeyCode::Char('W') | KeyCode::Tab => {
                self.window = self.window.next(self.view.rolling.windows.len())
            }
            _ => {}
        }
    }

    fn quit(&mut self) {
        if !self.should_quit {
            self.should_quit = true;
            self.commands.push(Command::Quit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(app: &mut App, code: KeyCode) {
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    fn app() -> App {
        App::new(ViewState::new(vec!["neutral".into(), "sad".into()]))
    }

    #[test]
    fn q_quits_once() {
        let mut a = app();
        press(&mut a, KeyCode::Char('q'));
        press(&mut a, KeyCode::Char('q'));
        assert!(a.should_quit);
        assert_eq!(a.take_commands(), vec![Command::Quit]);
    }

    #[test]
    fn ctrl_c_quits() {
        let mut a = app();
        a.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(a.should_quit);
    }

    #[test]
    fn plain_c_does_not_quit() {
        let mut a = app();
        press(&mut a, KeyCode::Char('c'));
        assert!(!a.should_quit);
    }

    #[test]
    fn space_toggles_pause_and_tells_driver() {
        let mut a = app();
        press(&mut a, KeyCode::Char(' '));
        assert!(a.view.paused);
        press(&mut a, KeyCode::Char(' '));
        assert!(!a.view.paused);
        assert_eq!(
            a.take_commands(),
            vec![Command::SetPaused(true), Command::SetPaused(false)]
        );
        assert!(a.take_commands().is_empty());
    }

    #[test]
    fn m_adds_marker_at_session_time() {
        let mut a = app();
        a.view.session_s = 42.5;
        press(&mut a, KeyCode::Char('m'));
        assert_eq!(a.view.markers.len(), 1);
        assert_eq!(a.view.markers[0].at_s, 42.5);
        assert!(matches!(a.take_commands().as_slice(), [Command::Marker(m)] if m.at_s == 42.5));
    }

    #[test]
    fn w_cycles_windows() {
        let mut a = app();
        a.view.rolling = crate::view::Rolling::empty(&Default::default());
        assert_eq!(a.window, RollingWindow::Decayed);
        press(&mut a, KeyCode::Char('w'));
        assert_eq!(a.window, RollingWindow::Trailing(0));
        press(&mut a, KeyCode::Char('w'));
        assert_eq!(a.window, RollingWindow::Trailing(1));
        press(&mut a, KeyCode::Char('w'));
        assert_eq!(a.window, RollingWindow::Session);
        press(&mut a, KeyCode::Char('w'));
        assert_eq!(a.window, RollingWindow::Decayed);
    }

    #[test]
    fn help_toggles_and_esc_closes() {
        let mut a = app();
        press(&mut a, KeyCode::Char('?'));
        assert!(a.show_help);
        press(&mut a, KeyCode::Char('?'));
        assert!(!a.show_help);
        press(&mut a, KeyCode::Char('?'));
        press(&mut a, KeyCode::Esc);
        assert!(!a.show_help);
        assert!(!a.should_quit);
    }

    #[test]
    fn releases_are_ignored() {
        let mut a = app();
        let mut k = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        k.kind = KeyEventKind::Release;
        a.handle_key(k);
        assert!(!a.should_quit);
    }
}
