//! `enosys`: numbers with no system call answer ENOSYS: the holes of the x86-64 table
//! (337..=423; 335 and 336 are uretprobe and uprobe since Linux 6.11), numbers past its end, negative numbers, and the table's names Linux
//! itself leaves unimplemented (afs_syscall, tuxcall, security, vserver, putpmsg,
//! getpmsg). The guest kernel also logs each once at info level; `tests/run.rs` checks
//! that with `loglevel=info`.
#![no_std]
#![no_main]

use vmrt::println;
use vmrt::sys::{call, Errno};

vmrt::entry!(main);

fn main() -> i32 {
    let mut bad = 0;
    for n in [
        337usize,
        400,
        423,
        470,
        500,
        511,
        1000,
        1 << 20,
        usize::MAX,
        181,
        182,
        183,
        184,
        185,
        236,
    ] {
        for _ in 0..2 {
            // SAFETY: no system call exists at these numbers.
            let r = unsafe { call(n, &[0; 6]) };
            if r != Err(Errno::ENOSYS) {
                bad += 1;
                println!("syscall {n}: {r:?}");
            }
        }
    }
    println!(
        "numbers without a system call give ENOSYS: {}",
        vmrt::io::yes_no(bad == 0)
    );
    i32::from(bad != 0)
}
