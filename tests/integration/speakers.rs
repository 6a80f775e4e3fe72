//! Issue 17: who is speaking, on real voices. Conversations are built from
//! `../shared/data` clips of known EmoDB speakers, cut by emomon's own segmenter, and each
//! utterance's speaker is judged by the burn speaker encoder and the tracker. Needs the
//! shared data and the speaker encoder that `emomon setup` converts; skips without them.
//!
//! The bounds are what this encoder and tracker achieve today on these acted, emotional
//! 2 s clips (measured: 0.67 late-third accuracy, 21 of 30 monologue utterances S1, 17 of
//! 17 enrolled utterances named right, 1 of 6 stranger clips unknown), short of issue 17's targets (≥ 95 % / 98 %;
//! see README "Who is speaking"); they catch regressions, and the printed numbers say
//! where things stand.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use emomon::audio::memory::MemorySource;
use emomon::capture::{FrontEndConfig, run_capture};
use emomon::speaker::conversation::{Clip, Conversation, TurnPlan, clustering_accuracy};
use emomon::speaker::{SpeakerEncoder, SpeakerMode, SpeakerStage, UNKNOWN, load_encoder};

fn setup(test: &str) -> Option<(PathBuf, Arc<SpeakerEncoder>)> {
    let data = common::shared_data(test)?;
    match load_encoder(None) {
        Ok(encoder) => Some((data, encoder)),
        Err(e) => {
            common::skip(test, e);
            None
        }
    }
}

/// The first `n` EmoDB clips of `speaker` (sorted by name), as (speaker index, audio).
fn clips(data: &Path, speaker: &str, index: usize, n: usize) -> Vec<Clip> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("emodb"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with(speaker) && f.ends_with(".wav"))
        .collect();
    names.sort();
    names
        .iter()
        .take(n)
        .map(|f| Clip {
            speaker: index,
            samples: common::decode_16k(&data.join("emodb").join(f)),
        })
        .collect()
}

/// The conversation's utterances (as the segmenter cuts them) with their true speaker.
fn utterances(conv: &Conversation) -> Vec<(Vec<f32>, usize)> {
    let mut source = MemorySource::new("conversation", conv.audio.clone(), 16_000, 1);
    let mut out = Vec::new();
    run_capture(
        &mut source,
        &FrontEndConfig::default(),
        &AtomicBool::new(false),
        &mut |u| {
            if let Some(truth) = conv.truth(u.start_s, u.end_s) {
                out.push((u.samples.to_vec(), truth));
            }
        },
    )
    .unwrap();
    out
}

#[test]
fn two_speakers_then_a_late_third_get_stable_labels_in_order_of_appearance() {
    let Some((data, encoder)) = setup("speakers::late_third") else {
        return;
    };
    // EmoDB 08 (f) and 10 (m) alternate; 13 (f) joins only in the last turns.
    let pair = vec![clips(&data, "08", 0, 12), clips(&data, "10", 1, 12)];
    let mut rng = fastrand::Rng::with_seed(17);
    let mut conv = Conversation::alternating(&pair, 8, TurnPlan::default(), &mut rng);
    for clip in clips(&data, "13", 2, 3) {
        conv.pause(0.8);
        conv.speak(2, &clip.samples, 10.0);
    }
    let utts = utterances(&conv);
    assert!(utts.len() >= 15, "{} utterances", utts.len());
    let mut stage = SpeakerStage::new(encoder, &SpeakerMode::Cluster(3)).unwrap();
    let mut pairs = Vec::new();
    for (audio, truth) in &utts {
        pairs.push((stage.assign(audio).unwrap().label, *truth));
    }
    // Labels in order of first appearance: the first utterance is S1, and each new
    // label is the next number (S2 before S3), whenever it opens.
    assert_eq!(pairs[0].0, "S1");
    let first = |l: &str| pairs.iter().position(|(x, _)| x == l);
    assert!(
        first("S3").is_none() || first("S2") < first("S3"),
        "{pairs:?}"
    );
    let n = stage.labels().len();
    assert_eq!(stage.labels(), ["S1", "S2", "S3"][..n]);
    let accuracy = clustering_accuracy(&pairs);
    println!(
        "late third speaker: {} utterances, accuracy {accuracy:.3}",
        pairs.len()
    );
    // Chance with the best mapping of labels to speakers is about 0.5 here.
    assert!(accuracy >= 0.6, "accuracy {accuracy}: {pairs:?}");
}

#[test]
fn a_long_monologue_stays_one_speaker() {
    let Some((data, encoder)) = setup("speakers::monologue") else {
        return;
    };
    let mut conv = Conversation::default();
    for clip in clips(&data, "11", 0, 30) {
        conv.speak(0, &clip.samples, 10.0);
        conv.pause(0.5);
    }
    let mut stage = SpeakerStage::new(encoder, &SpeakerMode::Cluster(2)).unwrap();
    let labels: Vec<String> = utterances(&conv)
        .iter()
        .map(|(audio, _)| stage.assign(audio).unwrap().label)
        .collect();
    assert!(labels.len() >= 20, "{} utterances", labels.len());
    let s1 = labels.iter().filter(|l| *l == "S1").count();
    println!("monologue: {s1} of {} utterances S1", labels.len());
    // The monologue's speaker keeps S1 for most utterances (a second label opens where
    // an utterance is unlike everything heard so far).
    assert!(s1 as f64 >= 0.6 * labels.len() as f64, "{labels:?}");
}

#[test]
fn enrolled_voices_are_named_and_a_stranger_is_unknown() {
    let Some((data, encoder)) = setup("speakers::enrolled") else {
        return;
    };
    // Enrol with three clips each (not used in the conversation).
    let enrol = |speaker: &str| -> Vec<f32> {
        clips(&data, speaker, 0, 3)
            .into_iter()
            .flat_map(|c| c.samples)
            .collect()
    };
    let mode = SpeakerMode::Enrolled(vec![
        ("therapist".into(), enrol("12")),
        ("client".into(), enrol("14")),
    ]);
    let mut stage = SpeakerStage::new(Arc::clone(&encoder), &mode).unwrap();
    let names = ["therapist", "client"];
    let pair = vec![
        clips(&data, "12", 0, 15).split_off(3),
        clips(&data, "14", 1, 15).split_off(3),
    ];
    let mut rng = fastrand::Rng::with_seed(3);
    let conv = Conversation::alternating(&pair, 8, TurnPlan::default(), &mut rng);
    let utts = utterances(&conv);
    let right = utts
        .iter()
        .filter(|(audio, truth)| stage.assign(audio).unwrap().label == names[*truth])
        .count();
    println!("enrolled: {right} of {} utterances named right", utts.len());
    // 17 of 17 since enrolment averages the recording's utterances (15 of 17 before).
    assert!(right as f64 >= 0.9 * utts.len() as f64);
    // A voice nobody enrolled (EmoDB 09): at the 0.65 threshold the benchmark takes a
    // stranger for an enrolled voice ~2 times in 3 (README); here 1 of 6 clips is
    // `unknown`, so the threshold does reject some strangers.
    let stranger = clips(&data, "09", 0, 6);
    let unknown = stranger
        .iter()
        .filter(|c| stage.assign(&c.samples).unwrap().label == UNKNOWN)
        .count();
    println!("stranger: {unknown} of 6 clips unknown");
    assert!(unknown >= 1, "{unknown} of 6 stranger clips unknown");
}

/// `emomon score --speakers SPEAKERS --format jsonl` of `input` with the tiny model.
fn score_with_speakers(input: &str, speakers: &str) -> std::process::Output {
    common::emomon(&[
        "score",
        "--model",
        &common::fixture_model("tiny-qwen2-audio"),
        "--input",
        input,
        "--labels",
        "neutral,happy,sad,angry",
        "--speakers",
        speakers,
        "--format",
        "jsonl",
    ])
}

/// A two-person recording of `turns` turns in `dir`: EmoDB 08 (f) and 15 (m), the
/// mixed-gender pair the tracker tells apart best, so both voices are heard early.
fn mixed_pair_wav(data: &Path, dir: &Path, turns: usize) -> (PathBuf, Conversation) {
    let pair = vec![clips(data, "08", 0, 6), clips(data, "15", 1, 6)];
    let mut rng = fastrand::Rng::with_seed(5);
    let conv = Conversation::alternating(&pair, turns, TurnPlan::default(), &mut rng);
    let wav = dir.join("conversation.wav");
    common::write_wav(&wav, &conv.audio, 16_000);
    (wav, conv)
}

/// `emomon score --speakers 2` on a real two-person recording: every line names its
/// speaker, S1 first, both voices heard; bad speaker options are clear errors.
#[test]
fn score_cli_labels_each_utterance_with_its_speaker() {
    let Some((data, _)) = setup("speakers::score_cli") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (wav, conv) = mixed_pair_wav(&data, dir.path(), 4);
    let model = common::fixture_model("tiny-qwen2-audio");
    let input = wav.to_str().unwrap();
    let out = score_with_speakers(input, "2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pairs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let speaker = r["speaker"].as_str().expect("speaker field").to_string();
        let (s, e) = (r["start_s"].as_f64().unwrap(), r["end_s"].as_f64().unwrap());
        pairs.push((speaker, conv.truth(s, e).unwrap_or(0)));
    }
    assert_eq!(pairs[0].0, "S1", "{pairs:?}");
    assert!(pairs.iter().any(|(l, _)| l == "S2"), "{pairs:?}");
    let accuracy = clustering_accuracy(&pairs);
    println!(
        "score --speakers 2: {} utterances, accuracy {accuracy:.3}",
        pairs.len()
    );
    // Accuracy itself is measured by `emomon bench speakers` (README); here the 0.3–2 s
    // turn gaps let the segmenter merge some turns, and 0.67 is what this recording gives.
    assert!(accuracy >= 0.6, "{pairs:?}");

    for (args, says) in [
        (&["--speakers", "0"][..], "--speakers needs at least 1"),
        (&["--enroll", "therapist"][..], "expected NAME=FILE"),
    ] {
        let mut all = vec![
            "score",
            "--model",
            &model,
            "--labels",
            "neutral,happy,sad,angry",
            "--input",
            input,
        ];
        all.extend_from_slice(args);
        let out = common::emomon(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A two-microphone recording made from real clips: EmoDB 08 on the left channel, 10 on
/// the right, alternating, each voice also leaking into the other channel 16 dB down
/// (as two microphones in one room do), and one stretch where both talk at once. Each
/// voice is at -26 dBFS RMS on its own microphone.
/// Returns the interleaved stereo audio and each clip's (start_s, end_s, channel).
fn two_microphones(data: &Path) -> (Vec<f32>, Vec<(f64, f64, usize)>) {
    const BLEED: f32 = 0.16;
    let voices = [clips(data, "08", 0, 4), clips(data, "10", 1, 4)];
    let mut left: Vec<f32> = Vec::new();
    let mut right: Vec<f32> = Vec::new();
    let mut spans = Vec::new();
    let mut at = 8_000usize; // 0.5 s of silence first
    let mut place = |channel: usize, samples: &[f32], at: usize| {
        let end = at + samples.len();
        for ch in [&mut left, &mut right] {
            if ch.len() < end + 16_000 {
                ch.resize(end + 16_000, 0.0);
            }
        }
        let (own, other) = if channel == 0 {
            (&mut left, &mut right)
        } else {
            (&mut right, &mut left)
        };
        // Each person is close to their own microphone: both voices at one level there.
        let rms = (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt();
        let gain = 0.05 / rms.max(1e-6);
        for (i, &s) in samples.iter().enumerate() {
            own[at + i] += gain * s;
            other[at + i] += BLEED * gain * s;
        }
        spans.push((at as f64 / 16e3, end as f64 / 16e3, channel));
        end
    };
    for k in 0..3 {
        for (channel, voice) in voices.iter().enumerate() {
            at = place(channel, &voice[k].samples, at) + 12_000; // 0.75 s turn gap
        }
    }
    // Cross-talk: the right speaker starts 0.5 s into the left speaker's last clip.
    place(0, &voices[0][3].samples, at);
    place(1, &voices[1][3].samples, at + 8_000);
    let audio = left
        .iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    (audio, spans)
}

/// [`two_microphones`] written to `dir/two-mics.wav` (stereo, 16 kHz), and its spans.
fn two_microphones_wav(data: &Path, dir: &Path) -> (PathBuf, Vec<(f64, f64, usize)>) {
    let (audio, spans) = two_microphones(data);
    let wav = dir.join("two-mics.wav");
    common::write_wav_channels(&wav, &audio, 16_000, 2);
    (wav, spans)
}

/// True when the clips of `channel`'s voice cover most of `start_s..end_s` (in the
/// stretch where both talk, both voices do).
fn spoken_on(spans: &[(f64, f64, usize)], channel: usize, start_s: f64, end_s: f64) -> bool {
    let own: f64 = spans
        .iter()
        .filter(|sp| sp.2 == channel)
        .map(|&(a, b, _)| (end_s.min(b) - start_s.max(a)).max(0.0))
        .sum();
    own > 0.5 * (end_s - start_s)
}

/// Every (channel, start_s, end_s) in `got` lies on the channel of the voice that spoke
/// it and overlaps a clip of that voice (none is made of bleed alone), and each clip of
/// `spans`, both sides of the cross-talk included, is heard on its own channel.
fn assert_each_voice_on_its_channel(spans: &[(f64, f64, usize)], got: &[(usize, f64, f64)]) {
    for &(c, s, e) in got {
        assert!(
            spoken_on(spans, c, s, e),
            "{c} {s:.2}–{e:.2} is bleed: {got:?}"
        );
    }
    for &(a, b, c) in spans {
        assert!(
            got.iter()
                .any(|&(gc, s, e)| gc == c && e.min(b) - s.max(a) > 0.5 * (b - a)),
            "clip {a:.2}–{b:.2} of channel {c} missing: {got:?}"
        );
    }
}

#[test]
fn channels_mode_gives_each_channel_its_own_utterances_and_silences_the_bleed() {
    use emomon::speaker::channels::run_channels_capture;
    let Some(data) = common::shared_data("speakers::channels") else {
        return;
    };
    let (audio, spans) = two_microphones(&data);
    let mut source = MemorySource::new("two-mics", audio, 16_000, 2);
    let mut got: Vec<(usize, f64, f64)> = Vec::new();
    let outcome = run_channels_capture(
        &mut source,
        &FrontEndConfig::default(),
        &AtomicBool::new(false),
        &mut |c, u| got.push((c, u.start_s, u.end_s)),
    )
    .unwrap();
    println!(
        "channels: {} utterances, {:.1} s of bleed silenced: {got:?}",
        got.len(),
        outcome.gated_s
    );
    assert_each_voice_on_its_channel(&spans, &got);
    assert_eq!(outcome.capture.summary.utterances, got.len() as u64);
    // The bleed was silenced where the other voice was the louder one.
    assert!(outcome.gated_s > 5.0, "{} s gated", outcome.gated_s);
}

/// `emomon score --speakers channels` on a real stereo WAV: L and R follow the channels;
/// a mono file is refused with what to do instead.
#[test]
fn score_cli_names_each_utterance_by_its_channel() {
    let Some(data) = common::shared_data("speakers::channels_cli") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (wav, spans) = two_microphones_wav(&data, dir.path());
    let score = |input: &str| score_with_speakers(input, "channels");
    let out = score(wav.to_str().unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("silenced as the other channel's bleed"),
        "{err}"
    );
    let mut starts = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let (s, e) = (r["start_s"].as_f64().unwrap(), r["end_s"].as_f64().unwrap());
        let channel = match r["speaker"].as_str() {
            Some("L") => 0,
            Some("R") => 1,
            other => panic!("speaker {other:?}: {line}"),
        };
        assert!(spoken_on(&spans, channel, s, e), "bleed: {line}");
        starts.push(s);
    }
    assert!(starts.len() >= spans.len(), "{starts:?}");
    assert!(starts.is_sorted(), "{starts:?}");

    let mono = dir.path().join("mono.wav");
    common::write_wav(&mono, &clips(&data, "08", 0, 1)[0].samples, 16_000);
    let out = score(mono.to_str().unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("needs a stereo input"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// `emomon run --speakers channels --headless` on a real stereo WAV: each utterance in the
/// session log is named by the channel its voice was on (L/R), every clip is heard on its
/// own channel, and the summary keeps one track per channel; a mono file is refused with
/// what to do, before any session log exists.
#[test]
fn run_cli_logs_each_utterance_under_its_channel() {
    let Some(data) = common::shared_data("speakers::run_channels") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (wav, spans) = two_microphones_wav(&data, dir.path());
    let model = common::fixture_model("tiny-qwen2-audio");
    let run = |input: &Path, log: &Path| {
        common::emomon(&[
            "run",
            "--headless",
            "--model",
            &model,
            "--labels",
            "neutral,happy,sad,angry",
            "--speakers",
            "channels",
            "--input",
            input.to_str().unwrap(),
            "--session-log",
            log.to_str().unwrap(),
        ])
    };
    let log = dir.path().join("session.jsonl");
    let out = run(&wav, &log);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let mut got: Vec<(usize, f64, f64)> = Vec::new();
    let session = emomon::session_log::read(&log).unwrap();
    assert_eq!(
        emomon::speaker::SpeakerSetup::from_config(&session.session_start().unwrap().config),
        Some(emomon::speaker::SpeakerSetup::Channels),
        "the start record says how speakers were told apart"
    );
    for entry in session.entries {
        if let emomon::session_log::Record::Utterance(u) = entry.entry.record {
            let channel = match u.speaker.as_deref() {
                Some("L") => 0,
                Some("R") => 1,
                other => panic!("utterance {} has speaker {other:?}", u.id),
            };
            got.push((channel, u.start_s, u.end_s));
        }
    }
    println!("run --speakers channels: {got:?}");
    assert_each_voice_on_its_channel(&spans, &got);
    // The summary (last stdout line) has one track per channel, counting its utterances.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a summary line")).unwrap();
    let tracks: Vec<(String, u64)> = summary["speakers"]
        .as_array()
        .expect("per-speaker summary")
        .iter()
        .map(|t| {
            let n = t["aggregate"]["session"]["n_utterances"].as_u64().unwrap();
            (t["speaker"].as_str().unwrap().to_string(), n)
        })
        .collect();
    let on = |c: usize| got.iter().filter(|g| g.0 == c).count() as u64;
    assert_eq!(
        tracks,
        [("L".to_string(), on(0)), ("R".to_string(), on(1))],
        "{summary}"
    );
    assert!(
        err.contains("speaker L:") && err.contains("speaker R:"),
        "{err}"
    );

    let mono = dir.path().join("mono.wav");
    common::write_wav(&mono, &clips(&data, "08", 0, 1)[0].samples, 16_000);
    let mono_log = dir.path().join("mono.jsonl");
    let out = run(&mono, &mono_log);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("needs a stereo input")
            && err.contains("mono.wav has 1 channel"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!mono_log.exists(), "no session for a refused input");
}

/// `emomon run --speakers channels` from a two-channel microphone (a virtual ALSA device,
/// through cpal): the person on the left speaks, then the one on the right; the log names
/// them L and R. Stopped with SIGINT, as a user would.
#[cfg(unix)]
#[test]
fn run_from_a_two_channel_microphone_names_each_utterance_by_its_channel() {
    const TEST: &str = "speakers::run_from_a_two_channel_microphone";
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
    let silence = |seconds: f64| vec![[0.0f32; 2]; (seconds * 16e3) as usize];
    let mut frames = silence(1.0);
    frames.extend(
        common::decode_16k(&fixtures.join("03.wav"))
            .iter()
            .map(|&s| [s, 0.0]),
    );
    frames.extend(silence(1.5));
    frames.extend(
        common::decode_16k(&fixtures.join("07.wav"))
            .iter()
            .map(|&s| [0.0, s]),
    );
    frames.extend(silence(1.5));
    let Some(alsa_config) = crate::mic_alsa::virtual_capture(TEST, dir.path(), &frames) else {
        return;
    };
    let log = dir.path().join("live.jsonl");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_emomon"))
        .args(["run", "--headless", "--model"])
        .arg(common::fixture_model("tiny-qwen2-audio"))
        .args([
            "--labels",
            "neutral,happy,sad,angry",
            "--speakers",
            "channels",
        ])
        .arg("--session-log")
        .arg(&log)
        .env("ALSA_CONFIG_PATH", alsa_config)
        .env_remove("EMOMON_MODEL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let logged = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("\"type\":\"utterance\"")
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while logged() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // SAFETY: signals the child this test started, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let speakers: Vec<String> = emomon::session_log::read(&log)
        .unwrap()
        .entries
        .into_iter()
        .filter_map(|e| match e.entry.record {
            emomon::session_log::Record::Utterance(u) => u.speaker,
            _ => None,
        })
        .collect();
    assert_eq!(speakers, ["L", "R"], "{err}");
}

/// `emomon run --speakers 2` on a two-person recording, in a real 80×24 terminal (tmux):
/// the dashboard shows the focused speaker's Now panel, and `s` moves the focus to the
/// other speaker. Skips without tmux, the shared data or the speaker encoder.
#[test]
fn dashboard_s_key_moves_the_focus_to_the_other_speaker() {
    use crate::run_tmux::{Pane, tmux};
    use std::process::Command;
    if !Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        common::skip("speakers::tmux", "tmux is not installed");
        return;
    }
    let Some((data, _)) = setup("speakers::tmux") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (wav, _) = mixed_pair_wav(&data, dir.path(), 6);
    let command = format!(
        "'{}' run --realtime --input '{}' --model '{}' --labels neutral,happy,sad,angry --speakers 2 \
         --session-log '{}'; sleep 60",
        env!("CARGO_BIN_EXE_emomon"),
        wav.display(),
        common::fixture_model("tiny-qwen2-audio"),
        dir.path().join("log.jsonl").display(),
    );
    let pane = Pane::start("emomon-speakers-test", (80, 24), &command);
    // S1 in focus first: at 80×24 only its pair is drawn.
    pane.wait_for("S1 in focus", |s| {
        s.contains("S1 · Now") && !s.contains("S2 · Now")
    });
    // `s` moves the focus once S2 has been heard (before that it has nowhere to go).
    let start = std::time::Instant::now();
    loop {
        tmux(&["send-keys", "-t", &pane.0, "s"]);
        std::thread::sleep(std::time::Duration::from_millis(400));
        let screen = pane.screen();
        if screen.contains("S2 · Now") {
            assert!(!screen.contains("S1 · Now"), "{screen}");
            break;
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "`s` never showed S2:\n{screen}"
        );
    }
    tmux(&["send-keys", "-t", &pane.0, "s"]);
    pane.wait_for("S1 in focus again", |s| {
        s.contains("S1 · Now") && !s.contains("S2 · Now")
    });
}
