//! A bounded mutation fuzz of the session-log reader and everything downstream of
//! it (session split, export/report digest, replay), run as an ordinary test.
//!
//! The committed sample log is mutated line by line (bytes flipped, lines cut,
//! deleted, duplicated, glued to the next, garbage inserted, the file cut short).
//! Every mutant must read without panicking, and every line the mutation left
//! intact must be recovered: one bad line never costs the records around it.
//! `EMOMON_FUZZ_ITERS=N` runs N mutants instead of the default.

use std::path::Path;

use crate::audio::fuzz_tests::{Rng, iterations};
use crate::report::SessionData;
use crate::session_log::read_from;

use super::Player;

/// A mutant and how many of its lines are intact copies of valid original lines.
fn mutate(lines: &[Vec<u8>], rng: &mut Rng) -> (Vec<u8>, usize) {
    // (bytes, intact, newline after it)
    let mut out: Vec<(Vec<u8>, bool, bool)> =
        lines.iter().map(|l| (l.clone(), true, true)).collect();
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(out.len());
        match rng.below(6) {
            0 => {
                let line = &mut out[i];
                let j = rng.below(line.0.len());
                line.0[j] = rng.next() as u8;
                line.1 = false;
            }
            1 => {
                let line = &mut out[i];
                let cut = rng.below(line.0.len());
                line.0.truncate(cut);
                line.1 = false;
            }
            2 => {
                out.remove(i);
                if out.is_empty() {
                    out.push((b"{}".to_vec(), false, true));
                }
            }
            3 => {
                let copy = out[i].clone();
                out.insert(i, copy);
            }
            4 => out.insert(i, (b"\x00garbage {\"schema\":".to_vec(), false, true)),
            _ => {
                // Glue line i to the next (its newline lost): neither counts.
                out[i].2 = false;
                out[i].1 = false;
                if let Some(next) = out.get_mut(i + 1) {
                    next.1 = false;
                }
            }
        }
    }
    if rng.below(4) == 0 {
        // The file cut short inside its last line.
        let last = out.last_mut().expect("non-empty");
        let cut = rng.below(last.0.len().max(1));
        last.0.truncate(cut);
        last.1 = false;
        last.2 = false;
    }
    let intact = out.iter().filter(|l| l.1).count();
    let mut bytes = Vec::new();
    for (line, _, newline) in out {
        bytes.extend_from_slice(&line);
        if newline {
            bytes.push(b'\n');
        }
    }
    (bytes, intact)
}

#[test]
fn mutated_logs_read_without_panic_and_keep_every_intact_line() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/sample.jsonl");
    let text = std::fs::read(&sample).expect("sample log");
    let lines: Vec<Vec<u8>> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut rng = Rng::new(2026);
    for i in 0..iterations(300) {
        let (bytes, intact) = mutate(&lines, &mut rng);
        let outcome = std::panic::catch_unwind(|| {
            let log = read_from(&bytes[..]).expect("in-memory read");
            let recovered = log.entries.len();
            for part in log.split_sessions().sessions {
                let data = SessionData::from_log(&part.log).expect("a session has its start");
                let _ = crate::report::html(&data, "fuzz");
                let mut player = Player::new(&part.log, "fuzz.jsonl", 1.0).expect("player");
                let mut view = player.initial_view();
                while !view.finished {
                    player.advance_to(&mut view, f64::MAX);
                }
            }
            recovered
        });
        match outcome {
            Ok(recovered) => assert!(
                recovered >= intact,
                "mutant {i}: {recovered} records recovered but {intact} lines were intact"
            ),
            Err(_) => panic!("mutant {i} (seed 2026) panicked"),
        }
    }
}
