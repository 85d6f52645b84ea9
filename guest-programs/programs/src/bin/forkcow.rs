//! `forkcow`: `fork` gives the child a copy-on-write copy of the address
//! space, except `MAP_SHARED` memory, which both processes keep sharing.
//!
//! 1. The parent fills 8 pages of private anonymous memory and 8 pages of
//!    `.bss` with a pattern, maps one `MAP_SHARED | MAP_ANONYMOUS` page, and
//!    forks.
//! 2. The parent then overwrites its page 7 of both buffers and tells the
//!    child through a pipe. The child (which waited for that) must still see
//!    the original page 7: the parent's write copied the page.
//! 3. The child overwrites the first half of both buffers, checks the rest,
//!    writes a message into the shared page and exits with status 7.
//! 4. The parent reaps it with `wait4`, prints its exit status, and checks
//!    its own buffers: first half unchanged (the child's writes copied those
//!    pages), page 7 holds its own write, and the shared page holds the
//!    child's message.
//!
//! The parent prints nothing between `fork` and `wait4`, so the output
//! order is deterministic. Exit status 0 if every check passed.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;
use core::slice;

use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::fs::{close, pipe2, read, write};
use vmrt::sys::mm::{
    mmap, mmap_anonymous, MAP_ANONYMOUS, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE,
};
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};
use vmrt::sys::SysResult;

vmrt::entry!(main);

const PAGES: usize = 8;
const LEN: usize = PAGES * PAGE_SIZE;
/// Exit status the child uses.
const CHILD_STATUS: i32 = 7;
/// What the child writes into the shared page.
const MESSAGE: &[u8] = b"hello from the child";

/// A `.bss` buffer (private, copy-on-write like the heap).
static mut BSS: [u8; LEN] = [0; LEN];

/// Original contents: 'A'-based pattern; the child writes 'B', the parent
/// 'C'. The period divides the page size, so any page-aligned slice of a
/// filled buffer holds the pattern from its own index 0.
fn pattern(tag: u8, i: usize) -> u8 {
    tag.wrapping_add((i % 16) as u8)
}

fn holds(buf: &[u8], tag: u8) -> bool {
    buf.iter().enumerate().all(|(i, &b)| b == pattern(tag, i))
}

fn fill(buf: &mut [u8], tag: u8) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(tag, i);
    }
}

fn must<T>(what: &str, res: SysResult<T>) -> T {
    res.unwrap_or_else(|e| {
        println!("{what}: failed with {e:?}");
        exit_group(1)
    })
}

/// The child's side: returns its exit status.
fn child(anon: &mut [u8], bss: &mut [u8], shared: &mut [u8], go: i32) -> i32 {
    let mut r = Report::new();
    // Wait until the parent has written its page 7.
    let mut byte = [0u8; 1];
    r.check(
        "child: got the parent's go-ahead",
        read(go, &mut byte) == Ok(1),
    );
    let last = (PAGES - 1) * PAGE_SIZE;
    r.check(
        "child: sees the original data, not the parent's later write",
        holds(anon, b'A') && holds(bss, b'A'),
    );
    fill(&mut anon[..LEN / 2], b'B');
    fill(&mut bss[..LEN / 2], b'B');
    r.check(
        "child: first half now holds its own writes",
        holds(&anon[..LEN / 2], b'B') && holds(&bss[..LEN / 2], b'B'),
    );
    r.check(
        "child: page 7 still original",
        holds(&anon[last..], b'A') && holds(&bss[last..], b'A'),
    );
    shared[..MESSAGE.len()].copy_from_slice(MESSAGE);
    println!(
        "child: wrote {} bytes to the shared page, exiting with {CHILD_STATUS}",
        MESSAGE.len()
    );
    if r.failures() == 0 {
        CHILD_STATUS
    } else {
        1
    }
}

fn main() -> i32 {
    let mut r = Report::new();
    let anon_ptr = must("mmap private", mmap_anonymous(LEN));
    // SAFETY: a fresh private mapping of LEN bytes, used only through this slice.
    let anon = unsafe { slice::from_raw_parts_mut(anon_ptr, LEN) };
    // SAFETY: the only reference to BSS in this single-threaded program.
    let bss = unsafe { &mut *addr_of_mut!(BSS) };
    let shared_ptr = must("mmap shared", unsafe {
        mmap(
            0,
            PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS,
            -1,
            0,
        )
    });
    // SAFETY: a fresh shared mapping of one page, used only through this slice.
    let shared = unsafe { slice::from_raw_parts_mut(shared_ptr, PAGE_SIZE) };
    fill(anon, b'A');
    fill(bss, b'A');
    println!("parent: filled 8 private anonymous pages and 8 .bss pages");
    let (go_r, go_w) = must("pipe2", pipe2(0));

    let pid = match must("fork", fork()) {
        Fork::Child => {
            let _ = close(go_w);
            exit_group(child(anon, bss, shared, go_r))
        }
        Fork::Parent(pid) => pid,
    };
    let _ = close(go_r);
    // Write our page 7 while the child is still waiting to look at it.
    let last = (PAGES - 1) * PAGE_SIZE;
    fill(&mut anon[last..], b'C');
    fill(&mut bss[last..], b'C');
    must("write go-ahead", write(go_w, b"g"));
    let _ = close(go_w);

    let (reaped, status) = must("wait4", wait4(pid, 0));
    r.check("parent: wait4 returned the child's pid", reaped == pid);
    println!(
        "parent: child exited = {}, status = {}",
        vmrt::io::yes_no(status.exited()),
        status.exit_status()
    );
    if !status.exited() || status.exit_status() != CHILD_STATUS {
        r.fail();
    }
    r.check(
        "parent: first half unchanged by the child's writes",
        holds(&anon[..LEN / 2], b'A') && holds(&bss[..LEN / 2], b'A'),
    );
    r.check(
        "parent: pages 4-6 unchanged",
        holds(&anon[LEN / 2..last], b'A') && holds(&bss[LEN / 2..last], b'A'),
    );
    r.check(
        "parent: page 7 holds its own write",
        holds(&anon[last..], b'C') && holds(&bss[last..], b'C'),
    );
    let msg = &shared[..MESSAGE.len()];
    println!(
        "parent: shared page says \"{}\"",
        core::str::from_utf8(msg).unwrap_or("<not UTF-8>")
    );
    r.check(
        "parent: rest of the shared page still zero",
        shared[MESSAGE.len()..].iter().all(|&b| b == 0),
    );
    if msg != MESSAGE {
        r.fail();
    }
    r.exit_status()
}
