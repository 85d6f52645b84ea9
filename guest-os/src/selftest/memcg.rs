//! `selftest=memcg`: the memory controller's data model (`mm/memcontrol.rs`) on real
//! pages: hierarchical charges against memory.max, a limit written below the usage,
//! dying groups that live until their last charge goes, swap limits, events and
//! statistics. Every case prints `memcg <name>: ok|FAIL`; groups and pages are returned.

use alloc::vec::Vec;

use mm_core::gfp::Gfp;

use crate::kprintln;
use crate::mm::memcontrol::{self as memcg, ChargeError, MemcgEvent, MemcgStat, ROOT_MEM_CGROUP};
use crate::mm::page_alloc;
use crate::mm::Pfn;
use crate::syscall::errno::{EAGAIN, EBUSY, EEXIST, EINVAL};

fn check(name: &str, ok: bool, pass: &mut u32, total: &mut u32) {
    kprintln!("memcg {name}: {}", if ok { "ok" } else { "FAIL" });
    *total += 1;
    *pass += ok as u32;
}

/// Run the cases: (passed, total).
pub fn run() -> (u32, u32) {
    let (mut pass, mut total) = (0, 0);
    let mut c = |name: &str, ok: bool| check(name, ok, &mut pass, &mut total);

    let mut pages: Vec<Pfn> = Vec::new();
    for _ in 0..8 {
        match page_alloc::alloc_pages(Gfp::KERNEL, 0) {
            Some(p) => pages.push(p),
            None => break,
        }
    }
    c("pages", pages.len() == 8);
    if pages.len() < 8 {
        for p in pages {
            page_alloc::free_pages(p, 0);
        }
        return (pass, total);
    }

    // The tree.
    let a = memcg::create(ROOT_MEM_CGROUP, b"selftest-a").unwrap_or(0);
    c("create", a > ROOT_MEM_CGROUP && memcg::is_online(a));
    c(
        "create-exists",
        memcg::create(ROOT_MEM_CGROUP, b"selftest-a") == Err(EEXIST),
    );
    let b = memcg::create(a, b"b").unwrap_or(0);
    c(
        "parent-path",
        memcg::parent(b) == Some(a) && memcg::path(b) == b"/selftest-a/b",
    );
    let mut chain = Vec::new();
    let mut top = b;
    let mut depth_ok = true;
    for _ in 2..memcg::MEMCG_MAX_DEPTH {
        match memcg::create(top, b"d") {
            Ok(d) => {
                chain.push(d);
                top = d;
            }
            Err(_) => depth_ok = false,
        }
    }
    c(
        "max-depth",
        depth_ok && memcg::create(top, b"d") == Err(EAGAIN),
    );
    let mut anc = Vec::new();
    memcg::for_each_ancestor(top, |g| anc.push(g));
    c(
        "ancestors",
        anc.len() == memcg::MEMCG_MAX_DEPTH + 1 && anc.last() == Some(&ROOT_MEM_CGROUP),
    );
    for d in chain.iter().rev() {
        let _ = memcg::remove(*d);
    }
    c(
        "root-unremovable",
        memcg::remove(ROOT_MEM_CGROUP) == Err(EBUSY),
    );
    c(
        "root-no-max",
        memcg::try_set_max(ROOT_MEM_CGROUP, 1) == Err(EINVAL),
    );

    // Charges against memory.max, up the hierarchy.
    let _ = memcg::try_set_max(a, 4);
    let mut ok = (0..4).all(|i| memcg::charge(pages[i], b).is_ok());
    ok &= memcg::usage(a) == 4 && memcg::usage(b) == 4 && memcg::page_memcg(pages[0]) == b;
    c("charge", ok);
    c(
        "charge-over-max",
        memcg::charge(pages[4], b) == Err(ChargeError::OverMax(a))
            && memcg::page_memcg(pages[4]) == 0
            && memcg::usage(b) == 4,
    );
    let ev = memcg::events(a, false);
    let local = memcg::events(a, true);
    c(
        "event-max",
        ev[MemcgEvent::Max as usize] == 1 && local[MemcgEvent::Max as usize] == 1,
    );
    memcg::uncharge(pages[3]);
    memcg::uncharge(pages[3]);
    c(
        "uncharge-idempotent",
        memcg::usage(a) == 3 && memcg::page_memcg(pages[3]) == 0,
    );
    c("recharge", memcg::charge(pages[3], b).is_ok());
    c(
        "margin",
        memcg::margin(b) == 0 && memcg::margin(ROOT_MEM_CGROUP) > 0,
    );

    // memory.max below the usage: in force at once, handed to the counter later.
    let _ = memcg::try_set_max(a, 2);
    c("max-below-usage", memcg::max(a) == 2);
    memcg::uncharge(pages[3]);
    c(
        "max-pending-refuses",
        memcg::charge(pages[3], b) == Err(ChargeError::OverMax(a)),
    );
    memcg::uncharge(pages[2]);
    memcg::uncharge(pages[1]);
    c(
        "max-applied",
        memcg::usage(a) == 1 && memcg::max(a) == 2 && memcg::charge(pages[1], b).is_ok(),
    );
    c(
        "max-holds",
        memcg::charge(pages[2], a) == Err(ChargeError::OverMax(a)),
    );
    let _ = memcg::try_set_max(a, mm_core::page_counter::PAGE_COUNTER_MAX);

    // memory.high.
    let _ = memcg::set_high(b, 1);
    c("over-high", memcg::over_high(b) && !memcg::over_high(a));
    let _ = memcg::set_high(b, mm_core::page_counter::PAGE_COUNTER_MAX);

    // Statistics and events propagate up.
    memcg::stat_add(b, MemcgStat::PgscanKswapd, 5);
    memcg::stat_add(b, MemcgStat::Anon, 2);
    c(
        "stat-hierarchical",
        memcg::stat(a, MemcgStat::Pgscan) == 5
            && memcg::stat(a, MemcgStat::PgscanKswapd) == 5
            && memcg::stat(b, MemcgStat::Anon) == 2,
    );
    memcg::stat_add(b, MemcgStat::Anon, -2);
    memcg::count_event(b, MemcgEvent::OomKill);
    c(
        "event-hierarchical",
        memcg::events(a, false)[MemcgEvent::OomKill as usize] == 1
            && memcg::events(a, true)[MemcgEvent::OomKill as usize] == 0,
    );

    // Swap.
    let _ = memcg::try_set_swap_max(a, 3);
    let ok = memcg::charge_swap(b, 3).is_ok()
        && memcg::charge_swap(b, 1) == Err(ChargeError::OverMax(a))
        && memcg::swap_usage(a) == 3;
    let ev = memcg::events(a, false);
    c(
        "swap-max",
        ok && ev[MemcgEvent::SwapMax as usize] == 1 && ev[MemcgEvent::SwapFail as usize] == 1,
    );

    // Removal: EBUSY with a child; a removed group with charges is dying until they go.
    c("rmdir-with-child", memcg::remove(a) == Err(EBUSY));
    c(
        "rmdir-charged",
        memcg::remove(b).is_ok() && !memcg::is_online(b),
    );
    c("dying", memcg::descendants(a) == (0, 1));
    c(
        "dying-charges-stay",
        memcg::usage(a) == 2 && memcg::page_memcg(pages[0]) == b,
    );
    memcg::uncharge(pages[0]);
    memcg::uncharge(pages[1]);
    c("dying-swap-holds", memcg::descendants(a) == (0, 1));
    memcg::uncharge_swap(b, 3);
    c(
        "dying-freed",
        memcg::descendants(a) == (0, 0) && memcg::usage(a) == 0 && memcg::swap_usage(a) == 0,
    );
    c(
        "rmdir",
        memcg::remove(a).is_ok() && memcg::serial(a).is_none(),
    );

    for p in pages {
        memcg::uncharge(p);
        page_alloc::free_pages(p, 0);
    }
    (pass, total)
}
