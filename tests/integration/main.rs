//! Every integration test of the `emomon` crate in one binary: each file links burn, so
//! one link instead of one per file keeps cold builds (CI) short. Run one area with
//! `cargo test --test integration MODULE::` (e.g. `score_cli::`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../run_common/mod.rs"]
mod run_common;

mod bad_files;
mod checkpoint_files;
mod default_model;
mod eval_cli;
mod export;
mod install_config;
mod live_input;
mod manifest_cli;
mod metrics;
mod mic_alsa;
mod pipeline;
mod prosody;
mod remote;
mod replay_cli;
mod replay_sample;
mod replay_tmux;
mod report;
mod resampling;
mod run_cli;
mod run_session;
mod run_tmux;
mod score_cli;
mod segmentation;
mod speakers;
mod speculative;
