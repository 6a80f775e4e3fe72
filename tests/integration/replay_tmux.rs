//! End to end in a real terminal: `emomon replay` on the sample log inside tmux.
//!
//! Starts the built binary in a detached 120×40 tmux session, reads the screen with
//! `capture-pane`, drives it with `send-keys` (`?`, `w`, space, `q`) and checks that it
//! exits cleanly and gives the terminal back (alternate screen off, canonical mode on).
//! Without tmux the test prints a notice and passes (CI installs tmux).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A detached tmux session, killed on drop so a failing test leaves nothing behind.
struct Session {
    name: String,
}

impl Session {
    fn start(tag: &str, width: u16, height: u16, command: &str) -> Self {
        let name = format!("emomon-test-{}-{tag}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(command)
            .env("TERM", "xterm-256color")
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        Self { name }
    }

    fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn send(&self, key: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, key])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    fn display(&self, format: &str) -> String {
        let out = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.name, format])
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until the screen satisfies `pred`, returning it; panics with the screen
    /// after `timeout`.
    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return screen;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/sample.jsonl")
}

/// Markers counted in the Timeline title ("· 2 markers ▲"), 0 when none.
fn marker_count(screen: &str) -> usize {
    let Some(line) = screen.lines().find(|l| l.contains("Timeline")) else {
        return 0;
    };
    line.split(" marker")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .filter(|_| line.contains(" marker"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The header line (first screen row).
fn header(screen: &str) -> String {
    screen.lines().next().unwrap_or_default().to_string()
}

#[test]
fn replay_in_tmux_shows_dashboard_and_restores_terminal() {
    if !tmux_available() {
        crate::common::skip("replay_tmux", "tmux is not installed");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_emomon");
    // After emomon exits, the shell reports its status and whether the tty is back in
    // canonical mode, then idles so the pane can still be read.
    let command = format!(
        "'{bin}' replay '{}' --speed 12; echo EMOMON_EXITED=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon' | sed 's/^/TTY_MODE=/'; sleep 60",
        sample().display()
    );
    let s = Session::start("keys", 120, 40, &command);
    let t = Duration::from_secs(20);

    let screen = s.wait_for("utterance bars", t, |x| {
        x.contains("Now · #") && x.contains('%')
    });
    for label in [
        "neutral", "happy", "sad", "angry", "fear", "disgust", "surprise",
    ] {
        assert!(screen.contains(label), "label {label} shown:\n{screen}");
    }
    assert!(screen.contains("Timeline") && screen.contains("Health") && screen.contains("Voice"));
    assert!(header(&screen).contains("replay sample.jsonl"), "{screen}");
    assert_eq!(
        s.display("#{alternate_on}"),
        "1",
        "dashboard uses the alternate screen"
    );

    s.send("?");
    s.wait_for("help overlay", t, |x| {
        x.contains("Help") && x.contains("Reading the numbers")
    });
    s.send("?");
    s.wait_for("help closed", t, |x| !x.contains("Reading the numbers"));

    // The decayed distribution is shown first (the session's --half-life).
    s.wait_for("decayed tab", t, |x| {
        x.contains("[decayed]") && x.contains("half-life 20 s")
    });
    s.send("w");
    s.wait_for("30 s window", t, |x| x.contains("[30 s]"));
    s.send("w");
    s.wait_for("2 min window", t, |x| x.contains("[2 min]"));
    s.send("w");
    s.wait_for("session window", t, |x| x.contains("[session]"));

    s.send("Space");
    let paused = s.wait_for("paused", t, |x| header(x).contains("PAUSED"));
    sleep(Duration::from_millis(1500));
    let still = s.capture();
    assert_eq!(
        header(&paused),
        header(&still),
        "the clock stops while paused"
    );
    // While paused nothing arrives from the log, so a new marker is ours.
    let before = marker_count(&still);
    s.send("m");
    s.wait_for("marker added", t, |x| marker_count(x) == before + 1);
    s.send("Space");
    s.wait_for("playing again", t, |x| !header(x).contains("PAUSED"));

    // The log ends (≈210 s at ×12 ≈ 18 s); the dashboard stays until q.
    let ended = s.wait_for("end of log", Duration::from_secs(40), |x| {
        header(x).contains("LOG ENDED")
    });
    assert!(
        ended.contains("SKIPPED 1 utt") && ended.contains("DROPPED 480 samples"),
        "{ended}"
    );
    sleep(Duration::from_millis(500));
    assert!(
        s.capture().contains("LOG ENDED"),
        "still shown after the end"
    );

    s.send("q");
    let after = s.wait_for("exit", t, |x| x.contains("EMOMON_EXITED="));
    assert!(after.contains("EMOMON_EXITED=0"), "{after}");
    let mode = s.wait_for("tty mode", t, |x| x.contains("TTY_MODE="));
    assert!(
        mode.contains("TTY_MODE=icanon"),
        "terminal left in raw mode:\n{mode}"
    );
    assert_eq!(s.display("#{alternate_on}"), "0", "alternate screen left");
    assert!(
        !after.contains("Timeline"),
        "dashboard cleared from the main screen:\n{after}"
    );
}

#[test]
fn replay_ctrl_c_restores_terminal() {
    if !tmux_available() {
        crate::common::skip("replay_tmux", "tmux is not installed");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_emomon");
    let command = format!(
        "'{bin}' replay '{}'; echo EMOMON_EXITED=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon' | sed 's/^/TTY_MODE=/'; sleep 60",
        sample().display()
    );
    let s = Session::start("ctrlc", 100, 30, &command);
    let t = Duration::from_secs(20);
    s.wait_for("dashboard", t, |x| x.contains("Timeline"));
    s.send("C-c");
    let after = s.wait_for("exit", t, |x| x.contains("TTY_MODE="));
    assert!(after.contains("EMOMON_EXITED=0"), "{after}");
    assert!(after.contains("TTY_MODE=icanon"), "{after}");
}
