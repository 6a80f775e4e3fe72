//! emomon's terminal dashboard.
//!
//! The dashboard draws a plain [`ViewState`] (no model or audio types, so this crate
//! builds and tests without burn). A driver implementing [`Source`] keeps the view up to
//! date: `emomon replay` from a session log, `emomon run` from the live pipeline.
//!
//! * [`view`]: the view state: plain numbers, the rolling part filled from the
//!   shared aggregator (`emomon-aggregate`, plain math without burn).
//! * [`widgets`]: the panels (Now, Rolling, Timeline, Voice, Health, help overlay).
//! * [`ui`]: layout for a terminal size, including the "too small" message.
//! * [`app`]: UI state and key handling, producing [`Command`]s for the driver.
//! * [`terminal`]: the redraw loop and terminal setup/restore.

pub mod app;
pub mod palette;
pub mod terminal;
pub mod ui;
pub mod view;
pub mod widgets;

pub use app::{App, Command};
/// Re-exported so drivers read key events with the same crossterm version (and its
/// `EventStream`) that [`App::handle_key`] understands.
pub use crossterm;
pub use terminal::{DashboardTerminal, LoopOptions, Source, run, run_in_terminal};
pub use view::{
    DominantShift, Health, Marker, ProsodyView, Rolling, RollingDist, RollingWindow, SpeakerTrack,
    TimelineEntry, UtteranceView, VadState, ViewState, VoiceState,
};
