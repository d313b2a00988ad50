//! Work sharing for small batches: the calling thread and `helpers` pool threads take task
//! indices from one atomic counter until all are claimed; the caller then waits only for the
//! tasks that were claimed, never for a helper to wake up.
//!
//! Why not `pool.install(|| par_iter…)`: on these (virtual) machines waking a sleeping pool
//! thread costs tens of microseconds, and with `install` the caller sits idle through it on
//! every training step. Here the caller starts working at once; a helper that wakes late
//! finds fewer (or no) tasks left. Which thread runs a task never changes what the task
//! computes, so results stay independent of the thread count.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The task function, with its lifetime erased (see [`run_shared`] for why that is sound).
type Task = *const (dyn Fn(usize) + Sync);

struct Shared {
    next: AtomicUsize,
    done: AtomicUsize,
    n: usize,
    task: Task,
}

// SAFETY: `task` points to a `Sync` closure, and it is only dereferenced while the thread that
// owns the closure is blocked in `run_shared` (see there); the counters are atomics.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// Counts a claimed task as done when dropped, so a task that panics still counts and the
/// caller's wait ends.
struct DoneOnDrop<'a>(&'a AtomicUsize);

impl Drop for DoneOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

impl Shared {
    /// Claim and run tasks until none are left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            let _done = DoneOnDrop(&self.done);
            // SAFETY: `i < n` was claimed and is not counted as done before this call
            // returns or unwinds, so the caller of `run_shared` is still waiting for
            // `done == n`: the closure is alive.
            unsafe { (*self.task)(i) };
        }
    }
}

/// Run `task(0..n)` on the calling thread and the threads of `pool`. A task that panics on
/// the calling thread unwinds once every claimed task has finished; on a pool thread a panic
/// aborts the process (rayon's rule for spawned jobs). Kernels only panic on broken
/// invariants, never on input.
pub fn run_shared(pool: Option<&rayon::ThreadPool>, n: usize, task: &(dyn Fn(usize) + Sync)) {
    let Some(pool) = pool.filter(|_| n > 1) else {
        (0..n).for_each(task);
        return;
    };
    // SAFETY (lifetime erasure): the pointer outlives `task`'s borrow only inside `Shared`
    // values held by helper jobs; they dereference it only after claiming an index below `n`,
    // and this function does not return before all `n` claimed tasks have finished
    // (`done == n`), so no dereference can happen after `task`'s borrow ends.
    let task: Task = unsafe {
        std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), Task>(task as *const _)
    };
    let shared = Arc::new(Shared {
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        n,
        task,
    });
    for _ in 0..pool.current_num_threads().min(n - 1) {
        let shared = Arc::clone(&shared);
        pool.spawn(move || shared.work());
    }
    // A panic in a task on this thread must not unwind past the wait below while helpers may
    // still be running tasks that borrow the caller's data: catch it, wait, then resume it.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.work()));
    let mut spins = 0u32;
    while shared.done.load(Ordering::Acquire) < n {
        if spins < 1 << 16 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_panicking_task_unwinds_after_the_others_finish() {
        // Keep the only helper busy until 50 ms from now, so the caller claims task 0
        // (which panics) and the helper must finish tasks 1..8 before the panic resumes.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        pool.spawn(move || {
            let _ = blocked.recv();
        });
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let _ = release.send(());
        });
        let ran = AtomicUsize::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_shared(Some(&pool), 8, &|i| {
                if i == 0 {
                    panic!("task 0");
                }
                ran.fetch_add(1, Ordering::Relaxed);
            })
        }));
        assert!(result.is_err());
        assert_eq!(ran.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn every_task_runs_once() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for n in [0, 1, 2, 7, 100] {
            let hits = Mutex::new(vec![0u32; n]);
            run_shared(Some(&pool), n, &|i| hits.lock().unwrap()[i] += 1);
            assert!(
                hits.into_inner().unwrap().iter().all(|&h| h == 1),
                "n = {n}"
            );
            let hits = Mutex::new(vec![0u32; n]);
            run_shared(None, n, &|i| hits.lock().unwrap()[i] += 1);
            assert!(
                hits.into_inner().unwrap().iter().all(|&h| h == 1),
                "n = {n}"
            );
        }
    }
}
