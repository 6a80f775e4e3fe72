//! `emomon bench speakers`: how well the speaker tracks tell two real voices apart, and
//! what an embedding costs.
//!
//! Two-person conversations are built from the clips of `../shared/data` (EmoDB speakers,
//! RAVDESS actors; same- and mixed-gender pairs reported apart): alternating turns of
//! 1–10 s, 0.3–2 s apart, several clips to a turn. The mix goes through emomon's own
//! VAD/segmenter; each utterance is embedded once and given a speaker by online
//! clustering (`--speakers 2`) and by enrolment (three clips of each voice, not used in
//! the conversation). An utterance's truth is the speaker whose clips it overlaps most.
//! A third voice, not enrolled, measures how often a stranger is taken for an enrolled
//! voice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use emomon::audio::memory::MemorySource;
use emomon::capture::{FrontEndConfig, run_capture};
use emomon::speaker::conversation::{Clip, Conversation, TurnPlan, clustering_accuracy};
use emomon::speaker::{
    ENROLLED_AT_LEAST, NEW_SPEAKER_BELOW, OPENS_FROM_S, SpeakerTracker, UNKNOWN, enrolment_voice,
    load_encoder,
};

#[derive(Debug, Args)]
pub struct SpeakersBenchArgs {
    /// The shared speech data (holds manifest.csv, emodb/, ravdess/).
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Conversations per group (dataset × same/mixed gender).
    #[arg(long, default_value_t = 6)]
    pub conversations: usize,
    /// Turns per conversation.
    #[arg(long, default_value_t = 12)]
    pub turns: usize,
    /// Seed of the draws (pairs, clip order, turn lengths, gaps).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Cosine similarity below which clustering opens a new speaker (to tune it).
    #[arg(long, default_value_t = NEW_SPEAKER_BELOW)]
    pub new_speaker_below: f32,
    /// Shortest utterance, seconds, that may open a new speaker (to tune it).
    #[arg(long, default_value_t = OPENS_FROM_S)]
    pub opens_from_s: f32,
    /// Cosine similarity an utterance needs to an enrolled voice (to tune it).
    #[arg(long, default_value_t = ENROLLED_AT_LEAST)]
    pub enrolled_at_least: f32,
    /// Directory of the converted speaker encoder (default: where `emomon setup` puts it).
    #[arg(long, value_name = "DIR")]
    pub speaker_encoder: Option<PathBuf>,
    /// Also write every embedding (utterances with their times and truth, enrolment
    /// clips, strangers) to FILE, one JSON object per conversation, so the decision
    /// rules can be studied offline without embedding again. Holds no audio.
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
}

/// One speaker's clips from the manifest.
struct Voice {
    gender: String,
    /// Each clip and its emotion label (for the `--dump` study of how emotion moves a
    /// voice's embedding).
    paths: Vec<(PathBuf, String)>,
}

/// Speakers of `dataset` in the manifest, by speaker id.
fn voices(data: &Path, dataset: &str) -> anyhow::Result<BTreeMap<String, Voice>> {
    let manifest = data.join("manifest.csv");
    let mut reader = csv::Reader::from_path(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let mut out: BTreeMap<String, Voice> = BTreeMap::new();
    for row in reader.records() {
        let row = row.with_context(|| format!("{}: bad row", manifest.display()))?;
        if row.get(1) != Some(dataset) {
            continue;
        }
        let (Some(path), Some(speaker), Some(label)) = (row.get(0), row.get(2), row.get(3)) else {
            continue;
        };
        let gender = row
            .get(5)
            .unwrap_or("")
            .split(';')
            .find_map(|kv| kv.strip_prefix("gender="))
            .unwrap_or("?")
            .to_string();
        out.entry(speaker.to_string())
            .or_insert_with(|| Voice {
                gender,
                paths: Vec::new(),
            })
            .paths
            .push((data.join(path), label.to_string()));
    }
    if out.len() < 3 {
        bail!(
            "{} lists {} speaker(s) of {dataset}; the benchmark needs at least 3",
            manifest.display(),
            out.len()
        );
    }
    Ok(out)
}

#[derive(Default)]
struct Tally {
    conversations: usize,
    utterances: usize,
    clustered_right: f64,
    enrolled_right: usize,
    enrolled_wrong: usize,
    enrolled_unknown: usize,
    strangers: usize,
    strangers_accepted: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.conversations += other.conversations;
        self.utterances += other.utterances;
        self.clustered_right += other.clustered_right;
        self.enrolled_right += other.enrolled_right;
        self.enrolled_wrong += other.enrolled_wrong;
        self.enrolled_unknown += other.enrolled_unknown;
        self.strangers += other.strangers;
        self.strangers_accepted += other.strangers_accepted;
    }

    fn print(&self, name: &str) {
        let pct = |n: f64, d: usize| 100.0 * n / d.max(1) as f64;
        println!(
            "  {name:<19} {:>5} {:>6} {:>10.1} {:>10.1} {:>8.1} {:>8.1} {:>10.1}",
            self.conversations,
            self.utterances,
            pct(self.clustered_right, self.utterances),
            pct(self.enrolled_right as f64, self.utterances),
            pct(self.enrolled_unknown as f64, self.utterances),
            pct(self.enrolled_wrong as f64, self.utterances),
            pct(self.strangers_accepted as f64, self.strangers),
        );
    }
}

pub fn run(args: &SpeakersBenchArgs) -> anyhow::Result<()> {
    let encoder = load_encoder(args.speaker_encoder.as_deref())?;
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let config = FrontEndConfig::default();
    let never = AtomicBool::new(false);
    let mut embed_ms: Vec<f64> = Vec::new();
    let mut embed_cpu_ms: Vec<f64> = Vec::new();
    let mut embed_audio_s = 0.0;
    let mut total = Tally::default();
    let mut dump = args
        .dump
        .as_ref()
        .map(|p| {
            std::fs::File::create(p)
                .map(std::io::BufWriter::new)
                .with_context(|| format!("--dump: cannot create {}", p.display()))
        })
        .transpose()?;
    println!(
        "bench speakers: {} conversation(s) per group, {} turns, seed {}; new speaker below {} from {} s, enrolled at least {}",
        args.conversations,
        args.turns,
        args.seed,
        args.new_speaker_below,
        args.opens_from_s,
        args.enrolled_at_least
    );
    println!(
        "  {:<19} {:>5} {:>6} {:>10} {:>10} {:>8} {:>8} {:>10}",
        "group", "conv", "utts", "cluster %", "enroll %", "unkn %", "wrong %", "stranger %"
    );
    for dataset in ["emodb", "ravdess"] {
        let voices = voices(&args.data, dataset)?;
        let ids: Vec<&String> = voices.keys().collect();
        for mixed in [false, true] {
            let mut tally = Tally::default();
            for _ in 0..args.conversations {
                // A pair of the wanted gender relation, and a stranger outside it.
                let (a, b) = loop {
                    let (a, b) = (rng.usize(..ids.len()), rng.usize(..ids.len()));
                    let (ga, gb) = (&voices[ids[a]].gender, &voices[ids[b]].gender);
                    if a != b && (ga != gb) == mixed {
                        break (a, b);
                    }
                };
                let c = loop {
                    let c = rng.usize(..ids.len());
                    if c != a && c != b {
                        break c;
                    }
                };
                let mut clips: Vec<Vec<Clip>> = Vec::new();
                let mut enrol: Vec<(String, Vec<f32>)> = Vec::new();
                let mut enrol_clips: Vec<Vec<f32>> = Vec::new();
                // The emotion of each speaker's conversation clips, in the order they are used.
                let mut emotions: Vec<Vec<String>> = Vec::new();
                for (k, &who) in [a, b].iter().enumerate() {
                    let mut paths = voices[ids[who]].paths.clone();
                    rng.shuffle(&mut paths);
                    // One enrolment recording: three clips with a pause after each.
                    let mut audio = Vec::new();
                    for (p, _) in &paths[..3] {
                        let clip = emomon::audio::whole_file::read_16k(p)?;
                        if dump.is_some() {
                            enrol_clips.push(encoder.embed(&clip)?);
                        }
                        audio.extend(clip);
                        audio.resize(audio.len() + 8_000, 0.0);
                    }
                    enrol.push((format!("voice{k}"), audio));
                    let mut mine = Vec::new();
                    let used = &paths[3..paths.len().min(23)];
                    emotions.push(used.iter().map(|(_, label)| label.clone()).collect());
                    for (p, _) in used {
                        mine.push(Clip {
                            speaker: k,
                            samples: emomon::audio::whole_file::read_16k(p)?,
                        });
                    }
                    clips.push(mine);
                }
                if rng.bool() {
                    clips.swap(0, 1);
                }
                let conv =
                    Conversation::alternating(&clips, args.turns, TurnPlan::default(), &mut rng);
                let span_emotions = span_emotions(&conv, &emotions);
                let mut utterances = Vec::new();
                let mut source = MemorySource::new("conversation", conv.audio.clone(), 16_000, 1);
                run_capture(&mut source, &config, &never, &mut |u| utterances.push(u))?;

                let enrolled: Vec<(String, Vec<f32>)> = enrol
                    .iter()
                    .map(|(name, audio)| Ok((name.clone(), enrolment_voice(&encoder, audio)?)))
                    .collect::<Result<_, emomon::speaker::SpeakerError>>()?;
                let by_name_voices = enrolled.clone();
                let mut by_name = SpeakerTracker::enrolled(enrolled, args.enrolled_at_least)?;
                let mut clusters =
                    SpeakerTracker::clustering_with(2, args.new_speaker_below, args.opens_from_s)?;
                let mut pairs = Vec::new();
                let mut dumped = Vec::new();
                for u in &utterances {
                    let Some(truth) = conv.truth(u.start_s, u.end_s) else {
                        continue;
                    };
                    let (started, cpu) = (Instant::now(), process_cpu_s());
                    let e = encoder.embed(&u.samples)?;
                    embed_ms.push(started.elapsed().as_secs_f64() * 1e3);
                    if let (Some(before), Some(after)) = (cpu, process_cpu_s()) {
                        embed_cpu_ms.push((after - before) * 1e3);
                    }
                    embed_audio_s += u.samples.len() as f64 / 16_000.0;
                    if dump.is_some() {
                        dumped.push(serde_json::json!({
                            "start_s": u.start_s, "end_s": u.end_s, "truth": truth,
                            "purity": purity(&conv, u.start_s, u.end_s, truth),
                            "emotion": main_emotion(&conv, &span_emotions, u.start_s, u.end_s, truth),
                            "embedding": &e, "partials": encoder.embed_partials(&u.samples)?,
                        }));
                    }
                    let seconds = u.duration_s() as f32;
                    pairs.push((clusters.assign_speech(&e, seconds)?.label, truth));
                    let named = by_name.assign(&e)?.label;
                    if named == format!("voice{truth}") {
                        tally.enrolled_right += 1;
                    } else if named == UNKNOWN {
                        tally.enrolled_unknown += 1;
                    } else {
                        tally.enrolled_wrong += 1;
                    }
                }
                tally.clustered_right += clustering_accuracy(&pairs) * pairs.len() as f64;
                tally.utterances += pairs.len();
                tally.conversations += 1;
                let mut stranger_embeddings = Vec::new();
                for (p, _) in voices[ids[c]].paths.iter().take(5) {
                    let e = encoder.embed(&emomon::audio::whole_file::read_16k(p)?)?;
                    if dump.is_some() {
                        stranger_embeddings.push(e.clone());
                    }
                    tally.strangers += 1;
                    tally.strangers_accepted += usize::from(by_name.assign(&e)?.label != UNKNOWN);
                }
                if let Some(out) = dump.as_mut() {
                    let enrolled: Vec<Vec<f32>> =
                        by_name_voices.iter().map(|(_, e)| e.clone()).collect();
                    let line = serde_json::json!({
                        "dataset": dataset, "mixed": mixed,
                        "voices": [ids[a], ids[b]], "stranger": ids[c],
                        "utterances": dumped, "enrolled": enrolled,
                        "enrol_clips": enrol_clips, "strangers": stranger_embeddings,
                    });
                    writeln!(out, "{line}").context("--dump: write failed")?;
                }
            }
            tally.print(&format!(
                "{dataset} {}",
                if mixed { "mixed" } else { "same-gender" }
            ));
            total.add(&tally);
        }
    }
    total.print("all");
    if let Some(mut out) = dump {
        out.flush().context("--dump: write failed")?;
    }
    if let Some((median, p95)) = median_p95(&mut embed_ms) {
        println!(
            "  embedding: {} utterances, mean {:.2} s; median {median:.1} ms, p95 {p95:.1} ms per utterance (flex CPU, {} kernels, {} threads visible)",
            embed_ms.len(),
            embed_audio_s / embed_ms.len() as f64,
            emomon_models::kernels::isa().name(),
            std::thread::available_parallelism().map_or(1, usize::from)
        );
    }
    if let Some((median, p95)) = median_p95(&mut embed_cpu_ms) {
        println!(
            "  embedding CPU time (all threads; load-independent): median {median:.1} ms, p95 {p95:.1} ms per utterance"
        );
    }
    Ok(())
}

/// Median and 95th percentile (nearest rank) of `values`, sorting them; `None` if empty.
fn median_p95(values: &mut [f64]) -> Option<(f64, f64)> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let p95 = ((n as f64 * 0.95).ceil() as usize).clamp(1, n.max(1)) - 1;
    Some((*values.get(n / 2)?, values[p95]))
}

/// CPU time of the whole process (every thread), seconds; `None` where not available.
/// On a loaded machine an embedding's wall time includes waiting for a core; its CPU time
/// is what it costs, and bounds the wall time on an idle machine from above (divided by
/// the threads it keeps busy).
fn process_cpu_s() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the call's duration.
        let ok = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0;
        ok.then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    None
}

/// The emotion label of each span of `conv`, given each speaker's clip labels in the order
/// [`Conversation::alternating`] uses the clips (round-robin from the first).
fn span_emotions<'a>(conv: &Conversation, emotions: &'a [Vec<String>]) -> Vec<&'a str> {
    let mut next = vec![0usize; emotions.len()];
    conv.spans
        .iter()
        .map(|&(_, _, who)| {
            let labels = &emotions[who];
            next[who] += 1;
            labels[(next[who] - 1) % labels.len()].as_str()
        })
        .collect()
}

/// The emotion of the clip of `truth` that overlaps `start_s..end_s` most.
fn main_emotion<'a>(
    conv: &Conversation,
    span_emotions: &[&'a str],
    start_s: f64,
    end_s: f64,
    truth: usize,
) -> &'a str {
    conv.spans
        .iter()
        .zip(span_emotions)
        .filter(|((_, _, who), _)| *who == truth)
        .map(|(&(s, e, _), label)| (end_s.min(e) - start_s.max(s), *label))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or("?", |(_, label)| label)
}

/// Share of the speech inside `start_s..end_s` that `truth` spoke (1 when the utterance
/// holds one voice only; below 1 when the segmenter merged the end of one turn into the
/// next).
fn purity(conv: &Conversation, start_s: f64, end_s: f64, truth: usize) -> f64 {
    let (mut mine, mut all) = (0.0, 0.0);
    for &(s, e, who) in &conv.spans {
        let o = (end_s.min(e) - start_s.max(s)).max(0.0);
        all += o;
        if who == truth {
            mine += o;
        }
    }
    if all > 0.0 { mine / all } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::{main_emotion, median_p95, span_emotions};
    use emomon::speaker::conversation::Conversation;

    #[test]
    fn each_utterance_gets_the_emotion_of_its_speakers_clip_it_overlaps_most() {
        let mut conv = Conversation::default();
        // Speaker 1 (two clips, reused round-robin) and speaker 0 alternate.
        for (who, seconds) in [(1, 1.0), (0, 2.0), (1, 1.0), (1, 0.5)] {
            conv.speak(who, &vec![0.1; 32_000], seconds);
            conv.pause(0.5);
        }
        let emotions = vec![
            vec!["neutral".to_string()],
            vec!["angry".into(), "sad".into()],
        ];
        let spans = span_emotions(&conv, &emotions);
        assert_eq!(spans, ["angry", "neutral", "sad", "angry"]);
        // 4.0-5.5 s holds speaker 1's "sad" clip (4.0-5.0 s) and its next "angry" (5.5-6.0).
        assert_eq!(main_emotion(&conv, &spans, 4.0, 5.7, 1), "sad");
        assert_eq!(main_emotion(&conv, &spans, 1.5, 3.0, 0), "neutral");
    }

    #[test]
    fn median_and_p95_are_nearest_ranks() {
        let mut v: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(median_p95(&mut v), Some((11.0, 19.0)));
        assert_eq!(median_p95(&mut [4.0]), Some((4.0, 4.0)));
        assert_eq!(median_p95(&mut []), None);
    }
}
