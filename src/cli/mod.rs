//! Subcommands of the binary; each parses its arguments and calls the library.

pub mod bench;
pub mod bench_speakers;
pub mod config;
pub mod config_cmd;
pub mod config_file;
pub mod devices;
pub mod eval;
pub mod export;
pub mod frontend_args;
pub mod manifest;
pub mod model_args;
pub mod replay;
pub mod report;
pub mod run;
pub mod score;
pub mod segment;
pub mod setup;
pub mod shell;
pub mod speaker_args;
