//! The core's one call into the operating system, kept here so that nothing else in the crate
//! writes `unsafe`.

/// Runs `f` (which spawns a thread) with every signal blocked, so the new thread inherits a
/// full mask from its first instruction; the caller's mask is restored afterwards.
pub fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: plain libc calls on stack-allocated sigset_t values.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let result = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}
