//! Scoring a run's clips: from the cache where it has them, otherwise on the worker
//! pool, in manifest order whatever order the workers finish in.

use super::*;

/// One clip's scores, from the cache or the model.
pub(super) struct Outcome {
    pub(super) audio_sha256: String,
    pub(super) score: Option<CachedScore>,
    pub(super) cached: bool,
    pub(super) error: Option<String>,
    /// Applied to the probabilities of the clip's dataset labels before they are
    /// renormalised over them ([`EmotionModel::label_subset_exponent`]); 1 by default.
    ///
    /// [`EmotionModel::label_subset_exponent`]: emomon_models::alm::EmotionModel::label_subset_exponent
    pub(super) subset_exponent: f64,
}

impl Outcome {
    pub(super) fn new() -> Self {
        Self {
            audio_sha256: String::new(),
            score: None,
            cached: false,
            error: None,
            subset_exponent: 1.0,
        }
    }
}

/// Sets each outcome's [`subset_exponent`](Outcome::subset_exponent) from its clip's
/// dataset (`exponents` from [`LabelPlan::subset_exponents`]).
pub(super) fn set_subset_exponents(
    outcomes: &mut [Outcome],
    items: &[&ManifestItem],
    exponents: &BTreeMap<String, f64>,
) {
    for (outcome, item) in outcomes.iter_mut().zip(items) {
        outcome.subset_exponent = exponents.get(&item.dataset).copied().unwrap_or(1.0);
    }
}

/// What to score: a method, its questions and sampling, and the strategies (with
/// their cache identities) whose outcomes are wanted.
pub(super) struct Job<'a> {
    pub(super) model: &'a dyn ClipScorer,
    pub(super) method: Method,
    pub(super) questions: Vec<String>,
    pub(super) sampling: Option<Sampling>,
    /// `[None]` for one greedy answer per clip; else the aggregations.
    pub(super) strategies: Vec<Option<Aggregate>>,
    pub(super) identities: Vec<ScoringIdentity>,
}

/// What an evaluation asks of the model; a trait so tests can put a stand-in (one
/// that panics on a chosen clip) in its place. Shared by every worker, so `Sync`.
pub(super) trait ClipScorer: Sync {
    fn natural_batch_for(&self, method: Method) -> usize;
    fn score_method(&self, audio: &[&[f32]], method: Method) -> anyhow::Result<ScoredBatch>;
    fn score_ensemble(
        &self,
        audio: &[f32],
        method: Method,
        questions: &[String],
        sampling: Option<Sampling>,
    ) -> anyhow::Result<(Vec<Vec<ModelAnswer>>, Duration)>;
}

impl ClipScorer for LoadedModel {
    fn natural_batch_for(&self, method: Method) -> usize {
        LoadedModel::natural_batch_for(self, method)
    }
    fn score_method(&self, audio: &[&[f32]], method: Method) -> anyhow::Result<ScoredBatch> {
        LoadedModel::score_method(self, audio, method)
    }
    fn score_ensemble(
        &self,
        audio: &[f32],
        method: Method,
        questions: &[String],
        sampling: Option<Sampling>,
    ) -> anyhow::Result<(Vec<Vec<ModelAnswer>>, Duration)> {
        LoadedModel::score_ensemble(self, audio, method, questions, sampling)
    }
}

impl Job<'_> {
    pub(super) fn ensemble(&self) -> bool {
        self.strategies.iter().any(Option::is_some)
    }
}

/// Reads, hashes and (unless cached) scores every clip, with a progress bar:
/// one greedy answer per clip in batches of the model's natural size, or a
/// clip's whole ensemble at once (encoded once), aggregated by every strategy.
/// Batches and ensembles are scored by `plan`'s workers, their results recorded in
/// clip order. Returns `[strategy][clip]`. Unreadable audio, model failures and
/// scorer panics are recorded per clip, so one bad file does not end a long run.
pub(super) fn score_all(
    job: &Job,
    items: &[&ManifestItem],
    cache: &mut ScoreCache,
    plan: WorkerPlan,
) -> anyhow::Result<Vec<Vec<Outcome>>> {
    let bar = ProgressBar::new(items.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>8} [{bar:30}] {pos}/{len} clips, {elapsed} elapsed, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message("scoring");
    let mut run = ScoreRun {
        job,
        items,
        cache,
        outcomes: (0..job.strategies.len())
            .map(|_| Vec::with_capacity(items.len()))
            .collect(),
        pending: Vec::new(),
        next: 0,
        batch_size: job.model.natural_batch_for(job.method).max(1),
        bar,
    };
    workers::run_ordered(plan, &mut run, |work| match work {
        ClipWork::Batch(pending) => {
            let audio: Vec<&[f32]> = pending.iter().map(|(_, s)| s.as_slice()).collect();
            ClipScores::Batch(job.model.score_method(&audio, job.method))
        }
        ClipWork::Ensemble(_, samples) => ClipScores::Ensemble(job.model.score_ensemble(
            samples,
            job.method,
            &job.questions,
            job.sampling,
        )),
    })?;
    run.bar.finish_and_clear();
    Ok(run.outcomes)
}

/// What a worker scores: a batch of clips (index, audio), or one clip's ensemble.
pub(super) enum ClipWork {
    Batch(Vec<(usize, Vec<f32>)>),
    Ensemble(usize, Vec<f32>),
}

/// A worker's result for a [`ClipWork`].
pub(super) enum ClipScores {
    Batch(anyhow::Result<ScoredBatch>),
    Ensemble(anyhow::Result<(Vec<Vec<ModelAnswer>>, Duration)>),
}

/// The state of [`score_all`] on the calling thread: reading clips into work, and
/// recording (and caching) the workers' results.
pub(super) struct ScoreRun<'a, 'j> {
    pub(super) job: &'a Job<'j>,
    pub(super) items: &'a [&'a ManifestItem],
    pub(super) cache: &'a mut ScoreCache,
    pub(super) outcomes: Vec<Vec<Outcome>>,
    /// Clips read for the next batch.
    pub(super) pending: Vec<(usize, Vec<f32>)>,
    /// Next clip to read.
    pub(super) next: usize,
    pub(super) batch_size: usize,
    pub(super) bar: ProgressBar,
}

impl workers::OrderedJobs for ScoreRun<'_, '_> {
    type Job = ClipWork;
    type Output = ClipScores;

    fn next_job(&mut self) -> anyhow::Result<Option<ClipWork>> {
        while self.next < self.items.len() {
            let i = self.next;
            self.next += 1;
            if let Some(samples) = self.read_clip(i)? {
                if self.job.ensemble() {
                    return Ok(Some(ClipWork::Ensemble(i, samples)));
                }
                self.pending.push((i, samples));
                if self.pending.len() >= self.batch_size {
                    return Ok(Some(ClipWork::Batch(std::mem::take(&mut self.pending))));
                }
            }
        }
        Ok((!self.pending.is_empty()).then(|| ClipWork::Batch(std::mem::take(&mut self.pending))))
    }

    fn finish(&mut self, work: ClipWork, scores: Result<ClipScores, String>) -> anyhow::Result<()> {
        let scores = scores.map_err(|panic| format!("the scorer panicked: {panic}"));
        match (work, scores) {
            (ClipWork::Batch(pending), scores) => {
                let n = pending.len() as u64;
                let result = match scores {
                    Ok(ClipScores::Batch(r)) => r.map_err(|e| format!("{e:#}")),
                    Ok(ClipScores::Ensemble(_)) => unreachable!("a batch gives a batch"),
                    Err(panic) => Err(panic),
                };
                score_batch(
                    self.job,
                    self.items,
                    &pending,
                    result,
                    &mut self.outcomes[0],
                    self.cache,
                )?;
                self.bar.inc(n);
            }
            (ClipWork::Ensemble(i, _), scores) => {
                let result = match scores {
                    Ok(ClipScores::Ensemble(r)) => r.map_err(|e| format!("{e:#}")),
                    Ok(ClipScores::Batch(_)) => unreachable!("an ensemble gives an ensemble"),
                    Err(panic) => Err(panic),
                };
                let mut clip: Vec<&mut Outcome> =
                    self.outcomes.iter_mut().map(|o| &mut o[i]).collect();
                score_clip(self.job, self.items[i], result, &mut clip, self.cache)?;
                self.bar.inc(1);
            }
        }
        Ok(())
    }
}

impl ScoreRun<'_, '_> {
    /// Reads and hashes clip `i` and records its outcomes; its audio when the model
    /// must score it (not cached, and decodable).
    pub(super) fn read_clip(&mut self, i: usize) -> anyhow::Result<Option<Vec<f32>>> {
        let (job, item) = (self.job, self.items[i]);
        let mut clip: Vec<Outcome> = (0..job.strategies.len()).map(|_| Outcome::new()).collect();
        let mut samples = None;
        match std::fs::read(&item.audio) {
            Err(e) => {
                let msg = format!(
                    "cannot read {} (line {} of the manifest or vote table): {e}",
                    item.audio.display(),
                    item.line
                );
                clip.iter_mut().for_each(|o| o.error = Some(msg.clone()));
            }
            Ok(bytes) => {
                let sha = sha256_hex(&bytes);
                clip.iter_mut().for_each(|o| o.audio_sha256 = sha.clone());
                if !from_cache(job, &sha, item, &mut clip, self.cache)? {
                    match decode_16k(&item.audio) {
                        Ok(s) => samples = Some(s),
                        Err(e) => {
                            let msg =
                                format!("{e:#} (line {} of the manifest or vote table)", item.line);
                            clip.iter_mut().for_each(|o| o.error = Some(msg.clone()));
                        }
                    }
                }
            }
        }
        for (s, o) in clip.into_iter().enumerate() {
            self.outcomes[s].push(o);
        }
        if samples.is_none() {
            self.bar.inc(1);
        }
        Ok(samples)
    }
}

/// Fills `clip`'s outcomes from the cache: each strategy's own entry, or for an
/// ensemble the answers cached under another aggregation of the same identity,
/// re-aggregated (and cached) without the model. `false` if the model is needed.
pub(super) fn from_cache(
    job: &Job,
    sha: &str,
    item: &ManifestItem,
    clip: &mut [Outcome],
    cache: &mut ScoreCache,
) -> anyhow::Result<bool> {
    let keys: Vec<String> = job.identities.iter().map(|id| id.key(sha)).collect();
    let hits: Vec<Option<CachedScore>> = keys.iter().map(|k| cache.get(k).cloned()).collect();
    if hits.iter().all(Option::is_some) {
        for (o, h) in clip.iter_mut().zip(hits) {
            o.score = h;
            o.cached = true;
        }
        return Ok(true);
    }
    if !job.ensemble() {
        return Ok(false);
    }
    // Any aggregation of this identity holds every answer.
    let base = &job.identities[0];
    let mut members = None;
    for a in Aggregate::ALL {
        let mut id = base.clone();
        if let Some(e) = &mut id.ensemble {
            e.aggregate = a.as_str().to_string();
        }
        if let Some(m) = cache.get(&id.key(sha)).and_then(|h| h.members.clone()) {
            members = Some((m, cache.get(&id.key(sha)).and_then(|h| h.latency_ms)));
            break;
        }
    }
    let Some((members, latency_ms)) = members else {
        return Ok(false);
    };
    for (s, o) in clip.iter_mut().enumerate() {
        let entry = match hits[s].clone() {
            Some(h) => h,
            None => {
                let e = ensemble_entry(job, s, sha, item, members.clone(), latency_ms);
                cache.insert(e.clone())?;
                e
            }
        };
        o.score = Some(entry);
        o.cached = true;
    }
    Ok(true)
}

/// Records (and caches) each strategy's outcome of one clip's scored ensemble.
pub(super) fn score_clip(
    job: &Job,
    item: &ManifestItem,
    result: Result<(Vec<Vec<ModelAnswer>>, Duration), String>,
    clip: &mut [&mut Outcome],
    cache: &mut ScoreCache,
) -> anyhow::Result<()> {
    match result {
        Ok((answers, total)) => {
            let members: Vec<MemberScore> = answers
                .into_iter()
                .enumerate()
                .flat_map(|(q, answers)| {
                    answers.into_iter().enumerate().map(move |(k, u)| {
                        let (probs, logits, error) = match u.scores {
                            Ok(s) => (Some(s.probs), Some(s.logits), None),
                            Err(e) => (None, None, Some(e)),
                        };
                        MemberScore {
                            prompt: q,
                            sample: k,
                            probs,
                            logits,
                            generated: u.generated,
                            error,
                        }
                    })
                })
                .collect();
            let latency = Some(total.as_secs_f64() * 1e3);
            let sha = clip[0].audio_sha256.clone();
            for (s, o) in clip.iter_mut().enumerate() {
                let entry = ensemble_entry(job, s, &sha, item, members.clone(), latency);
                cache.insert(entry.clone())?;
                o.score = Some(entry);
            }
        }
        Err(e) => {
            let msg = format!(
                "scoring failed: {e} (line {} of the manifest or vote table)",
                item.line
            );
            clip.iter_mut().for_each(|o| o.error = Some(msg.clone()));
        }
    }
    Ok(())
}

/// Strategy `s`'s cache entry for a clip's answers `members`.
pub(super) fn ensemble_entry(
    job: &Job,
    s: usize,
    sha: &str,
    item: &ManifestItem,
    members: Vec<MemberScore>,
    latency_ms: Option<f64>,
) -> CachedScore {
    let identity = &job.identities[s];
    let how = job.strategies[s].unwrap_or(Aggregate::Mean);
    let readable: Vec<Vec<f64>> = members
        .iter()
        .filter_map(|m| m.probs.as_ref())
        .map(|p| p.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let unparseable = members.len() - readable.len();
    let (probs, error) = match aggregate(how, &readable) {
        Ok(p) => (Some(p.iter().map(|&v| v as f32).collect()), None),
        Err(e) => (
            None,
            Some(format!(
                "{e}: all {} answers failed; the first: {}",
                members.len(),
                members
                    .first()
                    .and_then(|m| m.error.as_deref())
                    .unwrap_or("")
            )),
        ),
    };
    CachedScore {
        key: identity.key(sha),
        audio_sha256: sha.to_string(),
        path: item.path.clone(),
        model: identity.model.clone(),
        method: identity.method.clone(),
        labels: identity.labels.clone(),
        probs,
        logits: None,
        generated: members.first().and_then(|m| m.generated.clone()),
        error,
        members: Some(members),
        aggregate: Some(how.as_str().to_string()),
        unparseable,
        latency_ms,
    }
}

/// Records (and caches) each result of a scored batch of clips (one greedy answer
/// each).
pub(super) fn score_batch(
    job: &Job,
    items: &[&ManifestItem],
    pending: &[(usize, Vec<f32>)],
    result: Result<ScoredBatch, String>,
    outcomes: &mut [Outcome],
    cache: &mut ScoreCache,
) -> anyhow::Result<()> {
    let identity = &job.identities[0];
    match result {
        Ok(batch) => {
            let latency = batch.total.as_secs_f64() * 1e3 / pending.len().max(1) as f64;
            for ((i, _), result) in pending.iter().zip(batch.utterances) {
                let outcome = &mut outcomes[*i];
                let (probs, logits, error) = match result.scores {
                    Ok(s) => (Some(s.probs), Some(s.logits), None),
                    Err(e) => (None, None, Some(e)),
                };
                let entry = CachedScore {
                    key: identity.key(&outcome.audio_sha256),
                    audio_sha256: outcome.audio_sha256.clone(),
                    path: items[*i].path.clone(),
                    model: identity.model.clone(),
                    method: identity.method.clone(),
                    labels: identity.labels.clone(),
                    unparseable: usize::from(probs.is_none()),
                    probs,
                    logits,
                    generated: result.generated,
                    error,
                    members: None,
                    aggregate: None,
                    latency_ms: Some(latency),
                };
                cache.insert(entry.clone())?;
                outcome.score = Some(entry);
            }
        }
        Err(e) => {
            for (i, _) in pending.iter() {
                outcomes[*i].error = Some(format!(
                    "scoring failed: {e} (line {} of the manifest or vote table)",
                    items[*i].line
                ));
            }
        }
    }
    Ok(())
}

/// The whole file, downmixed and resampled to 16 kHz mono.
pub(super) fn decode_16k(path: &Path) -> anyhow::Result<Vec<f32>> {
    let samples = crate::audio::whole_file::read_16k(path)?;
    if samples.is_empty() {
        bail!("{} has no audio", path.display());
    }
    Ok(samples)
}
