//! The config file (`~/.config/emomon/config.toml`): its schema, where it is found, and
//! its errors, which name the file, the line and the key.
//!
//! Every key is a setting one would otherwise retype as a flag; [`SETTINGS`] maps each
//! to the flag it stands for, so the file only ever supplies the flag's default (see
//! `config.rs` for the layering). Keys for features that do not exist yet are not
//! accepted: an unknown key is an error, not silently ignored.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, Parser, ValueEnum};
use emomon::aggregate::{Aggregator, AggregatorConfig};
use serde::Deserialize;
use toml::Spanned;

use super::frontend_args::FrontEndArgs;
use super::model_args::{DeviceArg, MethodArg, QuantArg};

/// One config key and the flag (clap argument id) it supplies the default of.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// `section.key` as written in the file and shown by `emomon config show`.
    pub key: &'static str,
    /// The args struct that defines the flag: clap's derive names a group after it, so
    /// an argument of the same name elsewhere (`segment --device`) is never touched.
    pub owner: &'static str,
    /// The clap argument id (the field name in the args struct).
    pub arg: &'static str,
    /// The key is the negation of a `--no-…` flag (`pad = false` is `--no-pad`).
    pub inverted: bool,
}

const MODEL: &str = "ModelArgs";
const FRONT_END: &str = "FrontEndArgs";
const RUN: &str = "RunArgs";

const fn setting(key: &'static str, owner: &'static str, arg: &'static str) -> Setting {
    Setting {
        key,
        owner,
        arg,
        inverted: false,
    }
}

const fn inverted(key: &'static str, owner: &'static str, arg: &'static str) -> Setting {
    Setting {
        inverted: true,
        ..setting(key, owner, arg)
    }
}

/// Every key the file accepts, in the order `config show` lists them.
pub const SETTINGS: &[Setting] = &[
    setting("model.model", MODEL, "model"),
    setting("model.adapter", MODEL, "adapter"),
    setting("model.method", MODEL, "method"),
    setting("model.labels", MODEL, "labels"),
    setting("model.prompt", MODEL, "prompt"),
    setting("model.temperature", MODEL, "temperature"),
    setting("model.max_new_tokens", MODEL, "max_new_tokens"),
    setting("model.device", MODEL, "device"),
    setting("model.quant", MODEL, "quant"),
    inverted("model.pad", MODEL, "no_pad"),
    setting("model.remote", MODEL, "remote"),
    setting("model.remote_model", MODEL, "remote_model"),
    setting("model.remote_timeout_s", MODEL, "remote_timeout"),
    setting("segmentation.aggressiveness", FRONT_END, "aggressiveness"),
    setting("segmentation.frame_ms", FRONT_END, "frame_ms"),
    setting("segmentation.onset_ms", FRONT_END, "onset_ms"),
    setting("segmentation.pre_roll_ms", FRONT_END, "pre_roll_ms"),
    setting("segmentation.post_roll_ms", FRONT_END, "post_roll_ms"),
    setting("segmentation.hangover_ms", FRONT_END, "hangover_ms"),
    setting("segmentation.min_speech_ms", FRONT_END, "min_speech_ms"),
    setting("segmentation.max_utterance_s", FRONT_END, "max_utterance_s"),
    setting("segmentation.split_search_s", FRONT_END, "split_search_s"),
    setting("aggregation.half_life_s", RUN, "half_life"),
    setting("aggregation.windows_s", RUN, "windows"),
    setting("aggregation.switch_margin", RUN, "switch_margin"),
    setting("session.log_dir", RUN, "session_dir"),
    setting("session.score_queue", RUN, "score_queue"),
    setting("session.workers", RUN, "workers"),
    inverted("session.prosody", RUN, "no_prosody"),
    inverted("session.speculative", RUN, "no_speculative"),
];

/// The file's schema. Every field is optional; absent ones leave the built-in default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    model: ModelSection,
    #[serde(default)]
    segmentation: SegmentationSection,
    #[serde(default)]
    aggregation: AggregationSection,
    #[serde(default)]
    session: SessionSection,
}

/// `[model]`: which model scores and how (the `--model`… flags).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    model: Option<Spanned<String>>,
    adapter: Option<Spanned<PathBuf>>,
    method: Option<Spanned<MethodArg>>,
    labels: Option<Spanned<Vec<String>>>,
    prompt: Option<Spanned<String>>,
    temperature: Option<Spanned<f32>>,
    max_new_tokens: Option<Spanned<usize>>,
    device: Option<Spanned<DeviceArg>>,
    quant: Option<Spanned<QuantArg>>,
    pad: Option<Spanned<bool>>,
    remote: Option<Spanned<String>>,
    remote_model: Option<Spanned<String>>,
    remote_timeout_s: Option<Spanned<f64>>,
}

/// `[segmentation]`: voice activity detection and utterance cutting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentationSection {
    aggressiveness: Option<Spanned<u8>>,
    frame_ms: Option<Spanned<u32>>,
    onset_ms: Option<Spanned<u32>>,
    pre_roll_ms: Option<Spanned<u32>>,
    post_roll_ms: Option<Spanned<u32>>,
    hangover_ms: Option<Spanned<u32>>,
    min_speech_ms: Option<Spanned<u32>>,
    max_utterance_s: Option<Spanned<f64>>,
    split_search_s: Option<Spanned<f64>>,
}

/// `[aggregation]`: the rolling distributions of `emomon run`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregationSection {
    half_life_s: Option<Spanned<f64>>,
    windows_s: Option<Spanned<Vec<f64>>>,
    switch_margin: Option<Spanned<f64>>,
}

/// `[session]`: how `emomon run` keeps its session.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionSection {
    log_dir: Option<Spanned<PathBuf>>,
    score_queue: Option<Spanned<usize>>,
    workers: Option<Spanned<usize>>,
    prosody: Option<Spanned<bool>>,
    speculative: Option<Spanned<bool>>,
}

/// A value as the flag would be written, one string per value (`labels` has several).
trait FlagValues {
    fn flag_values(&self) -> Vec<String>;
}

macro_rules! display_flag_values {
    ($($t:ty),*) => {$(
        impl FlagValues for $t {
            fn flag_values(&self) -> Vec<String> {
                vec![self.to_string()]
            }
        }
    )*};
}
display_flag_values!(String, f32, f64, u8, u32, usize, bool);

macro_rules! enum_flag_values {
    ($($t:ty),*) => {$(
        impl FlagValues for $t {
            fn flag_values(&self) -> Vec<String> {
                self.to_possible_value()
                    .map(|v| vec![v.get_name().to_string()])
                    .unwrap_or_default()
            }
        }
    )*};
}
enum_flag_values!(MethodArg, DeviceArg, QuantArg);

impl FlagValues for PathBuf {
    fn flag_values(&self) -> Vec<String> {
        vec![self.to_string_lossy().into_owned()]
    }
}

impl<T: FlagValues> FlagValues for Vec<T> {
    fn flag_values(&self) -> Vec<String> {
        self.iter().flat_map(FlagValues::flag_values).collect()
    }
}

/// One key as found in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileValue {
    /// The key's value as flag strings (before any inversion).
    pub values: Vec<String>,
    /// 1-based line of the value.
    pub line: usize,
}

/// A config file that was read and checked.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    /// Where it was read from.
    pub path: PathBuf,
    /// Key (`section.key`) → value, for the keys the file sets.
    pub values: BTreeMap<&'static str, FileValue>,
}

/// Where the config file comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigSource {
    /// `--config FILE`.
    Flag(PathBuf),
    /// `EMOMON_CONFIG`.
    Env(PathBuf),
    /// The XDG location (`$XDG_CONFIG_HOME/emomon/config.toml`), read only if it exists.
    Default(PathBuf),
    /// No config directory is known (no `$HOME`).
    None,
}

impl ConfigSource {
    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Flag(p) | Self::Env(p) | Self::Default(p) => Some(p),
            Self::None => None,
        }
    }

    /// How it was chosen, for `config show`.
    pub fn describe(&self) -> String {
        match self {
            Self::Flag(p) => format!("{} (--config)", p.display()),
            Self::Env(p) => format!("{} (EMOMON_CONFIG)", p.display()),
            Self::Default(p) if p.exists() => format!("{}", p.display()),
            Self::Default(p) => format!("none ({} does not exist)", p.display()),
            Self::None => "none (no config directory: $HOME is not set)".into(),
        }
    }
}

/// The config file the command line asks for: `--config FILE` (looked for before clap
/// parses, because the file supplies clap's defaults), else `EMOMON_CONFIG`, else the
/// XDG location.
pub fn locate(args: &[OsString]) -> ConfigSource {
    let mut flag = None;
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let Some(s) = arg.to_str() else { continue };
        if s == "--" {
            break;
        } else if s == "--config" {
            flag = iter.next().map(PathBuf::from);
        } else if let Some(path) = s.strip_prefix("--config=") {
            flag = Some(PathBuf::from(path));
        }
    }
    if let Some(path) = flag {
        return ConfigSource::Flag(path);
    }
    if let Some(path) = std::env::var_os("EMOMON_CONFIG").filter(|v| !v.is_empty()) {
        return ConfigSource::Env(PathBuf::from(path));
    }
    match dirs::config_dir() {
        Some(dir) => ConfigSource::Default(dir.join("emomon").join("config.toml")),
        None => ConfigSource::None,
    }
}

/// Reads and checks the file `source` names. A file named by `--config` or
/// `EMOMON_CONFIG` must exist; the XDG one is optional.
pub fn load(source: &ConfigSource) -> anyhow::Result<Option<LoadedConfig>> {
    let path = match source {
        ConfigSource::Flag(p) | ConfigSource::Env(p) => p,
        ConfigSource::Default(p) if p.exists() => p,
        ConfigSource::Default(_) | ConfigSource::None => return Ok(None),
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the config file {} (given by {})",
            path.display(),
            match source {
                ConfigSource::Flag(_) => "--config",
                ConfigSource::Env(_) => "EMOMON_CONFIG",
                _ => "the default location",
            }
        )
    })?;
    parse(path, &text).map(Some)
}

/// Parses and checks config text read from `path` (named in errors).
pub fn parse(path: &Path, text: &str) -> anyhow::Result<LoadedConfig> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| s.start);
        let line = at.map_or(String::new(), |at| format!(":{}", line_of(text, at)));
        let key = at
            .and_then(|at| key_at(text, at))
            .map_or(String::new(), |k| format!("key `{k}`: "));
        anyhow::anyhow!("{}{line}: {key}{}", path.display(), e.message().trim_end())
    })?;
    let mut values = BTreeMap::new();
    let base = path.parent().unwrap_or(Path::new("."));
    for (key, mut flag_values, span) in file.entries() {
        let line = line_of(text, span.start);
        match key {
            "model.adapter" | "session.log_dir" => {
                flag_values = flag_values.iter().map(|v| resolve_path(v, base)).collect();
            }
            "model.model" => flag_values = flag_values.iter().map(|v| expand_home(v)).collect(),
            _ => {}
        }
        check_value(key, &flag_values)
            .map_err(|why| anyhow::anyhow!("{}:{line}: key `{key}`: {why}", path.display()))?;
        values.insert(
            key,
            FileValue {
                values: flag_values,
                line,
            },
        );
    }
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        values,
    })
}

impl ConfigFile {
    /// Every key the file sets: key, flag strings, span of the value.
    fn entries(&self) -> Vec<(&'static str, Vec<String>, Range<usize>)> {
        let mut out = Vec::new();
        fn push<T: FlagValues>(
            out: &mut Vec<(&'static str, Vec<String>, Range<usize>)>,
            key: &'static str,
            value: &Option<Spanned<T>>,
        ) {
            if let Some(v) = value {
                out.push((key, v.get_ref().flag_values(), v.span()));
            }
        }
        let m = &self.model;
        push(&mut out, "model.model", &m.model);
        push(&mut out, "model.adapter", &m.adapter);
        push(&mut out, "model.method", &m.method);
        push(&mut out, "model.labels", &m.labels);
        push(&mut out, "model.prompt", &m.prompt);
        push(&mut out, "model.temperature", &m.temperature);
        push(&mut out, "model.max_new_tokens", &m.max_new_tokens);
        push(&mut out, "model.device", &m.device);
        push(&mut out, "model.quant", &m.quant);
        push(&mut out, "model.pad", &m.pad);
        push(&mut out, "model.remote", &m.remote);
        push(&mut out, "model.remote_model", &m.remote_model);
        push(&mut out, "model.remote_timeout_s", &m.remote_timeout_s);
        let s = &self.segmentation;
        push(&mut out, "segmentation.aggressiveness", &s.aggressiveness);
        push(&mut out, "segmentation.frame_ms", &s.frame_ms);
        push(&mut out, "segmentation.onset_ms", &s.onset_ms);
        push(&mut out, "segmentation.pre_roll_ms", &s.pre_roll_ms);
        push(&mut out, "segmentation.post_roll_ms", &s.post_roll_ms);
        push(&mut out, "segmentation.hangover_ms", &s.hangover_ms);
        push(&mut out, "segmentation.min_speech_ms", &s.min_speech_ms);
        push(&mut out, "segmentation.max_utterance_s", &s.max_utterance_s);
        push(&mut out, "segmentation.split_search_s", &s.split_search_s);
        let a = &self.aggregation;
        push(&mut out, "aggregation.half_life_s", &a.half_life_s);
        push(&mut out, "aggregation.windows_s", &a.windows_s);
        push(&mut out, "aggregation.switch_margin", &a.switch_margin);
        let s = &self.session;
        push(&mut out, "session.log_dir", &s.log_dir);
        push(&mut out, "session.score_queue", &s.score_queue);
        push(&mut out, "session.workers", &s.workers);
        push(&mut out, "session.prosody", &s.prosody);
        push(&mut out, "session.speculative", &s.speculative);
        out
    }
}

/// The front-end flags alone, to check a `[segmentation]` value with the same rules
/// (`FrontEndArgs::config`) the flag goes through.
#[derive(Debug, Parser)]
struct FrontEndProbe {
    #[command(flatten)]
    frontend: FrontEndArgs,
}

/// Checks what the types alone do not: ranges. `[segmentation]` values go through the
/// front end's own validation; the others must be positive where the flag requires it.
fn check_value(key: &str, values: &[String]) -> Result<(), String> {
    let number = |v: &String| v.parse::<f64>().unwrap_or(f64::NAN);
    let positive = |what: &str| {
        if values.iter().map(number).all(|x| x.is_finite() && x > 0.0) {
            Ok(())
        } else {
            Err(format!("must be {what}, got {}", values.join(", ")))
        }
    };
    match key {
        "model.labels" if values.iter().any(|l| l.trim().is_empty()) || values.is_empty() => {
            Err("must be a non-empty list of non-empty labels".into())
        }
        "model.temperature" | "model.remote_timeout_s" => positive("a positive number"),
        "model.max_new_tokens" | "session.score_queue" | "session.workers" => {
            positive("at least 1")
        }
        _ if key.starts_with("aggregation.") => check_aggregation(key, values),
        _ => match key.strip_prefix("segmentation.") {
            Some(field) => check_segmentation(field, &values[0]),
            None => Ok(()),
        },
    }
}

/// Aggregation values go through the aggregator's own checks.
fn check_aggregation(key: &str, values: &[String]) -> Result<(), String> {
    let numbers: Vec<f64> = values
        .iter()
        .map(|v| v.parse().unwrap_or(f64::NAN))
        .collect();
    let mut config = AggregatorConfig::default();
    match key {
        "aggregation.half_life_s" => config.half_life_s = numbers[0],
        "aggregation.switch_margin" => config.switch_margin = numbers[0],
        _ => config.windows_s = numbers,
    }
    Aggregator::new(vec!["label".into()], config)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn check_segmentation(field: &str, value: &str) -> Result<(), String> {
    let command = FrontEndProbe::command();
    let long = command
        .get_arguments()
        .find(|a| a.get_id() == field)
        .and_then(|a| a.get_long())
        .ok_or_else(|| format!("no front-end setting {field}"))?;
    let probe = FrontEndProbe::try_parse_from(["emomon", &format!("--{long}"), value])
        .map_err(|e| e.kind().to_string())?;
    probe.frontend.config().map(drop).map_err(|e| e.to_string())
}

/// A leading `~/` is the home directory (TOML has no such notion, people write it anyway).
fn expand_home(value: &str) -> String {
    match (value.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest).to_string_lossy().into_owned(),
        _ => value.to_string(),
    }
}

/// A directory named in the file: `~/` expanded, and a relative path taken relative to
/// the file's own directory, so it does not depend on where emomon is started.
fn resolve_path(value: &str, base: &Path) -> String {
    let expanded = PathBuf::from(expand_home(value));
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
    .to_string_lossy()
    .into_owned()
}

/// 1-based line of byte offset `at`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `section.key` of the `key = value` line holding byte `at`, for type errors whose
/// message names only the expected type.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let section = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}
