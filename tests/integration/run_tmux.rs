//! `emomon run` with the dashboard, in a real terminal (tmux): results appear live,
//! `m` logs a marker, `q` ends the session in order and gives the terminal back.
//! Without tmux the test prints a notice and passes (CI installs tmux).

use crate::run_common;

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use emomon::session_log::{self, Record};
use run_common::{fixture_clips, session_audio, tiny_model, write_wav};

pub(crate) fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("run tmux");
    assert!(out.status.success(), "tmux {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the tmux session on drop, so a failing test leaves nothing behind.
pub(crate) struct Pane(pub(crate) String);

impl Pane {
    /// A detached tmux session of `cols`×`rows` running `command` in a shell.
    pub(crate) fn start(name: &str, (cols, rows): (u16, u16), command: &str) -> Self {
        let name = format!("{name}-{}", std::process::id());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", &cols.to_string()])
            .args(["-y", &rows.to_string(), command])
            .env("TERM", "xterm-256color")
            .status()
            .unwrap();
        assert!(status.success());
        Self(name)
    }

    pub(crate) fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.0])
    }

    pub(crate) fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; screen:\n{screen}"
            );
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

#[test]
fn dashboard_shows_results_logs_markers_and_quits_in_order() {
    if !Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        crate::common::skip("run_tmux", "tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clips: Vec<_> = (0..4).flat_map(|_| fixture_clips()).collect();
    let wav = dir.path().join("long.wav");
    write_wav(&wav, &session_audio(&clips, 1.0).samples, 16_000);
    let log = dir.path().join("live.jsonl");
    let done = dir.path().join("done");
    // The shell records the exit code, then keeps the pane open for inspection.
    let command = format!(
        "'{}' run --realtime --input '{}' --model '{}' --session-log '{}'; echo $? > '{}'; sleep 60",
        env!("CARGO_BIN_EXE_emomon"),
        wav.display(),
        tiny_model().display(),
        log.display(),
        done.display()
    );
    let pane = Pane::start("emomon-run-test", (120, 40), &command);

    let screen = pane.wait_for("a live result", |s| {
        s.contains("LIVE") && s.contains("Now · #")
    });
    assert!(screen.contains("session log:"), "{screen}");
    tmux(&["send-keys", "-t", &pane.0, "m"]);
    pane.wait_for("the marker", |s| s.contains("1 marker"));
    tmux(&["send-keys", "-t", &pane.0, "q"]);
    let start = Instant::now();
    while !done.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "emomon did not exit; screen:\n{}",
            pane.screen()
        );
        sleep(Duration::from_millis(100));
    }
    assert_eq!(std::fs::read_to_string(&done).unwrap().trim(), "0");
    // The terminal is back: not in the alternate screen.
    let alt = tmux(&["display-message", "-p", "-t", &pane.0, "#{alternate_on}"]);
    assert_eq!(alt.trim(), "0");

    let parsed = session_log::read(&log).unwrap();
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    let records: Vec<&Record> = parsed.entries.iter().map(|e| &e.entry.record).collect();
    assert!(records.iter().any(|r| matches!(r, Record::Utterance(_))));
    assert_eq!(
        records
            .iter()
            .filter(|r| matches!(r, Record::Marker(_)))
            .count(),
        1
    );
    match records.last() {
        Some(Record::SessionEnd(e)) => assert_eq!(e.reason, "user quit"),
        other => panic!("last record {other:?}"),
    }
}
