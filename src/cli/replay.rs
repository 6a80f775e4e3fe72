//! `emomon replay`: the flags; the player is `emomon::replay`.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `emomon replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Session log (JSONL) written by `emomon run`.
    pub session: PathBuf,
    /// Playback speed as a multiple of real time (e.g. 4 plays a minute in 15 s).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    emomon::replay::run(&args.session, args.speed)
}
