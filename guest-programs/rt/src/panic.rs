//! The panic handler: prints `panic: <message> at <file>:<line>:<col>` to
//! stderr and exits with status 101 (Rust's convention for a panicking
//! process). There is no unwinding (`panic = "abort"`).

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};

    /// Set by the first panic; a panic while reporting one (e.g. in a
    /// `Display` impl) exits at once instead of recursing.
    static PANICKING: AtomicBool = AtomicBool::new(false);

    /// Exit status of a panicking Rust program.
    const PANIC_EXIT_STATUS: i32 = 101;

    if !PANICKING.swap(true, Ordering::Relaxed) {
        match info.location() {
            Some(loc) => crate::eprintln!(
                "panic: {} at {}:{}:{}",
                info.message(),
                loc.file(),
                loc.line(),
                loc.column()
            ),
            None => crate::eprintln!("panic: {}", info.message()),
        }
    }
    crate::sys::proc::exit_group(PANIC_EXIT_STATUS)
}
