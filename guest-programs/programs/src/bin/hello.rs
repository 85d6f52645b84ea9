//! `hello`: prints exactly `Hello, world!\n` and exits 0.
#![no_std]
#![no_main]

use vmrt::println;

vmrt::entry!(main);

fn main() -> i32 {
    println!("Hello, world!");
    0
}
