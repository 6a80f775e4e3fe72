//! `emomon completions SHELL` and `emomon man`: shell completions and manual pages
//! generated from the clap definitions, so they never drift from the real flags
//! (`make install` puts them where shells and `man` look).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Command};
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (emomon.1, emomon-run.1, …) into this directory
    /// instead of printing emomon.1 to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell` to stdout.
pub fn completions(mut command: Command, args: &CompletionsArgs) -> anyhow::Result<()> {
    clap_complete::generate(args.shell, &mut command, "emomon", &mut std::io::stdout());
    Ok(())
}

/// Prints the main page, or writes every page into `--dir`.
pub fn man(command: Command, args: &ManArgs) -> anyhow::Result<()> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write manual pages into {}", dir.display()))
        }
        None => clap_mangen::Man::new(command)
            .render(&mut std::io::stdout())
            .context("cannot write the manual page to stdout"),
    }
}
