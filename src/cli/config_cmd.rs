//! `emomon config show [COMMAND…]`: the settings a command line would use and where each
//! came from (flag, environment, config file line, default).

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

use super::config::{ParseError, parse_with, render};
use super::config_file::ConfigSource;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings of a command line (default: `run`) and where each
    /// came from: flag, environment, config file and line, or built-in default.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The command line to explain, e.g. `score --input a.wav --labels happy,sad`
    /// [default: run].
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// Runs `emomon config …`; `P` is the whole command line's parser, which the shown
/// command line goes through exactly as if it had been run.
pub fn run<P: Parser>(command: &ConfigCommand, source: &ConfigSource) -> anyhow::Result<()> {
    let ConfigCommand::Show(args) = command;
    let mut argv: Vec<OsString> = vec!["emomon".into()];
    if args.command.is_empty() {
        argv.push("run".into());
    } else {
        argv.extend(args.command.iter().cloned());
    }
    match parse_with::<P>(argv, source.clone()) {
        Ok(parsed) => {
            print!("{}", render(&parsed.settings, &parsed.source));
            Ok(())
        }
        Err(ParseError::Config(e)) => Err(e),
        Err(ParseError::Clap(e)) => e.exit(),
    }
}
