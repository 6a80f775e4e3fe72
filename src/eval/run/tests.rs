//! The evaluation's scoring loop with a stand-in model: the worker pool gives the
//! same outcomes and cache as one worker, and a model that panics on one clip costs
//! that clip only.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use emomon_models::scorer::LabelScores;
use emomon_models::whisper_runner::StageTimes;

use super::scoring::ClipScorer;
use super::*;

const LABELS: [&str; 2] = ["calm", "loud"];

/// Scores a clip by its loudness (so every clip has its own distinct scores); panics
/// on the clip whose amplitude is `panic_at`. Slower for quiet clips, so with several
/// workers later clips finish first.
struct Loudness {
    batch: usize,
    panic_at: Option<f32>,
    calls: AtomicUsize,
}

fn peak(audio: &[f32]) -> f32 {
    audio.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

impl ClipScorer for Loudness {
    fn natural_batch_for(&self, _: Method) -> usize {
        self.batch
    }

    fn score_method(&self, audio: &[&[f32]], method: Method) -> anyhow::Result<ScoredBatch> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let utterances = audio
            .iter()
            .map(|a| {
                let p = peak(a);
                if self.panic_at.is_some_and(|at| (p - at).abs() < 0.01) {
                    panic!("stand-in model broke on the clip of peak {p:.2}");
                }
                std::thread::sleep(Duration::from_millis((30.0 * (1.0 - p)) as u64));
                let loud = p / (p + 0.2);
                ModelAnswer {
                    scores: Ok(LabelScores {
                        labels: LABELS.map(String::from).to_vec(),
                        method,
                        logits: vec![0.0, p],
                        probs: vec![1.0 - loud, loud],
                        entropy: 0.0,
                    }),
                    generated: None,
                }
            })
            .collect();
        Ok(ScoredBatch {
            utterances,
            times: StageTimes::default(),
            total: Duration::from_millis(1),
        })
    }

    fn score_ensemble(
        &self,
        _: &[f32],
        _: Method,
        _: &[String],
        _: Option<Sampling>,
    ) -> anyhow::Result<(Vec<Vec<ModelAnswer>>, Duration)> {
        anyhow::bail!("not used here")
    }
}

/// `n` half-second 16 kHz tones of peak 0.1, 0.2, … in `dir`, as manifest rows.
fn clips(dir: &Path, n: usize) -> Vec<ManifestItem> {
    (0..n)
        .map(|k| {
            let audio = dir.join(format!("clip{k}.wav"));
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: 16_000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&audio, spec).unwrap();
            let amp = 0.1 * (k + 1) as f32;
            for i in 0..8_000 {
                let v = amp * (i as f32 * 0.05).sin();
                w.write_sample((v * 32_767.0) as i16).unwrap();
            }
            w.finalize().unwrap();
            ManifestItem {
                line: k + 2,
                path: format!("clip{k}.wav"),
                audio,
                dataset: "tones".into(),
                speaker: String::new(),
                reference: Reference::Label("calm".into()),
                arousal: None,
                valence: None,
            }
        })
        .collect()
}

fn job(model: &Loudness) -> Job<'_> {
    Job {
        model,
        method: Method::FirstToken,
        questions: vec![String::new()],
        sampling: None,
        strategies: vec![None],
        identities: vec![ScoringIdentity {
            model: "loudness".into(),
            method: "first-token".into(),
            labels: LABELS.map(String::from).to_vec(),
            prompt: None,
            temperature: None,
            options: Vec::new(),
            ensemble: None,
        }],
    }
}

/// Scores `items` with `workers` workers into a fresh cache at `cache`; returns each
/// clip's (probs, error) and the cache's (key, probs) entries, sorted.
#[allow(clippy::type_complexity)]
fn evaluate_with(
    model: &Loudness,
    items: &[ManifestItem],
    cache: &PathBuf,
    workers: usize,
) -> (
    Vec<(Option<Vec<f32>>, Option<String>)>,
    Vec<(String, Option<Vec<f32>>)>,
) {
    let refs: Vec<&ManifestItem> = items.iter().collect();
    let mut store = ScoreCache::open(cache).unwrap();
    let outcomes = score_all(
        &job(model),
        &refs,
        &mut store,
        WorkerPlan::with_cpus(workers, 2),
    )
    .unwrap()
    .remove(0);
    let per_clip = outcomes
        .into_iter()
        .map(|o| (o.score.and_then(|s| s.probs), o.error))
        .collect();
    let mut cached: Vec<(String, Option<Vec<f32>>)> = std::fs::read_to_string(cache)
        .unwrap()
        .lines()
        .map(|l| {
            let e: CachedScore = serde_json::from_str(l).unwrap();
            (e.key, e.probs)
        })
        .collect();
    cached.sort_by(|a, b| a.0.cmp(&b.0));
    (per_clip, cached)
}

#[test]
fn two_workers_give_exactly_the_outcomes_and_cache_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let items = clips(dir.path(), 7);
    for batch in [1, 2] {
        let model = Loudness {
            batch,
            panic_at: None,
            calls: AtomicUsize::new(0),
        };
        let one = evaluate_with(
            &model,
            &items,
            &dir.path().join(format!("b{batch}w1.jsonl")),
            1,
        );
        let two = evaluate_with(
            &model,
            &items,
            &dir.path().join(format!("b{batch}w2.jsonl")),
            2,
        );
        assert_eq!(one, two, "batch {batch}");
        assert_eq!(one.1.len(), 7);
        // Distinct clips keep distinct scores, in clip order.
        let loud: Vec<f32> = one.0.iter().map(|(p, _)| p.as_ref().unwrap()[1]).collect();
        assert!(loud.windows(2).all(|w| w[0] < w[1]), "{loud:?}");
        assert_eq!(
            model.calls.load(Ordering::Relaxed),
            2 * 7_usize.div_ceil(batch)
        );
    }
}

#[test]
fn a_model_panic_fails_its_clip_only_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let items = clips(dir.path(), 6);
    for workers in [1, 2] {
        let model = Loudness {
            batch: 1,
            panic_at: Some(0.3),
            calls: AtomicUsize::new(0),
        };
        let cache = dir.path().join(format!("w{workers}.jsonl"));
        let (per_clip, cached) = evaluate_with(&model, &items, &cache, workers);
        for (k, (probs, error)) in per_clip.iter().enumerate() {
            if k == 2 {
                assert!(probs.is_none());
                let error = error.as_deref().unwrap();
                assert!(
                    error.contains("the scorer panicked: stand-in model broke")
                        && error.contains("line 4 of the manifest"),
                    "{error}"
                );
            } else {
                assert!(probs.is_some() && error.is_none(), "clip {k}: {error:?}");
            }
        }
        // Nothing is cached for the failed clip, so a rerun tries it again.
        assert_eq!(cached.len(), 5);
        let rerun = Loudness {
            batch: 1,
            panic_at: None,
            calls: AtomicUsize::new(0),
        };
        let (per_clip, cached) = evaluate_with(&rerun, &items, &cache, workers);
        assert!(per_clip.iter().all(|(p, _)| p.is_some()));
        assert_eq!(cached.len(), 6);
        assert_eq!(
            rerun.calls.load(Ordering::Relaxed),
            1,
            "only the failed clip is scored again"
        );
    }
}
