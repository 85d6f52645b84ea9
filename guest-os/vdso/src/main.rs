//! The vDSO: the code of `linux-vdso.so.1`, which the guest kernel maps into every process
//! (`AT_SYSINFO_EHDR`) so that reading a clock needs no system call.
//!
//! Exported with the version `LINUX_2.6`, as Linux x86-64 does: `__vdso_clock_gettime`,
//! `__vdso_gettimeofday`, `__vdso_time` and `__vdso_getcpu`, plus weak aliases without the
//! prefix. The image is linked as a shared object by `build.rs` with `linker/vdso.ld`.
//!
//! The clocks come from the [vvar] page, which the kernel maps one page below the image and
//! updates (`guest-os/src/proc/vdso.rs`): time is the TSC scaled by the page's
//! `mult >> shift`; the coarse clocks read `coarse_ns`, which the scheduler tick refreshes.
//! Readers follow the page's sequence count (odd while the kernel writes). Clock ids the
//! vDSO does not serve go to the real system call, as on Linux.
//!
//! Constraints of a vDSO: no writable data, no relocations (the image is shared and mapped
//! as it is), nothing outside the image to call. Everything here is position-independent
//! code reading the vvar page RIP-relatively (see [`vvar`]).

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::ptr::{addr_of, read_volatile};
use core::sync::atomic::{compiler_fence, Ordering};

/// The vvar page, as the kernel writes it (`guest-os/src/proc/vdso.rs`, module `vvar`).
#[repr(C)]
struct Vvar {
    /// Odd while the kernel updates the page; bumped twice per update.
    seq: u64,
    /// Nanoseconds = TSC * mult >> shift.
    mult: u64,
    shift: u64,
    /// The coarse clocks' time, refreshed by the scheduler tick.
    coarse_ns: u64,
    /// CLOCK_REALTIME minus the monotonic clock (set at boot from the RTC, and by
    /// clock_settime).
    realtime_offset_ns: u64,
}

/// `struct timespec`.
#[repr(C)]
pub struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// `struct timeval`.
#[repr(C)]
pub struct Timeval {
    tv_sec: i64,
    tv_usec: i64,
}

/// `struct timezone` (always zero: the machine keeps UTC).
#[repr(C)]
pub struct Timezone {
    tz_minuteswest: i32,
    tz_dsttime: i32,
}

const NSEC_PER_SEC: u64 = 1_000_000_000;
const NSEC_PER_USEC: u64 = 1_000;

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_MONOTONIC_RAW: i32 = 4;
const CLOCK_REALTIME_COARSE: i32 = 5;
const CLOCK_MONOTONIC_COARSE: i32 = 6;
const CLOCK_BOOTTIME: i32 = 7;
const CLOCK_TAI: i32 = 11;

const NR_CLOCK_GETTIME: u64 = 228;

/// The vvar page. `vvar_page` is defined by the linker script at a fixed distance below the
/// image, so a RIP-relative LEA reaches it wherever the image is mapped, with no relocation.
/// (A Rust `extern static` would be read through the GOT in position-independent code, and a
/// GOT entry would need a dynamic relocation.)
#[inline(always)]
fn vvar() -> *const Vvar {
    let p: *const Vvar;
    // SAFETY: computes an address only.
    unsafe {
        asm!(
            "lea {p}, [rip + vvar_page]",
            p = out(reg) p,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    p
}

/// Reads the vvar page consistently: `f` reads fields (with [`load`]); the read is retried
/// while the kernel is writing the page, or when the sequence count moved meanwhile.
#[inline(always)]
fn read_vvar<T>(f: impl Fn(*const Vvar) -> T) -> T {
    let v = vvar();
    loop {
        // SAFETY: the kernel maps the vvar page readable in every process that has this
        // image, at the address vvar() names.
        let start = unsafe { read_volatile(addr_of!((*v).seq)) };
        if start & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        compiler_fence(Ordering::Acquire);
        let value = f(v);
        compiler_fence(Ordering::Acquire);
        // SAFETY: as above.
        if unsafe { read_volatile(addr_of!((*v).seq)) } == start {
            return value;
        }
    }
}

/// Volatile load of a vvar field: the kernel writes the page behind the compiler's back, so
/// the page is only ever touched through raw pointers, never references.
#[inline(always)]
fn load(field: *const u64) -> u64 {
    // SAFETY: `field` points into the mapped vvar page (see `vvar`).
    unsafe { read_volatile(field) }
}

/// Nanoseconds on the fine clocks: the TSC scaled by the vvar's mult and shift.
#[inline(always)]
fn fine_ns() -> u64 {
    read_vvar(|v| {
        // SAFETY: RDTSC has no side effects (CR4.TSD is clear for user mode).
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        // SAFETY (field addresses): `v` is the vvar page.
        let (mult, shift) = unsafe { (load(addr_of!((*v).mult)), load(addr_of!((*v).shift))) };
        let product = u128::from(tsc) * u128::from(mult);
        (product >> (shift & 63)) as u64
    })
}

/// CLOCK_REALTIME's offset from the monotonic clock.
#[inline(always)]
fn realtime_offset_ns() -> u64 {
    // SAFETY (field address): `v` is the vvar page.
    read_vvar(|v| load(unsafe { addr_of!((*v).realtime_offset_ns) }))
}

/// Nanoseconds on the fine REALTIME clock (time and offset read under one sequence).
#[inline(always)]
fn fine_realtime_ns() -> u64 {
    read_vvar(|v| {
        // SAFETY: as in fine_ns.
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        // SAFETY (field addresses): `v` is the vvar page.
        let (mult, shift, off) = unsafe {
            (
                load(addr_of!((*v).mult)),
                load(addr_of!((*v).shift)),
                load(addr_of!((*v).realtime_offset_ns)),
            )
        };
        let product = u128::from(tsc) * u128::from(mult);
        ((product >> (shift & 63)) as u64).wrapping_add(off)
    })
}

/// Nanoseconds on the coarse clocks.
#[inline(always)]
fn coarse_ns() -> u64 {
    // SAFETY (field address): `v` is the vvar page.
    read_vvar(|v| load(unsafe { addr_of!((*v).coarse_ns) }))
}

/// The real `clock_gettime` system call, for the clocks the vDSO does not serve.
///
/// # Safety
/// `ts` is passed to the kernel, which checks it.
unsafe fn sys_clock_gettime(clock: i32, ts: *mut Timespec) -> i32 {
    let ret: i64;
    asm!(
        "syscall",
        inlateout("rax") NR_CLOCK_GETTIME as i64 => ret,
        in("rdi") clock as i64,
        in("rsi") ts,
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack)
    );
    ret as i32
}

/// `int clock_gettime(clockid_t clock, struct timespec *ts)`.
///
/// # Safety
/// `ts` must be writable for the served clocks (like the C function, it is not checked).
#[no_mangle]
pub unsafe extern "C" fn __vdso_clock_gettime(clock: i32, ts: *mut Timespec) -> i32 {
    let ns = match clock {
        // TAI is REALTIME while no one set the TAI offset (adjtimex), as on Linux.
        CLOCK_REALTIME | CLOCK_TAI => fine_realtime_ns(),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_BOOTTIME => fine_ns(),
        CLOCK_REALTIME_COARSE => coarse_ns().wrapping_add(realtime_offset_ns()),
        CLOCK_MONOTONIC_COARSE => coarse_ns(),
        // CPU-time clocks, the alarm clocks, invalid ids: the kernel decides.
        _ => return sys_clock_gettime(clock, ts),
    };
    ts.write(Timespec {
        tv_sec: (ns / NSEC_PER_SEC) as i64,
        tv_nsec: (ns % NSEC_PER_SEC) as i64,
    });
    0
}

/// `int gettimeofday(struct timeval *tv, struct timezone *tz)`; either may be NULL.
///
/// # Safety
/// Non-null pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn __vdso_gettimeofday(tv: *mut Timeval, tz: *mut Timezone) -> i32 {
    if !tv.is_null() {
        let ns = fine_realtime_ns();
        tv.write(Timeval {
            tv_sec: (ns / NSEC_PER_SEC) as i64,
            tv_usec: ((ns % NSEC_PER_SEC) / NSEC_PER_USEC) as i64,
        });
    }
    if !tz.is_null() {
        tz.write(Timezone {
            tz_minuteswest: 0,
            tz_dsttime: 0,
        });
    }
    0
}

/// `time_t time(time_t *tloc)`; also stores the result in `*tloc` unless it is NULL.
///
/// # Safety
/// A non-null `tloc` must be writable.
#[no_mangle]
pub unsafe extern "C" fn __vdso_time(tloc: *mut i64) -> i64 {
    let secs = (fine_realtime_ns() / NSEC_PER_SEC) as i64;
    if !tloc.is_null() {
        tloc.write(secs);
    }
    secs
}

/// `int getcpu(unsigned *cpu, unsigned *node, void *cache)`: the machine has one CPU and
/// one node (numa=fake splits memory, not CPUs), so both are 0. `cache` is unused, as on
/// Linux since 2.6.24.
///
/// # Safety
/// Non-null pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn __vdso_getcpu(cpu: *mut u32, node: *mut u32, _cache: *mut u8) -> i32 {
    if !cpu.is_null() {
        cpu.write(0);
    }
    if !node.is_null() {
        node.write(0);
    }
    0
}

// The unprefixed names, as weak aliases of the __vdso_ functions (same address, type and
// size), and the ELF note that tells a loader which kernel version this vDSO belongs to
// (name "Linux", type 0, the version as 0x00MMmmpp: 6.1.0, the release uname reports).
global_asm!(
    ".weak clock_gettime",
    ".type clock_gettime, @function",
    ".set clock_gettime, __vdso_clock_gettime",
    ".weak gettimeofday",
    ".type gettimeofday, @function",
    ".set gettimeofday, __vdso_gettimeofday",
    ".weak time",
    ".type time, @function",
    ".set time, __vdso_time",
    ".weak getcpu",
    ".type getcpu, @function",
    ".set getcpu, __vdso_getcpu",
    ".pushsection .note.Linux, \"a\", @note",
    ".balign 4",
    ".long 6", // n_namesz: "Linux\0"
    ".long 4", // n_descsz
    ".long 0", // n_type
    ".asciz \"Linux\"",
    ".balign 4",
    ".long 0x060100",
    ".popsection",
);

/// Nothing in the vDSO can panic (no indexing, no checked arithmetic in release builds);
/// if something ever did, trap rather than pull the formatting machinery into the image.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: UD2 raises #UD; the kernel turns it into SIGILL.
    unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
}
