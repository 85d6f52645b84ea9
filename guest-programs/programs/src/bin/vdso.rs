//! `vdso`: finds the vDSO through the auxiliary vector (`AT_SYSINFO_EHDR`),
//! parses its ELF dynamic symbol table ([`vmrt::vdso`]), calls the four
//! x86-64 vDSO functions and compares them with the system calls they
//! stand in for. Only yes/no facts are printed, never times or addresses:
//!
//! * each of `__vdso_clock_gettime`, `__vdso_gettimeofday`, `__vdso_time`
//!   and `__vdso_getcpu` is found, through every hash table the image has
//!   (`DT_GNU_HASH`, `DT_HASH`), at the same address;
//! * `clock_gettime` works for the six clocks the vDSO serves and returns
//!   `-EINVAL` for an invalid clock id (via its system-call fallback);
//! * `CLOCK_MONOTONIC` never goes backwards over 1000 calls, and agrees in
//!   order with the system call (`syscall <= vdso <= syscall`);
//! * `gettimeofday`, `time` and `CLOCK_REALTIME` are within 1 s of the
//!   system calls' wall-clock time;
//! * `getcpu` reports a CPU in our affinity mask (`sched_getaffinity`).
//!
//! Exit status 0 if all hold (1 also when there is no vDSO).
#![no_std]
#![no_main]

use core::ptr;

use vmrt::io::{yes_no, Report};
use vmrt::println;
use vmrt::sys::proc::sched_getaffinity;
use vmrt::sys::time::{
    clock_gettime, gettimeofday, time, Timespec, Timeval, CLOCK_BOOTTIME, CLOCK_MONOTONIC,
    CLOCK_MONOTONIC_RAW, CLOCK_REALTIME,
};
use vmrt::sys::Errno;
use vmrt::vdso::{HashTable, Vdso};

vmrt::entry!(main);

/// `CLOCK_REALTIME_COARSE` / `CLOCK_MONOTONIC_COARSE`: tick-resolution
/// clocks served by the vDSO.
const CLOCK_REALTIME_COARSE: u32 = 5;
const CLOCK_MONOTONIC_COARSE: u32 = 6;

const NAMES: [&str; 4] = [
    "__vdso_clock_gettime",
    "__vdso_gettimeofday",
    "__vdso_time",
    "__vdso_getcpu",
];

fn main() -> i32 {
    let mut r = Report::new();
    let present = vmrt::env::auxv(vmrt::env::AT_SYSINFO_EHDR).is_some();
    r.check("AT_SYSINFO_EHDR present", present);
    let Some(vdso) = Vdso::from_auxv() else {
        r.check("vDSO ELF image parsed", false);
        return 1;
    };
    r.check("vDSO ELF image parsed", true);

    for name in NAMES {
        let addr = vdso.lookup(name);
        println!("found {name}: {}", yes_no(addr.is_some()));
        if addr.is_none() {
            r.fail();
        }
        let agree = [HashTable::Gnu, HashTable::Sysv]
            .into_iter()
            .filter(|&t| vdso.has(t))
            .all(|t| vdso.lookup_in(t, name) == addr);
        if !agree {
            r.check("  every hash table gives the same address", false);
        }
    }
    let (Some(cg), Some(gtod), Some(tm), Some(gc)) = (
        vdso.clock_gettime(),
        vdso.gettimeofday(),
        vdso.time(),
        vdso.getcpu(),
    ) else {
        return 1;
    };

    // SAFETY (all vDSO calls below): they are the kernel's functions with
    // the declared C signatures, given valid out-pointers (or NULL where
    // the interface allows it).
    let clocks = [
        CLOCK_REALTIME,
        CLOCK_MONOTONIC,
        CLOCK_MONOTONIC_RAW,
        CLOCK_REALTIME_COARSE,
        CLOCK_MONOTONIC_COARSE,
        CLOCK_BOOTTIME,
    ];
    let mut ts = Timespec::default();
    let all_ok = clocks
        .iter()
        .all(|&c| unsafe { cg(c as i32, &mut ts) } == 0 && ts.tv_nsec < 1_000_000_000);
    r.check(
        "clock_gettime works for REALTIME, MONOTONIC, MONOTONIC_RAW, the COARSE clocks and BOOTTIME",
        all_ok,
    );
    let invalid = unsafe { cg(12345, &mut ts) };
    r.check(
        "clock_gettime(invalid clock) returns -EINVAL",
        invalid == -Errno::EINVAL.0,
    );

    let mut prev = Timespec::default();
    let mut monotonic = true;
    for _ in 0..1000 {
        let mut now = Timespec::default();
        monotonic &= unsafe { cg(CLOCK_MONOTONIC as i32, &mut now) } == 0 && now >= prev;
        prev = now;
    }
    r.check("CLOCK_MONOTONIC non-decreasing over 1000 calls", monotonic);
    let mut ordered = true;
    for _ in 0..100 {
        let before = clock_gettime(CLOCK_MONOTONIC).unwrap_or_default();
        let mut mid = Timespec::default();
        unsafe { cg(CLOCK_MONOTONIC as i32, &mut mid) };
        let after = clock_gettime(CLOCK_MONOTONIC).unwrap_or_default();
        ordered &= before <= mid && mid <= after;
    }
    r.check(
        "vDSO CLOCK_MONOTONIC between two system-call readings (100 times)",
        ordered,
    );

    let sys_now = clock_gettime(CLOCK_REALTIME).unwrap_or_default().tv_sec;
    let mut rt = Timespec::default();
    unsafe { cg(CLOCK_REALTIME as i32, &mut rt) };
    r.check(
        "vDSO CLOCK_REALTIME within 1 s of the system call",
        (rt.tv_sec - sys_now).abs() <= 1,
    );
    let mut tv = Timeval::default();
    let ok = unsafe { gtod(&mut tv, ptr::null_mut()) } == 0;
    let sys_tv = gettimeofday().unwrap_or_default();
    r.check(
        "vDSO gettimeofday within 1 s of the system call",
        ok && (tv.tv_sec - sys_tv.tv_sec).abs() <= 1 && tv.tv_usec < 1_000_000,
    );
    let mut stored = 0i64;
    let t = unsafe { tm(&mut stored) };
    let sys_t = time().unwrap_or(0);
    r.check(
        "vDSO time within 1 s of the system call, and stored in *tloc",
        (t - sys_t).abs() <= 1 && stored == t,
    );

    let (mut cpu, mut node) = (u32::MAX, u32::MAX);
    let ok = unsafe { gc(&mut cpu, &mut node, ptr::null_mut()) } == 0;
    let allowed = sched_getaffinity().unwrap_or_default();
    r.check(
        "vDSO getcpu returns a CPU we may run on (in our affinity mask)",
        ok && allowed.contains(cpu),
    );
    r.exit_status()
}
