//! Dashboard panels; each renders from a [`crate::ViewState`] into a ratatui buffer.

pub mod bars;
pub mod health;
pub mod help;
pub mod now;
pub mod rolling;
pub mod timeline;
pub mod voice;

pub use health::HealthPanel;
pub use help::HelpOverlay;
pub use now::NowPanel;
pub use rolling::RollingPanel;
pub use timeline::TimelinePanel;
pub use voice::VoicePanel;
