//! The panic handler: report like Linux's `panic()` and exit with [`EXIT_KERNEL_PANIC`].

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::exit::{exit, EXIT_KERNEL_PANIC};

/// Set by the first panic, so a panic while reporting one does not recurse.
static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        exit(EXIT_KERNEL_PANIC);
    }
    let mut con = crate::console::LoudConsole;
    let _ = write!(con, "Kernel panic - not syncing: {}", info.message());
    if let Some(location) = info.location() {
        let _ = write!(
            con,
            " (at {}:{}:{})",
            location.file(),
            location.line(),
            location.column()
        );
    }
    let _ = writeln!(con);
    crate::drivers::debugcon::report_panic();
    exit(EXIT_KERNEL_PANIC)
}
