//! `selftest=mmbench`: guest instructions per allocator operation, read from the vmscope
//! port's retired-instruction counter (deterministic: the same on every run). Each figure is
//! the average over a loop, minus nothing: loop overhead is a few instructions and included.

use mm_core::gfp::Gfp;

use crate::drivers::pvport;
use crate::kprintln;
use crate::mm::{page_alloc, slab, vmalloc};

/// Iterations per measurement.
const ITERS: u64 = 1000;

fn measure(name: &str, iters: u64, mut op: impl FnMut()) {
    op(); // warm up: per-CPU lists, CPU slabs, page tables
    let Some(start) = pvport::icount() else {
        kprintln!("mmbench {name}: no instruction counter (not running on vmscope)");
        return;
    };
    for _ in 0..iters {
        op();
    }
    let end = pvport::icount().unwrap_or(start);
    kprintln!(
        "mmbench {name}: {} instructions per operation ({iters} iterations)",
        (end - start) / iters
    );
}

/// Print the figures.
pub fn run() {
    measure("alloc_pages(0)+free", ITERS, || {
        if let Some(p) = page_alloc::alloc_pages(Gfp::KERNEL, 0) {
            page_alloc::free_pages(p, 0);
        }
    });
    measure("alloc_pages(3)+free", ITERS, || {
        if let Some(p) = page_alloc::alloc_pages(Gfp::KERNEL, 3) {
            page_alloc::free_pages(p, 3);
        }
    });
    measure("kmalloc(64)+kfree", ITERS, || {
        if let Some(p) = slab::kmalloc(64, Gfp::KERNEL) {
            let _ = slab::kfree(p.as_ptr());
        }
    });
    measure("vmalloc(64K)+vfree", ITERS / 10, || {
        if let Some(v) = vmalloc::vmalloc(64 << 10, "mmbench") {
            let _ = vmalloc::vfree(v);
        }
    });
}
