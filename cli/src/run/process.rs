//! Process-wide concerns of a binary: stop signals, a closed stdout, and the thread-count
//! warning. A library never calls these; the binaries do, first thing in `main`.

/// A warning when `threads` asks for more threads than the machine has cores: the extra
/// threads share cores, and every step waits for the slowest.
pub fn threads_warning(threads: usize) -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (threads > cores).then(|| {
        format!(
            "warning: --threads {threads} is more than the {cores} core(s) of this machine; \
             the extra threads share cores and slow each step down (0 = one per core)"
        )
    })
}

/// Let a closed stdout (`train | head`) end the process quietly with SIGPIPE, as any Unix
/// filter does, instead of Rust's default (the write fails, and `println!` panics). For
/// binaries: call it first in `main`.
pub fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: `signal(SIGPIPE, SIG_DFL)` installs no handler code and touches no memory of
    // ours; it only restores the kernel's default disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Ctrl-C and `kill`: the first SIGINT or SIGTERM asks the run to stop at the end of the
/// current step (see [`stop_requested`]); a second one ends the process at once with the
/// signal's conventional status (130 for SIGINT, 143 for SIGTERM).
#[cfg(unix)]
pub fn install_stop_handlers() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    for (signal, status) in [(SIGINT, 130), (SIGTERM, 143)] {
        // Registration order is execution order: exit if a signal came before, then mark.
        flag::register_conditional_shutdown(signal, status, &SIGNALLED)?;
        flag::register(signal, &SIGNALLED)?;
        flag::register_usize(signal, &STOP_SIGNAL, signal as usize)?;
    }
    Ok(())
}

/// Without Unix signals there is nothing to install: Ctrl-C ends the process at once (the
/// model is not saved, and `--resume` has nothing to continue from).
#[cfg(not(unix))]
pub fn install_stop_handlers() -> std::io::Result<()> {
    Ok(())
}

/// Set by the first SIGINT/SIGTERM; the second then exits at once.
#[cfg(unix)]
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static STOP_SIGNAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A stop signal that has arrived, if any: its name and the exit status it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopSignal {
    /// `SIGINT` or `SIGTERM`.
    pub name: &'static str,
    /// 128 + the signal number.
    pub exit_status: u8,
}

/// The stop signal received since [`install_stop_handlers`], if any.
pub fn stop_requested() -> Option<StopSignal> {
    match STOP_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        15 => Some(StopSignal {
            name: "SIGTERM",
            exit_status: 143,
        }),
        _ => Some(StopSignal {
            name: "SIGINT",
            exit_status: 130,
        }),
    }
}
