//! `emomon replay` on bad input fails before touching the terminal, naming the file
//! (and line) so the user knows what to fix.

use std::process::Command;

fn replay(path: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_emomon"))
        .arg("replay")
        .arg(path)
        .args(extra)
        .output()
        .expect("run emomon");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("emomon-replay-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn missing_file_is_named() {
    let dir = temp_dir("missing");
    let (ok, err) = replay(&dir.join("no-such-session.jsonl"), &[]);
    assert!(!ok);
    assert!(err.contains("no-such-session.jsonl"), "{err}");
}

#[test]
fn malformed_line_is_named_with_its_number() {
    let dir = temp_dir("malformed");
    let path = dir.join("broken.jsonl");
    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sessions/sample.jsonl"),
    )
    .expect("sample log");
    let mut lines: Vec<&str> = sample.lines().take(5).collect();
    lines.insert(
        3,
        "{\"schema\":1,\"t_s\":3.0,\"type\":\"utterance\",\"id\":\"three\"}",
    );
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    // By default a bad line is skipped (and reported) and the valid records play;
    // `--strict` refuses the file at that line, before touching the terminal.
    let (ok, err) = replay(&path, &["--strict"]);
    assert!(!ok);
    assert!(err.contains("broken.jsonl:4: malformed record"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn not_a_session_log() {
    let dir = temp_dir("notlog");
    let path = dir.join("notes.txt");
    std::fs::write(&path, "hello\n").expect("write");
    let (ok, err) = replay(&path, &[]);
    assert!(!ok);
    assert!(
        err.contains("notes.txt: not an emomon session log"),
        "{err}"
    );
    let (ok, err) = replay(&path, &["--strict"]);
    assert!(!ok);
    assert!(err.contains("notes.txt:1: malformed record"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_speed_is_rejected() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sessions/sample.jsonl");
    let (ok, err) = replay(&path, &["--speed", "0"]);
    assert!(!ok);
    assert!(err.contains("--speed"), "{err}");
}
