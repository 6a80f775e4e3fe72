//! Scoring workers for `score` and `eval` (the live pipeline has its own pool in
//! [`crate::pipeline`]), and how many of them the machine makes sensible.
//!
//! Workers share one copy of the model (scoring takes `&self`), so an extra worker
//! costs only its activations. Each worker runs inside its own rayon pool of
//! [`WorkerPlan::threads`] threads: burn's CPU backend and `gemm` parallelise on the
//! *current* rayon pool, so this is the worker's share of the CPU and N workers do not
//! each spawn one thread per core.
//!
//! [`run_ordered`] feeds jobs to the workers and hands their results back on the
//! calling thread in job order, whatever order they finish in, so output, cache writes
//! and numbers are the same for any number of workers. A job whose work panics is
//! reported as a failed job (with the panic message) and the worker goes on with the
//! next one: the model is shared read-only, so nothing needs rebuilding.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{bounded, unbounded};

/// CPU threads one worker is given by default. Measured on a 2-core machine with
/// Whisper base (docs/performance.md, "Scoring workers"): two workers with one thread
/// each scored no faster than one worker with both (f32 and q8), each utterance took
/// twice as long and the pool held more memory, so a worker is added per two threads.
pub const DEFAULT_THREADS_PER_WORKER: usize = 2;
/// Most workers chosen by default (more rarely pays: they contend for memory bandwidth).
pub const MAX_DEFAULT_WORKERS: usize = 8;

/// CPU threads this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// How many scoring workers, and how many CPU threads each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerPlan {
    /// Workers (at least 1).
    pub workers: usize,
    /// CPU threads per worker (at least 1): the machine's threads shared evenly.
    pub threads: usize,
}

impl WorkerPlan {
    /// `workers` workers sharing this machine's CPU threads evenly.
    pub fn new(workers: usize) -> Self {
        Self::with_cpus(workers, cpus())
    }

    /// `workers` workers sharing `cpus` threads evenly (each gets at least one).
    pub fn with_cpus(workers: usize, cpus: usize) -> Self {
        let workers = workers.max(1);
        Self {
            workers,
            threads: (cpus / workers).max(1),
        }
    }

    /// The default for this machine (see [`DEFAULT_THREADS_PER_WORKER`]).
    pub fn for_machine() -> Self {
        Self::default_for(cpus())
    }

    /// The default for a machine with `cpus` threads.
    pub fn default_for(cpus: usize) -> Self {
        let workers = (cpus / DEFAULT_THREADS_PER_WORKER).clamp(1, MAX_DEFAULT_WORKERS);
        Self::with_cpus(workers, cpus)
    }

    /// `requested` workers, or the machine's default when `None`.
    pub fn requested_or_default(requested: Option<usize>) -> Self {
        requested.map_or_else(Self::for_machine, Self::new)
    }

    /// As printed at start, e.g. `2 scoring workers × 1 CPU thread`.
    pub fn describe(&self) -> String {
        format!(
            "{} scoring worker{} × {} CPU thread{}",
            self.workers,
            if self.workers == 1 { "" } else { "s" },
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        )
    }

    /// Runs `f` inside a rayon pool of [`threads`](Self::threads) threads, so the
    /// model's parallel kernels use this worker's share of the CPU. If the pool cannot
    /// be built (no threads left), `f` runs on the global pool instead.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .thread_name(|i| format!("emomon-compute-{i}"))
            .build()
        {
            Ok(pool) => pool.install(f),
            Err(e) => {
                tracing::warn!(error = %e, "cannot build a worker's thread pool; using the global one");
                f()
            }
        }
    }
}

/// The jobs of a [`run_ordered`] run: produced and finished on the calling thread,
/// worked on by the pool.
pub trait OrderedJobs {
    /// What a worker needs for one job.
    type Job: Send;
    /// What a worker produces for one job.
    type Output: Send;
    /// The next job, or `None` when there is none left.
    fn next_job(&mut self) -> anyhow::Result<Option<Self::Job>>;
    /// A job's result, in the order the jobs were produced; `Err` carries the panic
    /// message of work that panicked.
    fn finish(
        &mut self,
        job: Self::Job,
        output: Result<Self::Output, String>,
    ) -> anyhow::Result<()>;
}

/// Runs every job of `jobs` through `work` on `plan.workers` workers, at most
/// `plan.workers` jobs waiting beyond those being worked on, and finishes them in
/// order. An error from `next_job` or `finish` stops the run (jobs in flight are
/// finished first, their results discarded) and is returned.
pub fn run_ordered<J, W>(plan: WorkerPlan, jobs: &mut J, work: W) -> anyhow::Result<()>
where
    J: OrderedJobs,
    W: Fn(&J::Job) -> J::Output + Sync,
{
    let stop = AtomicBool::new(false);
    let (job_tx, job_rx) = bounded::<(u64, J::Job)>(plan.workers.max(1));
    let (done_tx, done_rx) = unbounded::<(u64, J::Job, Result<J::Output, String>)>();
    std::thread::scope(|scope| {
        for index in 0..plan.workers.max(1) {
            let (job_rx, done_tx, work, stop) = (job_rx.clone(), done_tx.clone(), &work, &stop);
            std::thread::Builder::new()
                .name(format!("emomon-worker-{index}"))
                .spawn_scoped(scope, move || {
                    plan.install(|| {
                        for (seq, job) in job_rx.iter() {
                            if stop.load(Ordering::Relaxed) {
                                continue;
                            }
                            let output = catch_unwind(AssertUnwindSafe(|| work(&job)))
                                .map_err(|panic| panic_message(panic.as_ref()));
                            if done_tx.send((seq, job, output)).is_err() {
                                break;
                            }
                        }
                    })
                })
                .map_err(|e| anyhow::anyhow!("cannot start a scoring worker: {e}"))?;
        }
        drop((job_rx, done_tx));
        let mut order = Reorder::default();
        let mut result = Ok(());
        let mut seq = 0u64;
        while result.is_ok() {
            match jobs.next_job() {
                Ok(Some(job)) => {
                    // Workers only stop when the jobs end, so this cannot fail.
                    let _ = job_tx.send((seq, job));
                    seq += 1;
                    while let Ok(done) = done_rx.try_recv() {
                        if let Err(e) = order.push(done, jobs) {
                            result = Err(e);
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => result = Err(e),
            }
        }
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        drop(job_tx);
        for done in done_rx.iter() {
            if result.is_ok()
                && let Err(e) = order.push(done, jobs)
            {
                stop.store(true, Ordering::Relaxed);
                result = Err(e);
            }
        }
        result
    })
}

/// Results that finished ahead of an earlier job.
struct Reorder<J, O> {
    next: u64,
    waiting: BTreeMap<u64, (J, Result<O, String>)>,
}

impl<J, O> Default for Reorder<J, O> {
    fn default() -> Self {
        Self {
            next: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<J, O> Reorder<J, O> {
    fn push<T: OrderedJobs<Job = J, Output = O>>(
        &mut self,
        (seq, job, output): (u64, J, Result<O, String>),
        jobs: &mut T,
    ) -> anyhow::Result<()> {
        self.waiting.insert(seq, (job, output));
        while let Some((job, output)) = self.waiting.remove(&self.next) {
            self.next += 1;
            jobs.finish(job, output)?;
        }
        Ok(())
    }
}

/// The message of a caught panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Squares 0..n, recording what `finish` sees.
    struct Squares {
        n: u64,
        next: u64,
        seen: Vec<(u64, Result<u64, String>)>,
    }

    impl OrderedJobs for Squares {
        type Job = u64;
        type Output = u64;
        fn next_job(&mut self) -> anyhow::Result<Option<u64>> {
            self.next += 1;
            Ok((self.next <= self.n).then_some(self.next - 1))
        }
        fn finish(&mut self, job: u64, output: Result<u64, String>) -> anyhow::Result<()> {
            self.seen.push((job, output));
            Ok(())
        }
    }

    fn squares(n: u64) -> Squares {
        Squares {
            n,
            next: 0,
            seen: Vec::new(),
        }
    }

    #[test]
    fn results_come_back_in_job_order_whatever_order_workers_finish() {
        let mut jobs = squares(40);
        // Early jobs take longest, so later ones finish first.
        run_ordered(WorkerPlan::with_cpus(3, 3), &mut jobs, |&j| {
            std::thread::sleep(std::time::Duration::from_millis(40u64.saturating_sub(j)));
            j * j
        })
        .unwrap();
        let expected: Vec<(u64, Result<u64, String>)> = (0..40).map(|j| (j, Ok(j * j))).collect();
        assert_eq!(jobs.seen, expected);
    }

    #[test]
    fn a_panicking_job_is_reported_and_the_others_still_run() {
        let mut jobs = squares(10);
        run_ordered(WorkerPlan::with_cpus(2, 2), &mut jobs, |&j| {
            if j == 3 || j == 7 {
                panic!("job {j} broke");
            }
            j * j
        })
        .unwrap();
        assert_eq!(jobs.seen.len(), 10);
        for (j, out) in &jobs.seen {
            match j {
                3 | 7 => assert_eq!(out, &Err(format!("job {j} broke"))),
                _ => assert_eq!(out, &Ok(j * j)),
            }
        }
    }

    #[test]
    fn each_worker_computes_on_its_share_of_the_threads() {
        let mut jobs = squares(4);
        run_ordered(WorkerPlan::with_cpus(2, 6), &mut jobs, |_| {
            rayon::current_num_threads() as u64
        })
        .unwrap();
        assert!(
            jobs.seen.iter().all(|(_, t)| t == &Ok(3)),
            "{:?}",
            jobs.seen
        );
    }

    #[test]
    fn default_plan_gives_a_worker_per_two_threads() {
        assert_eq!(
            WorkerPlan::default_for(1),
            WorkerPlan {
                workers: 1,
                threads: 1
            }
        );
        assert_eq!(
            WorkerPlan::default_for(2),
            WorkerPlan {
                workers: 1,
                threads: 2
            }
        );
        assert_eq!(
            WorkerPlan::default_for(8),
            WorkerPlan {
                workers: 4,
                threads: 2
            }
        );
        assert_eq!(WorkerPlan::default_for(64).workers, MAX_DEFAULT_WORKERS);
        assert_eq!(
            WorkerPlan::with_cpus(3, 2),
            WorkerPlan {
                workers: 3,
                threads: 1
            }
        );
    }
}
