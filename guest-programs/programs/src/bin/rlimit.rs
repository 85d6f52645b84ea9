//! `rlimit`: RLIMIT_NPROC makes fork fail with EAGAIN once the user has that many
//! processes, and RLIMIT_NOFILE applies to descriptors received over fork. (Linux exempts
//! root from RLIMIT_NPROC, so the fork check is for the guest kernel, where the limit is
//! honoured for everyone; `tests/run.rs` runs this only under vmscope.)
#![no_std]
#![no_main]

use vmrt::println;
use vmrt::sys::call;
use vmrt::sys::nr::*;
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};

vmrt::entry!(main);

const RLIMIT_NPROC: usize = 6;

fn main() -> i32 {
    let lim = [1u64, 1];
    // SAFETY: a valid struct rlimit.
    let set = unsafe { call(SYS_setrlimit, &[RLIMIT_NPROC, lim.as_ptr() as usize]) };
    println!("setrlimit NPROC 1: {:?}", set);
    match fork() {
        Ok(Fork::Child) => exit_group(0),
        Ok(Fork::Parent(pid)) => {
            let _ = wait4(pid, 0);
            println!("fork at the limit: succeeded");
        }
        Err(e) => println!("fork at the limit: {e:?}"),
    }
    let lim = [2u64, 2];
    // SAFETY: as above.
    let _ = unsafe { call(SYS_setrlimit, &[RLIMIT_NPROC, lim.as_ptr() as usize]) };
    match fork() {
        Ok(Fork::Child) => {
            // Two processes now: the child cannot fork again.
            let r = fork();
            exit_group(match r {
                Err(_) => 0,
                Ok(Fork::Child) => exit_group(3),
                Ok(Fork::Parent(_)) => 1,
            });
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait4(pid, 0).map(|(_, s)| s.exit_status());
            println!(
                "below the limit fork works; the child at it cannot: {}",
                st == Ok(0)
            );
        }
        Err(e) => println!("fork below the limit: {e:?}"),
    }
    0
}
