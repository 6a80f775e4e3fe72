//! The app loop: owns the terminal, redraws at a steady rate, feeds keys to the app.
//!
//! The loop is generic over a [`Source`] so the live pipeline and replay drive the same
//! dashboard. It never busy-waits: between frames it blocks in `crossterm::event::poll`
//! until the next frame is due or a key arrives. The terminal is restored on normal
//! exit, on error (drop guard) and on panic (ratatui's panic hook); Ctrl-C arrives as a
//! key in raw mode and quits like `q`.

use std::io;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event};
use ratatui::{Terminal, backend::Backend};

use crate::app::{App, Command};
use crate::ui;
use crate::view::ViewState;

/// Something that updates the view state: the live pipeline or a replayed log.
pub trait Source {
    /// Brings `view` up to date; called once per frame, must not block.
    fn update(&mut self, view: &mut ViewState);

    /// Handles a user command (pause, marker, quit). Default: ignore.
    fn command(&mut self, _command: &Command) {}
}

/// Loop options.
#[derive(Debug, Clone, Copy)]
pub struct LoopOptions {
    /// Frames per second (clamped to 1–60).
    pub fps: u32,
}

impl Default for LoopOptions {
    fn default() -> Self {
        Self { fps: 15 }
    }
}

/// Restores the terminal when dropped, so `?` on an I/O error still leaves a usable shell.
struct RestoreGuard;

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// The terminal, taken over for the dashboard, for drivers that run their own event
/// loop (`emomon run` reads keys from crossterm's async `EventStream` in a tokio loop
/// and draws on its own ticks). Restored when dropped, on error paths too; ratatui's
/// panic hook restores it on panic.
pub struct DashboardTerminal {
    terminal: ratatui::DefaultTerminal,
    _guard: RestoreGuard,
}

impl DashboardTerminal {
    /// Enters raw mode and the alternate screen.
    pub fn init() -> io::Result<Self> {
        let terminal = ratatui::try_init()?;
        Ok(Self {
            terminal,
            _guard: RestoreGuard,
        })
    }

    /// Draws one frame of `app`.
    pub fn draw(&mut self, app: &App) -> io::Result<()> {
        self.terminal.draw(|f| ui::draw(f, app)).map(|_| ())
    }
}

/// Takes over the terminal (raw mode, alternate screen), runs the dashboard until the
/// user quits, and restores the terminal whatever happens.
pub fn run_in_terminal<S: Source>(
    app: &mut App,
    source: &mut S,
    options: LoopOptions,
) -> io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let _guard = RestoreGuard;
    run(&mut terminal, app, source, options)
}

/// Runs the loop on an existing terminal (e.g. a `TestBackend`) until `app.should_quit`.
pub fn run<B: Backend, S: Source>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    source: &mut S,
    options: LoopOptions,
) -> io::Result<()> {
    let frame = Duration::from_secs(1) / options.fps.clamp(1, 60);
    while !app.should_quit {
        let started = Instant::now();
        source.update(&mut app.view);
        terminal.draw(|f| ui::draw(f, app))?;
        let deadline = started + frame;
        // Block until the next frame is due or a key arrives (then redraw at once,
        // so keys feel immediate); never spin.
        while let Some(timeout) = deadline.checked_duration_since(Instant::now()) {
            if !event::poll(timeout)? {
                break;
            }
            if let Event::Key(key) = event::read()? {
                app.handle_key(key);
                for command in app.take_commands() {
                    source.command(&command);
                }
                break;
            }
        }
    }
    Ok(())
}
