//! `emomon replay`: the flags; the player is `emomon::replay`. The session-log
//! reading flags, shared with `export` and `report`, are here too.

use std::path::PathBuf;

use clap::Args;
use emomon::replay::LogRead;

/// Arguments of `emomon replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Session log (JSONL) written by `emomon run`.
    pub session: PathBuf,
    /// Playback speed as a multiple of real time (e.g. 4 plays a minute in 15 s).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    #[command(flatten)]
    pub read: LogReadArgs,
}

/// How `replay`, `export` and `report` read a session log.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct LogReadArgs {
    /// Which session of the file (1 = the first; `emomon run -o FILE` appends each
    /// session to FILE). Default: the last one.
    #[arg(long = "session", value_name = "N")]
    pub number: Option<usize>,
    /// Refuse a log with any bad line (the default skips bad lines, says which, and
    /// keeps every valid record).
    #[arg(long)]
    pub strict: bool,
}

impl From<LogReadArgs> for LogRead {
    fn from(a: LogReadArgs) -> Self {
        Self {
            number: a.number,
            strict: a.strict,
        }
    }
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    emomon::replay::run(&args.session, args.speed, args.read.into())
}
