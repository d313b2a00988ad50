//! Work sharing for small batches: a [`Team`] of helper threads that stay awake between
//! training steps. For each job the calling thread and the helpers take task indices from one
//! atomic counter until all are claimed; the caller then waits only for the tasks that were
//! claimed, never for a helper to wake up.
//!
//! Why not a rayon pool: a step of the tutorial takes ~50 µs, and on these (virtual) machines
//! waking a sleeping thread costs tens of microseconds; rayon's workers go to sleep almost at
//! once when idle, so every step paid a wake-up (measured: the helper ran 40% of the chunks
//! instead of 50%, and the scheduler's wake-up path was 10% of a `perf record`). Here a helper
//! spins for [`SPIN`] after its last job before it parks, which covers the gap between two
//! steps; a parked helper is woken with a condition variable. Which thread runs a task never
//! changes what the task computes, so results stay independent of the thread count.
//!
//! ## A busy machine
//! Spinning is only right while the helpers have cores of their own. With another process
//! on the machine (a test suite, a compiler, a second run) a helper that claimed a task can
//! be preempted for a whole scheduler slice (milliseconds, against a ~50 µs step) while the
//! caller waits for it, and a spinning helper takes CPU time from the thread doing the work.
//! Two rules keep the team from being slower than the caller alone:
//! - **Helpers spin briefly** ([`SPIN`], a few inter-step gaps), then park.
//! - **The team measures whether sharing pays.** Now and then a few jobs run shared and a few
//!   on the caller alone (the helpers parked), timed from one job's start to the next; the
//!   faster way runs the following jobs, for longer each time it wins again (see
//!   [`Chooser`]). Which thread runs a task never changes the results, so this is invisible
//!   except in time.
//!
//! Measured on a 2-core AMD EPYC (AVX-512, 2026-12-02), default `train --show 0`
//! (`parallel_u8`), 9–11 interleaved runs each, medians of the 1000-step loop:
//!
//! | | 2 threads before | 2 threads now | `--threads 1` |
//! | --- | --- | --- | --- |
//! | quiet machine | 97.3 ms | 98.7 ms | 140.2 ms |
//! | `yes > /dev/null` holding one core all along | 190.2 ms | 120.3 ms | 119.0 ms |
//! | the hog started 0.2 s before (`scripts/busy.sh`) | — | 125–142 ms | 118–121 ms |
//!
//! What is left under a freshly started hog is the shared start and the first probes (each
//! shared job then waits a millisecond or more for a preempted helper). The probes cost the
//! quiet loop about 1%.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long an idle helper spins before it parks: a few times the gap between two training
/// steps (the SGD update and the next batch's indices, a few microseconds).
const SPIN: Duration = Duration::from_micros(200);

/// Jobs with at least this many tasks per thread always run shared (see [`Team::run`]).
const MANY_TASKS: usize = 4;

/// How long the caller spins for the helpers' last tasks before it yields its core to them.
const WAIT_SPIN: Duration = Duration::from_micros(50);

/// Whether jobs run shared or on the caller alone, chosen by measuring both.
///
/// The measure is the caller's wall time per task from the start of one job to the start of
/// the next, so it counts everything the choice affects: the job itself, a wait for a
/// preempted helper, and the time the caller loses to a spinning helper when the machine has
/// fewer free cores than the team has threads. Jobs run in phases: a phase of the current
/// winner (`run` jobs), then a probe of [`Chooser::PROBE`] jobs shared and as many alone;
/// the faster way wins the next phase. `run` doubles while the same way keeps winning (up to
/// [`Chooser::MAX_RUN`]) and restarts from [`Chooser::MIN_RUN`] when the winner changes. The
/// first job of each probe half is not counted (helpers waking up, caches).
#[derive(Debug)]
struct Chooser {
    /// Jobs left in the current phase.
    left: u32,
    /// The current phase: 0 = the winner's run, 1 = probing shared, 2 = probing alone.
    phase: u8,
    /// The way that won the last probe.
    winner: bool,
    /// The length of the next run phase.
    run: u32,
    /// The last job: when it started, how many tasks it had, and whether it counts.
    last: Option<(Instant, usize, bool)>,
    /// Per way (shared, alone): the time and the tasks of the probe's counted jobs.
    probe: [(Duration, usize); 2],
}

impl Chooser {
    const PROBE: u32 = 8;
    /// Sharing runs only when its time per task is below this share of the caller's alone.
    const SHARED_MARGIN: f64 = 1.0 / 0.85;
    const MIN_RUN: u32 = 64;
    const FIRST_RUN: u32 = 16;
    const MAX_RUN: u32 = 4096;
    /// Longer cycles per task are a pause of the caller, not a measure of either way.
    const MAX_CYCLE_PER_TASK: Duration = Duration::from_millis(20);

    const fn new() -> Self {
        Chooser {
            // A short shared start (the first jobs of a run are slow either way: page faults,
            // helpers starting), then the first probe.
            left: Self::FIRST_RUN,
            phase: 0,
            winner: false,
            run: Self::MIN_RUN,
            last: None,
            probe: [(Duration::ZERO, 0); 2],
        }
    }

    /// Start a job of `n` tasks: true when it should run on the caller alone.
    fn start(&mut self, n: usize) -> bool {
        self.start_at(Instant::now(), n)
    }

    /// [`Chooser::start`] at time `now`.
    fn start_at(&mut self, now: Instant, n: usize) -> bool {
        if let Some((at, tasks, true)) = self.last {
            let cycle = now - at;
            if cycle < Self::MAX_CYCLE_PER_TASK * tasks as u32 {
                let p = &mut self.probe[usize::from(self.solo())];
                p.0 += cycle;
                p.1 += tasks;
            }
        }
        if self.left == 0 {
            self.next_phase();
        }
        self.left -= 1;
        // A probe counts all its jobs but its first.
        let counts = self.phase != 0 && self.left + 1 < Self::PROBE + 1;
        self.last = Some((now, n, counts));
        self.solo()
    }

    /// Whether the current phase's jobs run alone: a probe of sharing, a probe of the caller
    /// alone, or the last winner's run.
    fn solo(&self) -> bool {
        match self.phase {
            0 => self.winner,
            1 => false,
            _ => true,
        }
    }

    /// A job outside the measures ran: the cycle of the last one is not counted.
    fn skip(&mut self) {
        self.last = None;
    }

    /// End the current phase: after a run, probe shared; after that, probe alone; after
    /// that, run the faster way.
    fn next_phase(&mut self) {
        match self.phase {
            0 => {
                self.probe = [(Duration::ZERO, 0); 2];
                (self.phase, self.left) = (1, Self::PROBE + 1);
            }
            1 => (self.phase, self.left) = (2, Self::PROBE + 1),
            _ => {
                let per_task = |(t, n): (Duration, usize)| t.as_secs_f64() / n.max(1) as f64;
                // Sharing has to win clearly: on a quiet machine it saves 40% or more, and a
                // probe that a busy machine let pass by luck should not buy a shared run.
                let solo = per_task(self.probe[1]) < Self::SHARED_MARGIN * per_task(self.probe[0]);
                self.run = if solo == self.winner {
                    (self.run * 4).min(Self::MAX_RUN)
                } else {
                    Self::MIN_RUN
                };
                (self.phase, self.left) = (0, self.run);
                self.winner = solo;
            }
        }
    }
}

/// The task function, with its lifetime erased (see [`Team::run`] for why that is sound).
type Task = *const (dyn Fn(usize) + Sync);

/// One job: `n` tasks and the counters that hand them out.
struct Job {
    next: AtomicUsize,
    done: AtomicUsize,
    n: usize,
    task: Task,
    /// A task panicked (on any thread; the caller's own panic is resumed first).
    panicked: AtomicBool,
}

// SAFETY: `task` points to a `Sync` closure, and it is only dereferenced while the thread that
// owns the closure is blocked in `Team::run` (see there); the counters are atomics.
unsafe impl Send for Job {}
// SAFETY: as above.
unsafe impl Sync for Job {}

/// Counts a claimed task as done when dropped, so a task that panics still counts and the
/// caller's wait ends. A panicking task is recorded in `Job::panicked` first: the Release
/// increment then publishes the flag to the caller, which reads it after seeing `done == n`.
struct DoneOnDrop<'a>(&'a Job);

impl Drop for DoneOnDrop<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.panicked.store(true, Ordering::Relaxed);
        }
        self.0.done.fetch_add(1, Ordering::Release);
    }
}

impl Job {
    /// Claim and run tasks until none are left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            let _done = DoneOnDrop(self);
            // SAFETY: `i < n` was claimed and is not counted as done before this call
            // returns or unwinds, so the caller of `Team::run` is still waiting for
            // `done == n`: the closure is alive.
            unsafe { (*self.task)(i) };
        }
    }
}

/// What the caller and the helpers share.
struct Shared {
    /// Bumped (SeqCst) each time a job is published.
    epoch: AtomicU64,
    /// The current job.
    job: Mutex<Option<Arc<Job>>>,
    /// Helpers parked on `wake`.
    parked: AtomicUsize,
    wake: Condvar,
    shutdown: AtomicBool,
    /// The caller runs jobs alone for now: helpers park at once instead of spinning.
    solo: AtomicBool,
}

/// The caller plus `helpers` threads that share jobs.
pub(crate) struct Team {
    shared: Arc<Shared>,
    handles: Vec<std::thread::JoinHandle<()>>,
    chooser: Mutex<Chooser>,
}

impl Team {
    /// Start `helpers` helper threads (none: every job runs on the caller alone).
    pub(crate) fn new(helpers: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            parked: AtomicUsize::new(0),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
            solo: AtomicBool::new(false),
        });
        let mut team = Team {
            shared,
            handles: Vec::new(),
            chooser: Mutex::new(Chooser::new()),
        };
        for i in 0..helpers {
            let shared = Arc::clone(&team.shared);
            let handle = std::thread::Builder::new()
                .name(format!("mnist-logreg-{i}"))
                .spawn(move || helper(&shared))?;
            team.handles.push(handle);
        }
        Ok(team)
    }

    /// Threads that run a job, the caller included.
    pub(crate) fn threads(&self) -> usize {
        self.handles.len() + 1
    }

    /// Run `task(0..n)` on the calling thread and the helpers; returns when every task has
    /// finished. A task that panics (on any thread) makes this panic once every claimed task
    /// has finished. Kernels only panic on broken invariants, never on input.
    pub(crate) fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        if self.handles.is_empty() || n <= 1 {
            (0..n).for_each(task);
            return;
        }
        // Jobs of many tasks (an evaluation) balance themselves and always pay for sharing: they
        // run shared, outside the chooser's measures.
        let many = n >= MANY_TASKS * self.threads();
        if many {
            lock(&self.chooser).skip();
        } else if lock(&self.chooser).start(n) {
            self.shared.solo.store(true, Ordering::Relaxed);
            (0..n).for_each(task);
            return;
        }
        self.shared.solo.store(false, Ordering::Relaxed);
        // SAFETY (lifetime erasure): the pointer outlives `task`'s borrow only inside the
        // `Job`, which helpers may keep (an `Arc`) after this call returns; they dereference
        // it only after claiming an index below `n`, and this function does not return or
        // unwind before all `n` claimed tasks have finished (`done == n`), so no dereference
        // can happen after `task`'s borrow ends.
        let task: Task = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), Task>(task as *const _)
        };
        let job = Arc::new(Job {
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            n,
            task,
            panicked: AtomicBool::new(false),
        });
        *lock(&self.shared.job) = Some(Arc::clone(&job));
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        if self.shared.parked.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this notify after a parking helper's re-check.
            let _guard = lock(&self.shared.job);
            self.shared.wake.notify_all();
        }
        // A panic in a task on this thread must not unwind past the wait below while helpers
        // may still be running tasks that borrow the caller's data: catch it, wait, resume.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.work()));
        let worked = Instant::now();
        let mut spins = 0u32;
        let mut yielding = false;
        while job.done.load(Ordering::Acquire) < n {
            spins += 1;
            if !yielding && spins.is_multiple_of(64) {
                yielding = worked.elapsed() > WAIT_SPIN;
            }
            if yielding {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        if job.panicked.load(Ordering::Relaxed) {
            panic!("a kernel task panicked on a helper thread");
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        {
            let _guard = lock(&self.shared.job);
            self.shared.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A helper's life: wait for a new epoch (spinning, then parked), work on its job, repeat.
fn helper(shared: &Shared) {
    let mut seen = 0;
    loop {
        let idle_since = Instant::now();
        let mut polls = 0u32;
        while shared.epoch.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            polls += 1;
            if polls.is_multiple_of(64)
                && (shared.solo.load(Ordering::Relaxed) || idle_since.elapsed() > SPIN)
            {
                let mut guard = lock(&shared.job);
                shared.parked.fetch_add(1, Ordering::SeqCst);
                while shared.epoch.load(Ordering::SeqCst) == seen {
                    guard = shared.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
                shared.parked.fetch_sub(1, Ordering::SeqCst);
            }
        }
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        seen = shared.epoch.load(Ordering::Acquire);
        let job = lock(&shared.job).clone();
        if let Some(job) = job {
            // A task's panic is reported to the caller (`Job::panicked`, set by `DoneOnDrop`),
            // not lost with the helper: the helper lives on for the next job.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.work()));
        }
    }
}

/// Lock a mutex, ignoring poisoning. For the kernels' data only: a panicking task is
/// reported to the caller anyway, and every value behind these locks (the current job, a
/// chunk's buffers and stats, a prediction slot) is overwritten before it is read again.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`lock`] for reading an `RwLock`.
pub(crate) fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

/// [`lock`] for writing an `RwLock`.
pub(crate) fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_task_unwinds_after_the_others_finish() {
        // The caller claims task 0 first (the helper has to notice the job), and it panics
        // only after the helper has finished tasks 1..8: the panic must resume after them.
        let team = Team::new(1).unwrap();
        let ran = AtomicUsize::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            team.run(8, &|i| {
                if i == 0 {
                    let start = Instant::now();
                    while ran.load(Ordering::SeqCst) < 7 && start.elapsed() < SPIN * 50 {
                        std::hint::spin_loop();
                    }
                    panic!("task 0");
                }
                ran.fetch_add(1, Ordering::SeqCst);
            })
        }));
        assert!(result.is_err());
        assert_eq!(ran.load(Ordering::SeqCst), 7);
        // The team still works afterwards.
        let hits = AtomicUsize::new(0);
        team.run(5, &|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_panic_on_a_helper_reaches_the_caller() {
        let team = Team::new(1).unwrap();
        let caller = std::thread::current().id();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            team.run(64, &|_| {
                if std::thread::current().id() != caller {
                    panic!("on a helper");
                }
                std::thread::sleep(Duration::from_millis(1));
            })
        }));
        assert!(result.is_err());
    }

    /// Drive a chooser with jobs of 2 tasks that take `shared` or `alone` each.
    fn choices(shared: Duration, alone: Duration, jobs: usize) -> Vec<bool> {
        let mut c = Chooser::new();
        let mut now = Instant::now();
        (0..jobs)
            .map(|_| {
                let solo = c.start_at(now, 2);
                now += if solo { alone } else { shared };
                solo
            })
            .collect()
    }

    #[test]
    fn the_chooser_runs_the_faster_way_and_probes_the_other() {
        // The first probe ends after the shared start and one probe of each way.
        let first = Chooser::FIRST_RUN as usize + 2 * (Chooser::PROBE as usize + 1);
        let fast = Duration::from_micros(50);
        let slow = Duration::from_micros(300);
        // Sharing pays (a quiet machine): after the first probe, shared runs of 64, 256, …
        let quiet = choices(fast, slow, 2000);
        assert!(
            quiet[..Chooser::FIRST_RUN as usize]
                .iter()
                .all(|&solo| !solo)
        );
        assert!(quiet[first..first + 64].iter().all(|&solo| !solo));
        let alone = quiet.iter().filter(|&&solo| solo).count();
        assert!(
            alone <= 4 * (Chooser::PROBE as usize + 1),
            "{alone} jobs alone"
        );
        // Sharing costs (a CPU hog): alone, except for the start and the probes.
        let busy = choices(slow, fast, 2000);
        assert!(busy[first..first + 64].iter().all(|&solo| solo));
        let shared = busy.iter().filter(|&&solo| !solo).count();
        assert!(
            shared <= Chooser::FIRST_RUN as usize + 4 * (Chooser::PROBE as usize + 1),
            "{shared} jobs shared"
        );
        // Sharing must win clearly: 10% faster is not enough.
        let close = choices(Duration::from_micros(90), Duration::from_micros(100), 200);
        assert!(close[first..first + 64].iter().all(|&solo| solo));
        // A pause of the caller is not counted for either way: alone is faster here, and a
        // second's pause during its probe would make it lose if it were.
        let mut c = Chooser::new();
        let mut now = Instant::now();
        for i in 0..first {
            let solo = c.start_at(now, 2);
            now += if solo { fast } else { slow };
            if i == first - 3 {
                assert!(solo);
                now += Duration::from_secs(1);
            }
        }
        assert!(
            c.start_at(now, 2),
            "a pause during the solo probe made it lose"
        );
    }

    #[test]
    fn every_task_runs_once_including_after_parking() {
        let team = Team::new(3).unwrap();
        assert_eq!(team.threads(), 4);
        for n in [0, 1, 2, 7, 100] {
            let hits = Mutex::new(vec![0u32; n]);
            team.run(n, &|i| hits.lock().unwrap()[i] += 1);
            assert!(
                hits.into_inner().unwrap().iter().all(|&h| h == 1),
                "n = {n}"
            );
            // Let the helpers park, so the next job has to wake them.
            std::thread::sleep(SPIN * 3);
        }
        let solo = Team::new(0).unwrap();
        let hits = Mutex::new(vec![0u32; 9]);
        solo.run(9, &|i| hits.lock().unwrap()[i] += 1);
        assert!(hits.into_inner().unwrap().iter().all(|&h| h == 1));
    }
}
