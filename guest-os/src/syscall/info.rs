//! Information system calls: uname, clock_gettime, getrandom.

use super::errno::{SysResult, EINVAL};
use super::Args;
use crate::mm::uaccess::copy_to_user;

const UTS_LEN: usize = 65;
/// `uname -r`, and what /proc/version names.
pub const UTS_RELEASE: &str = "6.1.0-vmscope";
/// `uname -v`.
pub const UTS_VERSION: &str = "#1 SMP vmscope";

/// `uname(buf)`: six 65-byte fields.
pub fn sys_uname(a: &Args) -> SysResult {
    let fields: [&[u8]; 6] = [
        b"Linux",
        b"vmscope",
        UTS_RELEASE.as_bytes(),
        UTS_VERSION.as_bytes(),
        b"x86_64",
        b"(none)",
    ];
    let mut buf = [0u8; UTS_LEN * 6];
    for (i, f) in fields.iter().enumerate() {
        buf[i * UTS_LEN..i * UTS_LEN + f.len()].copy_from_slice(f);
    }
    copy_to_user(a.0[0], &buf)?;
    Ok(0)
}

/// Nanoseconds since boot on the virtual clock: the TSC, which vmscope derives from the
/// instruction count (deterministic) and QEMU from the host.
pub fn monotonic_ns() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// `clock_gettime(clock, ts)`: the monotonic clocks read the virtual clock; the REALTIME
/// ones add the wall-clock offset (the RTC's time at boot, or what clock_settime set); TAI
/// equals REALTIME while no TAI offset is set, as on Linux before adjtimex. The CPU-time
/// clocks give the time the process or thread ran ([`crate::proc::cputime`]).
pub fn sys_clock_gettime(a: &Args) -> SysResult {
    const CLOCK_REALTIME: u64 = 0;
    const CLOCK_REALTIME_COARSE: u64 = 5;
    const CLOCK_REALTIME_ALARM: u64 = 8;
    const CLOCK_TAI: u64 = 11;
    let clock = a.0[0] as u32 as u64;
    if clock > CLOCK_TAI || clock == 10 {
        return Err(EINVAL);
    }
    const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
    const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
    let ns = match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_REALTIME_ALARM | CLOCK_TAI => {
            crate::proc::timer::realtime_ns()
        }
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => {
            let t = crate::proc::current().ok_or(EINVAL)?;
            if clock == CLOCK_PROCESS_CPUTIME_ID {
                crate::proc::cputime::process_usage(t).rtime
            } else {
                crate::proc::cputime::thread_usage(t).rtime
            }
        }
        _ => monotonic_ns(),
    };
    let ts = [ns / 1_000_000_000, ns % 1_000_000_000];
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&ts[0].to_le_bytes());
    b[8..].copy_from_slice(&ts[1].to_le_bytes());
    copy_to_user(a.0[1], &b)?;
    Ok(0)
}

/// Fill `out` from the kernel's random stream: deterministic (xorshift), so runs repeat.
/// getrandom and /dev/(u)random read it.
pub fn random_bytes(out: &mut [u8]) {
    static STATE: core::sync::atomic::AtomicU64 =
        core::sync::atomic::AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    for b in out.iter_mut() {
        let mut x = STATE.load(core::sync::atomic::Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        STATE.store(x, core::sync::atomic::Ordering::Relaxed);
        *b = x as u8;
    }
}

/// `getrandom(buf, len, flags)`: a deterministic stream, so runs repeat.
pub fn sys_getrandom(a: &Args) -> SysResult {
    let len = (a.0[1] as usize).min(256);
    let mut buf = [0u8; 256];
    random_bytes(&mut buf[..len]);
    copy_to_user(a.0[0], &buf[..len])?;
    Ok(len as u64)
}
