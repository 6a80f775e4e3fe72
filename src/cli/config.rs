//! Settings in layers: flag > environment > config file > built-in default.
//!
//! The config file's values become the defaults of the flags they stand for before
//! clap parses the command line, so clap itself applies the precedence (a flag or an
//! `EMOMON_*` variable beats a default) and every value, wherever it came from, goes
//! through the same parser and the same checks. After parsing, clap's `ValueSource`
//! says whether each value came from the command line, the environment or a default;
//! a default is the file's when the file set that key.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command, Parser};

use super::config_file::{ConfigSource, LoadedConfig, SETTINGS, Setting, load, locate};

/// Where an effective setting came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A flag on the command line (`--half-life`).
    Flag(String),
    /// An environment variable clap reads for that flag (`EMOMON_MODEL`).
    Env(String),
    /// The config file, at this line.
    File { path: PathBuf, line: usize },
    /// The built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "flag {flag}"),
            Self::Env(var) => write!(f, "env {var}"),
            Self::File { path, line } => write!(f, "file {}:{line}", path.display()),
            Self::Default => f.write_str("default"),
        }
    }
}

/// One setting as the command will use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// `section.key`, as in the config file.
    pub key: &'static str,
    /// The value(s) as written on the command line; `None` when unset (e.g. no
    /// `--model`: the built-in default model).
    pub value: Option<Vec<String>>,
    /// Where it came from.
    pub origin: Origin,
}

/// A parsed command line with its settings' origins.
pub struct Parsed<P> {
    /// The parsed command line, config file values included.
    pub cli: P,
    /// The settings the chosen subcommand takes, in [`SETTINGS`] order.
    pub settings: Vec<Effective>,
    /// Where the config file was looked for.
    pub source: ConfigSource,
}

/// Why the command line could not be parsed.
pub enum ParseError {
    /// The config file is unreadable or invalid.
    Config(anyhow::Error),
    /// Clap's own error (including `--help` and `--version`, which clap prints).
    Clap(clap::Error),
}

/// Parses `args` (program name first) with the config file they name, or the default one.
pub fn parse<P: Parser>(args: Vec<OsString>) -> Result<Parsed<P>, ParseError> {
    let source = locate(&args);
    parse_with(args, source)
}

/// Parses `args` with the config file at `source`.
pub fn parse_with<P: Parser>(
    args: Vec<OsString>,
    source: ConfigSource,
) -> Result<Parsed<P>, ParseError> {
    let file = load(&source).map_err(ParseError::Config)?;
    let mut command = match &file {
        Some(file) => with_file_defaults(P::command(), file),
        None => P::command(),
    };
    let matches = command
        .try_get_matches_from_mut(args)
        .map_err(ParseError::Clap)?;
    let cli = P::from_arg_matches(&matches).map_err(ParseError::Clap)?;
    let settings = effective(&command, &matches, file.as_ref());
    Ok(Parsed {
        cli,
        settings,
        source,
    })
}

/// `command` with every argument the file sets defaulting to the file's value.
fn with_file_defaults(command: Command, file: &LoadedConfig) -> Command {
    let defaults: Vec<(&Setting, Vec<String>)> = SETTINGS
        .iter()
        .filter_map(|s| Some((s, flag_form(s, &file.values.get(s.key)?.values))))
        .collect();
    set_defaults(command, &defaults)
}

fn set_defaults(mut command: Command, defaults: &[(&Setting, Vec<String>)]) -> Command {
    for (setting, values) in defaults {
        if owns(&command, setting) {
            command = command.mut_arg(setting.arg, |arg| arg.default_values(values.clone()));
        }
    }
    command.mut_subcommands(|sub| set_defaults(sub, defaults))
}

/// Whether `command` has the flag `setting` stands for: an argument of that id defined
/// by the args struct the setting names (clap's derive adds a group named after each
/// struct), not merely an argument of the same name (`segment --device` is a microphone).
fn owns(command: &Command, setting: &Setting) -> bool {
    command.get_arguments().any(|a| a.get_id() == setting.arg)
        && command.get_groups().any(|g| {
            let mut members = g.get_args().peekable();
            // The derive leaves the group of a struct that flattens others (RunArgs) empty.
            g.get_id() == setting.owner
                && (members.peek().is_none() || members.any(|a| a == setting.arg))
        })
}

/// A key's value as its flag takes it: `pad = false` is `--no-pad` = true.
fn flag_form(setting: &Setting, values: &[String]) -> Vec<String> {
    if !setting.inverted {
        return values.to_vec();
    }
    values
        .iter()
        .map(|v| if v == "true" { "false" } else { "true" }.to_string())
        .collect()
}

/// The settings of the subcommand `matches` chose, with their origins.
fn effective(
    command: &Command,
    matches: &ArgMatches,
    file: Option<&LoadedConfig>,
) -> Vec<Effective> {
    let (mut command, mut matches) = (command, matches);
    while let Some((name, sub)) = matches.subcommand() {
        match command.find_subcommand(name) {
            Some(c) => (command, matches) = (c, sub),
            None => break,
        }
    }
    SETTINGS
        .iter()
        .filter(|setting| owns(command, setting))
        .filter_map(|setting| {
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == setting.arg)?;
            let value = matches.get_raw(setting.arg).map(|raw| {
                let raw: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
                flag_form(setting, &raw)
            });
            let origin = match matches.value_source(setting.arg) {
                Some(ValueSource::CommandLine) => {
                    Origin::Flag(format!("--{}", arg.get_long().unwrap_or(setting.arg)))
                }
                Some(ValueSource::EnvVariable) => Origin::Env(
                    arg.get_env()
                        .map_or_else(String::new, |e| e.to_string_lossy().into_owned()),
                ),
                _ => match file.and_then(|f| Some((f, f.values.get(setting.key)?))) {
                    Some((f, v)) => Origin::File {
                        path: f.path.clone(),
                        line: v.line,
                    },
                    None => Origin::Default,
                },
            };
            Some(Effective {
                key: setting.key,
                value,
                origin,
            })
        })
        .collect()
}

/// The settings as recorded in the session log: the config file used, and
/// `{key: {"value": …, "from": …}}` for every setting that is not the built-in default
/// (the effective values of all of them are in the log's `config` already; a log line
/// stays short enough for a full disk to be noticed after `session_start`).
pub fn to_json(settings: &[Effective], source: &ConfigSource) -> serde_json::Value {
    let values: serde_json::Map<String, serde_json::Value> = settings
        .iter()
        .filter(|s| s.origin != Origin::Default)
        .map(|s| {
            let value = match s.value.as_deref() {
                None => serde_json::Value::Null,
                Some([one]) => one.clone().into(),
                Some(many) => many.to_vec().into(),
            };
            (
                s.key.to_string(),
                serde_json::json!({"value": value, "from": s.origin.to_string()}),
            )
        })
        .collect();
    serde_json::json!({
        "config_file": source.path().filter(|p| p.exists()).map(|p| p.display().to_string()),
        "values": values,
    })
}

/// `config show`'s table: key, value, origin.
pub fn render(settings: &[Effective], source: &ConfigSource) -> String {
    let mut out = format!("config file: {}\n", source.describe());
    let width = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    let values: Vec<String> = settings
        .iter()
        .map(|s| match &s.value {
            Some(v) => v.join(","),
            None => "(unset)".into(),
        })
        .collect();
    let value_width = values.iter().map(String::len).max().unwrap_or(0).min(40);
    for (s, value) in settings.iter().zip(values) {
        out += &format!("{:width$}  {value:value_width$}  {}\n", s.key, s.origin);
    }
    out
}
