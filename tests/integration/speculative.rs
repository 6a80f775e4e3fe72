//! Speculative scoring through the real pipeline (`emomon run --headless --realtime`,
//! tiny Whisper model) on real speech with a pause shorter than the hangover and
//! longer ones: it logs exactly what the run without speculation logs (same
//! utterances, boundaries and distributions, nothing skipped), and both report the
//! latency from the end of speech.

use crate::run_common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use emomon::audio::memory::MemorySource;
use emomon::capture::{CaptureObserver, run_capture_observed};
use emomon::segmenter::SegmentEvent;
use emomon::session_log::{self, Record, UtteranceRecord};
use emomon::utterance::Utterance;
use run_common::{Noise, decode_16k, fixture_clips, headless_run, speech_extent, write_wav};

/// The three fixture clips' speech, 0.3 s apart (under the 400 ms hangover), then
/// 1.2 s apart, then 1 s of room tone: two or more utterances, one bridging a pause.
fn speech_with_pauses() -> Vec<f32> {
    let mut noise = Noise::new(5);
    let mut audio = noise.samples(8_000, -90.0);
    for (clip, gap_s) in fixture_clips().iter().zip([0.3, 1.2, 1.0]) {
        let samples = decode_16k(clip);
        let (s, e) = speech_extent(&samples, 35.0, -55.0);
        audio.extend(&samples[(s * 16_000.0) as usize..(e * 16_000.0) as usize]);
        audio.extend(noise.samples((gap_s * 16_000.0) as usize, -90.0));
    }
    audio
}

/// Counts the segmenter's events.
#[derive(Default)]
struct Events {
    tentative: usize,
    resumed: usize,
    closed: usize,
}

impl CaptureObserver for Events {
    fn utterance(&mut self, _: Utterance) {}
    fn segment(&mut self, event: SegmentEvent) {
        match event {
            SegmentEvent::Tentative { .. } => self.tentative += 1,
            SegmentEvent::Resumed { .. } => self.resumed += 1,
            SegmentEvent::Closed { .. } => self.closed += 1,
        }
    }
}

/// `emomon run --headless --realtime` on `wav`: the utterance records and the summary.
fn run(wav: &Path, log: &Path, extra: &[&str]) -> (Vec<UtteranceRecord>, serde_json::Value) {
    let out = headless_run(wav, log, &[&["--realtime"], extra].concat())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let parsed = session_log::read(log).unwrap();
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    let records = parsed
        .entries
        .into_iter()
        .filter_map(|e| match e.entry.record {
            Record::Utterance(u) => Some(u),
            Record::Skipped(s) => panic!("nothing is skipped: {s:?}"),
            _ => None,
        })
        .collect();
    (records, summary)
}

#[test]
fn speculation_logs_what_the_plain_run_logs_with_latency_from_the_end_of_speech() {
    let audio = speech_with_pauses();
    // The short pause makes the segmenter announce an end and retract it.
    let mut events = Events::default();
    let mut source = MemorySource::new("speech", audio.clone(), 16_000, 1);
    run_capture_observed(
        &mut source,
        &Default::default(),
        &AtomicBool::new(false),
        &mut events,
    )
    .unwrap();
    assert!(
        events.resumed >= 1 && events.closed >= 2,
        "{} {} {}",
        events.tentative,
        events.resumed,
        events.closed
    );
    assert!(events.tentative >= events.closed + events.resumed);

    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    write_wav(&wav, &audio, 16_000);
    let (fast, fast_summary) = run(&wav, &dir.path().join("speculative.jsonl"), &[]);
    let (plain, plain_summary) = run(&wav, &dir.path().join("plain.jsonl"), &["--no-speculative"]);

    assert_eq!(fast.len(), events.closed, "{fast:?}");
    assert_eq!(plain.len(), fast.len(), "{plain:?}\n{fast:?}");
    for (f, p) in fast.iter().zip(&plain) {
        assert_eq!((f.id, f.start_s, f.end_s), (p.id, p.start_s, p.end_s));
        for (a, b) in f.probs.iter().zip(&p.probs) {
            assert!(
                (a - b).abs() < 1e-5,
                "utterance {}: {:?} vs {:?}",
                f.id,
                f.probs,
                p.probs
            );
        }
        // End of speech → result is the close → result plus the hangover (400 ms
        // after the last voiced frame; records are rounded to 0.1 ms).
        for r in [f, p] {
            let speech = r.speech_latency_ms.expect("speech_latency_ms is logged");
            assert!(
                (speech - r.latency_ms - 400.0).abs() < 0.2,
                "utterance {}: {speech} vs {}",
                r.id,
                r.latency_ms
            );
        }
    }
    for summary in [&fast_summary, &plain_summary] {
        assert_eq!(summary["skipped_utterances"], 0, "{summary}");
        let (p50, p95) = (
            summary["speech_latency_p50_ms"].as_f64().unwrap(),
            summary["speech_latency_p95_ms"].as_f64().unwrap(),
        );
        assert!(400.0 <= p50 && p50 <= p95, "{summary}");
    }
}
