//! `args`: prints what the kernel put on the initial stack, in order:
//! argc and argv, the environment, and the machine-independent auxiliary
//! vector facts (page size, presence of AT_RANDOM, program header count and
//! size, and whether AT_ENTRY is `_start`). Never prints addresses.
//!
//! ```text
//! $ env -i A=1 B=2 ./args x y
//! argc = 3
//! argv[0] = ./args
//! argv[1] = x
//! argv[2] = y
//! envc = 2
//! envp[0] = A=1
//! envp[1] = B=2
//! AT_PAGESZ = 4096
//! AT_RANDOM present = yes
//! AT_PHNUM = 4
//! AT_PHENT = 56
//! AT_ENTRY == _start = yes
//! ```
#![no_std]
#![no_main]

use vmrt::env::{self, AT_ENTRY, AT_PAGESZ, AT_PHENT, AT_PHNUM, AT_RANDOM};
use vmrt::println;

vmrt::entry!(main);

/// Prints an optional auxv value, or `missing`.
fn print_aux(name: &str, ty: usize) {
    match env::auxv(ty) {
        Some(v) => println!("{name} = {v}"),
        None => println!("{name} = missing"),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn main() -> i32 {
    println!("argc = {}", env::argc());
    for (i, arg) in env::args().enumerate() {
        println!("argv[{i}] = {arg}");
    }
    println!("envc = {}", env::environ().count());
    for (i, var) in env::environ().enumerate() {
        println!("envp[{i}] = {var}");
    }
    print_aux("AT_PAGESZ", AT_PAGESZ);
    println!(
        "AT_RANDOM present = {}",
        yes_no(env::auxv(AT_RANDOM).is_some())
    );
    print_aux("AT_PHNUM", AT_PHNUM);
    print_aux("AT_PHENT", AT_PHENT);
    let entry_ok = env::auxv(AT_ENTRY) == Some(vmrt::start::entry_address());
    println!("AT_ENTRY == _start = {}", yes_no(entry_ok));
    0
}
