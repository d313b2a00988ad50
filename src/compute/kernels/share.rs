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
//! - **No probe without a free core.** Before each probe the team reads the kernel's count
//!   of runnable threads (`/proc/loadavg`); when the threads besides its own fill the cores
//!   the caller does not need, it runs alone for 64 more jobs and asks again
//!   ([`Team::free_core`]). Beside a hog or a second run a probe can only measure a helper
//!   waiting for a core, and each one cost a few scheduler slices.
//! - **The team measures whether sharing pays** ([`Chooser`]): it starts on the caller alone,
//!   then now and then runs short blocks of jobs shared and alone in turn, timed from one
//!   job's start to the next, and runs the way with the lower median for longer each time it
//!   wins again. A probe whose shared jobs wait for a preempted helper stops after one or
//!   two of them. Which thread runs a task never changes the results, so this is invisible
//!   except in time, and in [`Kernel::sharing`](super::Kernel::sharing) (`train`'s timing
//!   line: `calls shared N, alone M`).
//! - **A probe measures a helper that is there.** Through a probe the helpers do not park
//!   (they spin up to [`PROBE_SPIN`] between jobs, the alone blocks included), and a shared
//!   job whose tasks all ran on the caller (a helper still waking up, or without a core) is
//!   no sample of sharing.
//!
//! ### Why this chooser (2026-12-06)
//! The one before it started shared, probed once (8 jobs shared, then 8 alone, judged by
//! their sums) and grew the winner's run ×4 up to 4096 jobs. On a 2-core AMD EPYC Zen 2
//! (AVX2, idle) it picked "alone" in about 9 of 12 default runs: its first probe came
//! during the first jobs, when every job is slow and getting faster (page faults, the
//! helper's first buffers and cold caches) and the alone half came second, so the drift
//! favoured it (the likely cause); the alone run then grew to 4096 jobs with no second chance. The loop took 140.8 ms (2.14× the 2-thread FMA floor)
//! in those runs and 83–96 ms in the others. Beside a freshly started hog its shared start
//! and shared probes cost 125–142 ms against 118–121 ms alone (AMD EPYC Zen 4, 2026-12-02).
//! Now: blocks of 4 jobs alternate inside a probe, so a drift weighs on both ways; medians
//! ignore a stray slow job; alone runs stop at 1024 jobs, so a wrong verdict is re-examined;
//! the start is alone and a probe that hurts stops early, so a hog costs a few slow jobs;
//! a probe that sharing does not win clearly is repeated after 16 jobs, not 64 or more.
//! Seen on the AMD EPYC Zen 4 (AVX-512) on 2026-12-06: the first probe, with a cold helper,
//! measured shared and alone equal (53 against 54 µs per task), the later ones 34 against
//! 55; with its run of 64 alone jobs the loop took 73–96 ms against 65–76 ms forced shared.
//!
//! `scripts/busy.sh 7` on that machine (2 cores, quiet but for the cases; medians of 7
//! interleaved rounds, fastest–slowest; 2-thread FMA floor of the loop 37.0 ms):
//!
//! | | default | `--threads 1` | ratio | calls shared |
//! | --- | --- | --- | --- | --- |
//! | quiet | 87.3 ms (79.7–111.4) | 122.9 ms (110.5–156.3) | 0.71× | 980 of 1020 |
//! | hog started 0.2 s before | 176.0 ms (138.4–192.5) | 149.7 ms (125.1–179.7) | 1.18× | 118 of 1020 |
//! | two runs at once | 141.4 ms (111.6–191.7) | 119.2 ms (109.8–177.4) | 1.19× | 16 of 1020 |
//!
//! Beside the hog, 118 shared calls were probes the 2× rule let pass; two at once, 16 shared
//! calls and still 19% slower: each probe's shared jobs waited for a helper that had been
//! woken onto a busy core. Hence the free-core rule (2026-12-07, same machine, same script,
//! two runs of it; the VM was noisier than the day before: `--threads 1` alone spread
//! 114–228 ms over twelve runs):
//!
//! | | default | `--threads 1` | ratio | calls shared |
//! | --- | --- | --- | --- | --- |
//! | quiet (7 rounds) | 77.7 ms (66.6–93.0) | 112.7 ms (111.2–143.8) | 0.69× | 908 of 1020 |
//! | hog (7 rounds) | 151.5 ms (120.3–157.7) | 136.6 ms (120.3–169.2) | 1.11× | 0 of 1020 |
//! | two at once (7 rounds) | 123.1 ms (110.9–146.1) | 112.8 ms (108.5–149.5) | 1.09× | 0 of 1020 |
//! | quiet (15 rounds) | 118.5 ms (80.8–147.7) | 132.2 ms (112.3–145.5) | 0.90× | 836 of 1020 |
//! | hog (15 rounds) | 146.9 ms (118.6–177.6) | 138.9 ms (112.4–188.0) | 1.06× | 0 of 1020 |
//! | two at once (15 rounds) | 138.2 ms (112.5–223.5) | 131.3 ms (108.9–221.0) | 1.05× | 0 of 1020 |
//!
//! Beside a hog and two at once the default now runs exactly the `--threads 1` work (no call
//! shared); what is left between them is the VM's noise. Not there yet: the quiet loop is
//! 2.15–3.16× the 2-thread floor and its runs spread 1.4–1.8×, probes in a quiet run
//! sometimes lose (14 to 980 calls shared in twelve quiet runs), and the epoch at batch 256
//! is 3.5× its floor.
//!
//! ### Why probes must not measure a waking helper (2026-12-07, later)
//! The same machine a few hours later: `scripts/busy.sh 7` gave a quiet default of 116.4 ms
//! (96.7–125.2), 1.06× `--threads 1`, 48 of 1020 calls shared, while the same binary with
//! every step forced shared ran the loop in 61–68 ms. The probes' own samples (printed from
//! `end_probe` for six runs) showed why: shared 52–59 µs per task, alone 52–55. In a probe's
//! alone blocks the helpers parked at once, and waking one on this VM took longer
//! than a whole shared block of 4 jobs (~0.25 ms), so the shared blocks ran on the caller
//! alone and sharing never won. With helpers spinning through the probe, the samples became
//! 30–37 µs shared against 52–69 alone; not counting the shared jobs the helpers missed
//! keeps a probe that starts with a cold helper from deciding on it. `scripts/busy.sh`, same
//! machine, same hour (2-thread floor 35.2–35.5 ms):
//!
//! | | default | `--threads 1` | ratio | calls shared |
//! | --- | --- | --- | --- | --- |
//! | quiet, before (7 rounds) | 116.4 ms (96.7–125.2) | 109.8 ms (108.5–113.3) | 1.06× | 48 of 1020 |
//! | hog, before | 111.5 ms (108.4–129.7) | 110.4 ms (107.1–117.0) | 1.01× | 0 of 1020 |
//! | two at once, before | 112.4 ms (108.0–120.6) | 110.6 ms (107.6–120.3) | 1.02× | 0 of 1020 |
//! | quiet, after (15 rounds) | 72.2 ms (63.5–92.5) | 109.2 ms (106.0–113.1) | 0.66× | 836 of 1020 |
//! | hog, after | 110.5 ms (107.5–130.4) | 107.8 ms (106.1–113.5) | 1.03× | 0 of 1020 |
//! | two at once, after | 108.2 ms (105.3–134.1) | 106.9 ms (104.8–115.1) | 1.01× | 0 of 1020 |
//!
//! Still short of the goal: the quiet loop is 2.05× the 2-thread floor (`--threads 1` is
//! itself 1.58× the 1-thread floor: the kernel's work besides the FMAs), its runs spread
//! 1.46×, and the epoch at batch 256 is 2.94× its floor.
//!
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long an idle helper spins before it parks: a few times the gap between two training
/// steps (the SGD update and the next batch's indices, a few microseconds).
const SPIN: Duration = Duration::from_micros(200);

/// How long an idle helper spins during a probe (whose alone blocks last a few hundred
/// microseconds) before it parks anyway.
const PROBE_SPIN: Duration = Duration::from_millis(5);

/// Jobs with at least this many tasks per thread always run shared (see [`Team::run`]).
const MANY_TASKS: usize = 4;

/// How long the caller spins for the helpers' last tasks before it yields its core to them.
const WAIT_SPIN: Duration = Duration::from_micros(50);

/// Whether jobs run shared or on the caller alone, chosen by measuring both.
///
/// The measure is the caller's wall time per task from the start of one job to the start of
/// the next, so it counts everything the choice affects: the job itself, a wait for a
/// preempted helper, and the time the caller loses to a spinning helper when the machine has
/// fewer free cores than the team has threads.
///
/// - **Warm-up, alone.** The first [`Chooser::WARM_UP`] jobs run on the caller alone: alone
///   is never far from the best (at worst the second core is idle for a few jobs), while a
///   shared start beside a CPU hog waits a scheduler slice for a preempted helper in every
///   job. Its last jobs give the first yardstick of the caller alone.
/// - **Probes, interleaved.** A probe is [`Chooser::PROBE_BLOCKS`] blocks of
///   [`Chooser::BLOCK`] jobs, shared and alone in turn, so that a drift in time (page faults
///   of the first passes over the data, a frequency ramp, a neighbour's burst) weighs on
///   both ways alike. The first job of a block is not counted (helpers waking up). The way
///   with the lower **median** time per task wins; sharing has to win by
///   [`Chooser::SHARED_MARGIN`].
/// - **A probe that hurts stops.** A shared job slower per task than
///   [`Chooser::BAD`] × the caller alone is a helper that lost its core; two such jobs, or one
///   slower than [`Chooser::HOPELESS`] ×, end the probe at once: alone wins. Beside a hog a
///   probe therefore costs one or two slow jobs, not a block of them.
/// - **Runs.** The winner runs for `run` jobs, then the next probe. `run` grows ×4 while the
///   same way keeps winning (×8 after a stopped probe), up to [`Chooser::MAX_SHARED_RUN`]
///   shared and [`Chooser::MAX_ALONE_RUN`] alone (a wrong verdict for sharing costs at most
///   that many jobs), and restarts from [`Chooser::MIN_RUN`] when the winner changes. A shared
///   job slower than [`Chooser::HOPELESS`] × alone during a run ends the run (a hog arrived).
#[derive(Debug)]
struct Chooser {
    /// Jobs left in the current phase.
    left: u32,
    /// The current phase.
    phase: Phase,
    /// The way that won the last probe: true = alone.
    winner: bool,
    /// The length of the next run.
    run: u32,
    /// The last job: when it started, its tasks, whether it ran alone, whether it is a sample.
    last: Option<Last>,
    /// The probe's samples (seconds per task), per way: shared, alone.
    samples: [Samples; 2],
    /// Shared jobs of this probe that were slower than `BAD` × alone.
    bad: u32,
    /// This probe was stopped by its bad shared jobs.
    stopped: bool,
    /// The caller's time per task alone (seconds), from the last probe or the warm-up.
    alone: Option<f64>,
    /// Jobs run so far, shared and alone.
    jobs: [u64; 2],
}

/// What a [`Chooser`] is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// The first jobs, alone.
    WarmUp,
    /// Job `0..PROBE_BLOCKS * BLOCK` of a probe.
    Probe(u32),
    /// The winner's run.
    Run,
}

/// The job before this one, as [`Chooser`] remembers it.
#[derive(Debug, Clone, Copy)]
struct Last {
    at: Instant,
    tasks: usize,
    solo: bool,
    sample: bool,
}

/// Up to [`Samples::CAP`] measures of one way in one probe.
#[derive(Debug, Clone, Copy, Default)]
struct Samples {
    values: [f64; Samples::CAP],
    len: usize,
}

impl Samples {
    const CAP: usize = 16;

    fn push(&mut self, v: f64) {
        if self.len < Self::CAP {
            self.values[self.len] = v;
            self.len += 1;
        }
    }

    /// The median (the upper one of an even count), or `None` without samples.
    fn median(&self) -> Option<f64> {
        let mut v = self.values;
        let v = &mut v[..self.len];
        v.sort_by(f64::total_cmp);
        v.get(self.len / 2).copied()
    }
}

impl Chooser {
    const WARM_UP: u32 = 16;
    const BLOCK: u32 = 4;
    const PROBE_BLOCKS: u32 = 4;
    /// Sharing runs only when its time per task is below this share of the caller's alone.
    const SHARED_MARGIN: f64 = 1.0 / 0.85;
    /// A shared job this many times slower per task than the caller alone is a bad one.
    const BAD: f64 = 2.0;
    /// A shared job this many times slower per task than alone ends a probe or a run at once.
    const HOPELESS: f64 = 8.0;
    const MIN_RUN: u32 = 64;
    /// The first run after a probe that sharing did not win clearly, without hurting.
    const CLOSE_RUN: u32 = 16;
    const MAX_SHARED_RUN: u32 = 4096;
    const MAX_ALONE_RUN: u32 = 1024;
    /// Longer cycles per task are a pause of the caller, not a measure of either way.
    const MAX_CYCLE_PER_TASK: Duration = Duration::from_millis(20);
    /// Jobs run alone when a probe was due but no core was free for a helper.
    const BUSY_RUN: u32 = 64;

    const fn new() -> Self {
        Chooser {
            left: Self::WARM_UP,
            phase: Phase::WarmUp,
            winner: true,
            run: Self::CLOSE_RUN / 2,
            last: None,
            samples: [Samples {
                values: [0.0; Samples::CAP],
                len: 0,
            }; 2],
            bad: 0,
            stopped: false,
            alone: None,
            jobs: [0; 2],
        }
    }

    /// Start a job of `n` tasks: true when it should run on the caller alone. `free_core` is
    /// asked before a probe whether a core is free for a helper (see [`Team::free_core`]).
    fn start(&mut self, n: usize, free_core: impl FnOnce() -> bool) -> bool {
        self.start_at(Instant::now(), n, free_core)
    }

    /// [`Chooser::start`] at time `now`.
    fn start_at(&mut self, now: Instant, n: usize, free_core: impl FnOnce() -> bool) -> bool {
        if let Some(last) = self.last.take() {
            self.measured(last, now - last.at);
        }
        if self.left == 0 {
            self.next_phase(free_core);
        }
        self.left -= 1;
        let solo = self.solo();
        let sample = match self.phase {
            Phase::WarmUp => self.left < Self::WARM_UP / 2,
            Phase::Probe(j) => j % Self::BLOCK != 0,
            Phase::Run => !solo,
        };
        self.last = Some(Last {
            at: now,
            tasks: n,
            solo,
            sample,
        });
        self.jobs[usize::from(solo)] += 1;
        if let Phase::Probe(j) = &mut self.phase {
            *j += 1;
        }
        solo
    }

    /// Whether a probe is under way.
    fn probing(&self) -> bool {
        matches!(self.phase, Phase::Probe(_))
    }

    /// Whether the current job runs alone.
    fn solo(&self) -> bool {
        match self.phase {
            Phase::WarmUp => true,
            Phase::Probe(j) => (j / Self::BLOCK) % 2 == 1,
            Phase::Run => self.winner,
        }
    }

    /// The last job took `cycle`: record it, and stop a probe or a shared run that hurts.
    fn measured(&mut self, last: Last, cycle: Duration) {
        if !last.sample || cycle >= Self::MAX_CYCLE_PER_TASK * last.tasks as u32 {
            return;
        }
        let per_task = cycle.as_secs_f64() / last.tasks.max(1) as f64;
        let slowdown = self.alone.map_or(1.0, |alone| per_task / alone);
        match self.phase {
            Phase::WarmUp => self.samples[1].push(per_task),
            Phase::Probe(_) => {
                self.samples[usize::from(last.solo)].push(per_task);
                if !last.solo && slowdown > Self::BAD {
                    self.bad += 1;
                    if self.bad >= 2 || slowdown > Self::HOPELESS {
                        // The probe ends: alone wins.
                        (self.stopped, self.left) = (true, 0);
                    }
                }
            }
            Phase::Run => {
                if slowdown > Self::HOPELESS {
                    self.left = 0; // a hog arrived: probe again now
                }
            }
        }
    }

    /// The current shared job ran on the caller alone: it is no sample of sharing.
    fn helpers_absent(&mut self) {
        if let Some(last) = self.last.as_mut() {
            last.sample = false;
        }
    }

    /// A job outside the measures runs shared: the cycle of the last one is not counted.
    fn skip(&mut self) {
        self.last = None;
        self.jobs[0] += 1;
    }

    /// End the current phase: after the warm-up or a run, probe (if a core is free); after a
    /// probe, run the faster way.
    fn next_phase(&mut self, free_core: impl FnOnce() -> bool) {
        match self.phase {
            Phase::WarmUp => {
                self.alone = self.samples[1].median();
                self.probe_if(free_core());
            }
            Phase::Run => self.probe_if(free_core()),
            Phase::Probe(_) => self.end_probe(),
        }
    }

    /// Probe when a core is free for a helper; else run alone for [`Chooser::BUSY_RUN`] jobs
    /// and ask again (a probe then would only measure a helper waiting for a core).
    fn probe_if(&mut self, free_core: bool) {
        if free_core {
            self.start_probe();
        } else {
            self.winner = true;
            (self.phase, self.left) = (Phase::Run, Self::BUSY_RUN);
        }
    }

    fn start_probe(&mut self) {
        self.samples = Default::default();
        (self.bad, self.stopped) = (0, false);
        self.phase = Phase::Probe(0);
        self.left = Self::PROBE_BLOCKS * Self::BLOCK;
    }

    /// Pick the winner of the probe that just ended and the length of its run.
    fn end_probe(&mut self) {
        let stopped = self.stopped;
        let (shared, alone) = (self.samples[0].median(), self.samples[1].median());
        if alone.is_some() {
            self.alone = alone;
        }
        // Sharing has to win clearly: on a quiet machine it saves 30% or more, and a probe
        // that a busy machine let pass by luck should not buy a shared run.
        let solo = stopped
            || match (shared, alone) {
                (Some(s), Some(a)) => a < Self::SHARED_MARGIN * s,
                _ => true,
            };
        // Shared wins: runs of 64, 256, … 4096. Sharing hurt (a busy machine): 64, 512, 1024.
        // Sharing did not win clearly but did not hurt (the first probe with cold helpers,
        // caches and pages; a neighbour's burst): 16, 32, … — look again soon.
        let (first, grow, max) = match (solo, stopped) {
            (false, _) => (Self::MIN_RUN, 4, Self::MAX_SHARED_RUN),
            (true, true) => (Self::MIN_RUN, 8, Self::MAX_ALONE_RUN),
            (true, false) => (Self::CLOSE_RUN, 2, Self::MAX_ALONE_RUN),
        };
        self.run = if solo == self.winner {
            (self.run * grow).clamp(first, max)
        } else {
            first
        };
        self.winner = solo;
        (self.phase, self.left) = (Phase::Run, self.run);
    }
}

/// Runnable threads on the machine now, the caller included (Linux's `/proc/loadavg`:
/// `0.52 0.58 0.59 3/415 12345`, the 3); `None` elsewhere or when it cannot be read.
fn runnable_threads() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let field = text.split_whitespace().nth(3)?;
    field.split('/').next()?.parse().ok()
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
    /// Claim and run tasks until none are left; returns how many this thread ran.
    fn work(&self) -> usize {
        let mut ran = 0;
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return ran;
            }
            ran += 1;
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
    /// How long (ns) an idle helper spins before it parks: [`SPIN`] while jobs run shared,
    /// 0 while the caller runs them alone, [`PROBE_SPIN`] through a probe.
    idle_spin: AtomicU64,
}

/// `threads`, or one per core for 0 (the kernels' and the solver's thread counts).
pub(crate) fn threads_or_cores(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
}

/// The caller plus `helpers` threads that share jobs.
pub(crate) struct Team {
    shared: Arc<Shared>,
    handles: Vec<std::thread::JoinHandle<()>>,
    chooser: Mutex<Chooser>,
    /// The cores this process may use (asked once: it reads cgroup files on Linux).
    cores: usize,
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
            idle_spin: AtomicU64::new(SPIN.as_nanos() as u64),
        });
        let mut team = Team {
            shared,
            handles: Vec::new(),
            chooser: Mutex::new(Chooser::new()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
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

    /// Whether a core is free for a helper now, by the kernel's count of runnable threads
    /// (Linux: `/proc/loadavg`'s fourth field, read in a few microseconds, once per probe):
    /// the threads running besides the caller and this team's unparked helpers leave a core
    /// free when they number fewer than the cores less the caller's. Where that count cannot
    /// be read, always true (the probes then find out by timing alone).
    fn free_core(&self) -> bool {
        let Some(running) = runnable_threads() else {
            return true;
        };
        let helpers_awake = self
            .handles
            .len()
            .saturating_sub(self.shared.parked.load(Ordering::SeqCst));
        let others = running.saturating_sub(1 + helpers_awake);
        others + 1 < self.cores
    }

    /// Jobs of two tasks or more run so far: shared, and on the caller alone.
    pub(crate) fn sharing(&self) -> super::Sharing {
        let [shared, alone] = lock(&self.chooser).jobs;
        super::Sharing { shared, alone }
    }

    /// Run `task(0..n)` on the calling thread and the helpers; returns when every task has
    /// finished. A task that panics (on any thread) makes this panic once every claimed task
    /// has finished. Kernels only panic on broken invariants, never on input.
    pub(crate) fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        // Jobs of many tasks (an evaluation) balance themselves and always pay for sharing: they
        // run shared, outside the chooser's measures.
        self.dispatch(n, task, n >= MANY_TASKS * self.threads());
    }

    /// [`Team::run`] without the chooser: always shared. For jobs of few tasks known to pay
    /// for it (the solver's preconditioner maps, a millisecond per class group).
    pub(crate) fn run_shared(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        self.dispatch(n, task, true);
    }

    /// Run `task(0..n)` shared, outside the chooser's measures (`always_shared`), or the way
    /// the chooser picks; then tell the helpers how long to spin when idle.
    fn dispatch(&self, n: usize, task: &(dyn Fn(usize) + Sync), always_shared: bool) {
        if self.handles.is_empty() || n <= 1 {
            (0..n).for_each(task);
            return;
        }
        let (solo, probing) = {
            let mut chooser = lock(&self.chooser);
            let solo = if always_shared {
                chooser.skip();
                false
            } else {
                chooser.start(n, || self.free_core())
            };
            (solo, chooser.probing())
        };
        // Alone, helpers park at once; a probe's helpers stay awake through its alone blocks,
        // so that its shared blocks measure a helper that is there, as in a shared run, not
        // its wake-up.
        let idle_spin = match (probing, solo) {
            (true, _) => PROBE_SPIN,
            (false, true) => Duration::ZERO,
            (false, false) => SPIN,
        };
        let nanos = u64::try_from(idle_spin.as_nanos()).unwrap_or(u64::MAX);
        self.shared.idle_spin.store(nanos, Ordering::Relaxed);
        if solo {
            (0..n).for_each(task);
        } else {
            self.share(n, task);
        }
    }

    /// Run `task(0..n)` on the caller and the helpers (see [`Team::run`]).
    fn share(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
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
        match outcome {
            Err(panic) => std::panic::resume_unwind(panic),
            // No helper took a task: the job measured the caller alone (a helper still waking
            // up, or without a core), not sharing.
            Ok(ran) if ran == n => lock(&self.chooser).helpers_absent(),
            Ok(_) => {}
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
                && idle_since.elapsed()
                    > Duration::from_nanos(shared.idle_spin.load(Ordering::Relaxed))
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

    /// Drive a chooser with jobs of 2 tasks; job `j` run shared takes `shared(j)`, alone
    /// `alone(j)`. Returns whether each job ran alone.
    fn drive(
        jobs: usize,
        shared: impl Fn(usize) -> Duration,
        alone: impl Fn(usize) -> Duration,
    ) -> Vec<bool> {
        let mut c = Chooser::new();
        let mut now = Instant::now();
        (0..jobs)
            .map(|j| {
                let solo = c.start_at(now, 2, || true);
                now += if solo { alone(j) } else { shared(j) };
                solo
            })
            .collect()
    }

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    /// Jobs `range` of `choices` that ran shared.
    fn shared_in(choices: &[bool], range: std::ops::Range<usize>) -> usize {
        choices[range].iter().filter(|&&solo| !solo).count()
    }

    /// The first job after the warm-up and the first probe.
    const FIRST_RUN: usize = (Chooser::WARM_UP + Chooser::PROBE_BLOCKS * Chooser::BLOCK) as usize;

    #[test]
    fn a_quiet_machine_shares_after_the_warm_up_and_probes_rarely() {
        let quiet = drive(3000, |_| us(60), |_| us(100));
        assert_eq!(shared_in(&quiet, 0..Chooser::WARM_UP as usize), 0);
        assert_eq!(shared_in(&quiet, FIRST_RUN..FIRST_RUN + 64), 64);
        // Alone: the warm-up and half of each probe (after runs of 64, 256, 1024, 4096).
        let alone = quiet.len() - shared_in(&quiet, 0..quiet.len());
        let per_probe = (Chooser::PROBE_BLOCKS * Chooser::BLOCK / 2) as usize;
        assert!(
            alone <= Chooser::WARM_UP as usize + 4 * per_probe,
            "{alone} jobs alone"
        );
    }

    #[test]
    fn beside_a_hog_a_probe_costs_two_or_three_shared_jobs() {
        // Shared 5× slower (a preempted helper): bad, not hopeless; the probe stops at the
        // second counted bad job, after the block's uncounted first one.
        let busy = drive(3000, |_| us(500), |_| us(100));
        let shared = shared_in(&busy, 0..busy.len());
        // Probes at 16, then after alone runs of 64, 512, 1024, 1024: five in 3000 jobs.
        assert!(shared <= 5 * 3, "{shared} jobs shared");
        assert_eq!(shared_in(&busy, 0..Chooser::WARM_UP as usize), 0);
        // Hopeless (20×): one counted job is enough.
        let hopeless = drive(3000, |_| us(2000), |_| us(100));
        let shared = shared_in(&hopeless, 0..hopeless.len());
        assert!(shared <= 5 * 2, "{shared} jobs shared");
    }

    #[test]
    fn a_first_probe_with_cold_helpers_is_looked_at_again_soon() {
        // Sharing saves nothing in the first 40 jobs (the helper's first tasks: its scratch
        // and chunk buffers, cold caches), then 40%: shared from the second probe on.
        let jobs = drive(400, |j| if j < 40 { us(100) } else { us(60) }, |_| us(100));
        assert_eq!(shared_in(&jobs, FIRST_RUN..FIRST_RUN + 16), 0);
        let second_run = FIRST_RUN + 16 + (Chooser::PROBE_BLOCKS * Chooser::BLOCK) as usize;
        assert_eq!(shared_in(&jobs, second_run..second_run + 64), 64);
    }

    #[test]
    fn a_shared_job_the_helpers_missed_is_no_sample() {
        // The first probe's first shared block finds the helper still waking up (the caller
        // runs both tasks: as slow as alone), and so does the first job of its second one;
        // the rest share at 60 µs. Counted, the slow jobs would make the median 100 µs and
        // alone would win; not counted, sharing wins the first probe.
        let mut c = Chooser::new();
        let mut now = Instant::now();
        let mut probing = Vec::new();
        let mut choices = Vec::new();
        for j in 0..FIRST_RUN + 8 {
            let solo = c.start_at(now, 2, || true);
            probing.push(c.probing());
            choices.push(solo);
            let in_probe = j.checked_sub(Chooser::WARM_UP as usize);
            let missed = in_probe.is_some_and(|p| p < 4 || (8..10).contains(&p));
            if !solo && missed {
                c.helpers_absent();
            }
            now += if solo || missed { us(100) } else { us(60) };
        }
        let probe = Chooser::WARM_UP as usize..FIRST_RUN;
        assert!(probing[probe.clone()].iter().all(|&p| p));
        assert!(!probing[..probe.start].iter().any(|&p| p) && !probing[FIRST_RUN]);
        assert_eq!(shared_in(&choices, FIRST_RUN..FIRST_RUN + 8), 8);
    }

    #[test]
    fn no_probe_while_no_core_is_free_and_one_soon_after() {
        // No free core at any probe (a hog, a second run): every job alone, not one probed.
        let mut c = Chooser::new();
        let mut now = Instant::now();
        for _ in 0..3000 {
            assert!(c.start_at(now, 2, || false));
            now += us(100);
        }
        // A core frees up: the next probe comes within BUSY_RUN jobs and sharing wins.
        let shared: usize = (0..400)
            .map(|_| {
                let solo = c.start_at(now, 2, || true);
                now += if solo { us(100) } else { us(60) };
                usize::from(!solo)
            })
            .sum();
        assert!(shared >= 300, "{shared} of 400 jobs shared");
    }

    #[test]
    fn the_runnable_count_reads_where_the_kernel_has_it() {
        if std::path::Path::new("/proc/loadavg").exists() {
            // This thread is running while it reads.
            assert!(runnable_threads().is_some_and(|n| n >= 1));
        }
    }

    #[test]
    fn sharing_must_win_clearly() {
        // 10% faster is not enough: alone runs, growing 16, 32, … between the probes.
        let close = drive(3000, |_| us(90), |_| us(100));
        assert_eq!(shared_in(&close, FIRST_RUN..FIRST_RUN + 16), 0);
        let shared = shared_in(&close, 0..close.len());
        assert!(shared < 3000 / 10, "{shared} jobs shared");
    }

    #[test]
    fn a_drift_during_the_probe_weighs_on_both_ways() {
        // Every job is slower at the start (page faults of the first passes: 3× at job 0,
        // falling to 1× at job 100) while sharing saves 40%: the first probe must pick it.
        let drift = |j: usize| 1.0 + 2.0 * (1.0 - j as f64 / 100.0).max(0.0);
        let jobs = drive(
            300,
            |j| Duration::from_secs_f64(60e-6 * drift(j)),
            |j| Duration::from_secs_f64(100e-6 * drift(j)),
        );
        assert_eq!(shared_in(&jobs, FIRST_RUN..FIRST_RUN + 64), 64);
    }

    #[test]
    fn a_pause_of_the_caller_is_not_a_measure() {
        // Alone is faster; a second's pause in one of its probe jobs must not make it lose.
        let jobs = drive(
            FIRST_RUN + 8,
            |_| us(300),
            |j| {
                if j == FIRST_RUN - 2 {
                    Duration::from_secs(1)
                } else {
                    us(100)
                }
            },
        );
        assert!(jobs[FIRST_RUN - 2], "the paused job ran alone");
        assert_eq!(shared_in(&jobs, FIRST_RUN..FIRST_RUN + 8), 0);
    }

    #[test]
    fn a_hog_that_arrives_during_a_shared_run_ends_it() {
        // Quiet until job 500, then every shared job waits for a preempted helper.
        let jobs = drive(
            1500,
            |j| if j < 500 { us(60) } else { us(5000) },
            |_| us(100),
        );
        assert!(!jobs[499], "shared before the hog");
        // The run ends at the first hopeless job and the probe after it stops at its second
        // job: alone from job 503, except for two jobs of each later probe (after 64, 512).
        assert_eq!(shared_in(&jobs, 503..503 + 64), 0);
        let shared = shared_in(&jobs, 500..1500);
        assert!(shared <= 3 + 2 * 2, "{shared} jobs shared");
    }

    #[test]
    fn the_jobs_are_counted_by_way() {
        let mut c = Chooser::new();
        let solo: usize = (0..100).map(|_| usize::from(c.start(2, || true))).sum();
        assert_eq!(c.jobs, [100 - solo as u64, solo as u64]);
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
