//! The global allocator: size-class free lists on top of a bump region that
//! grows with `brk`.
//!
//! Every request is rounded up to a power-of-two *size class* (at least
//! [`MIN_BLOCK`] bytes, and at least its alignment). Freed blocks go onto
//! their class's singly linked free list (the link lives in the block
//! itself); allocation pops from that list when its head is suitably
//! aligned, else bumps a pointer through memory obtained from the
//! [`Source`] (the program break, for the global allocator). Memory is
//! never returned to the kernel, and blocks are not split or merged: simple,
//! deterministic, and enough for small test programs.
//!
//! The break is only touched on the first allocation, so programs that do
//! not allocate see the kernel's initial break untouched.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::sys::mm::{self, PAGE_SIZE};

/// Smallest block: room for the free-list link, and 16-byte alignment for
/// every block of that size.
pub const MIN_BLOCK: usize = 16;

/// log2 of [`MIN_BLOCK`].
const MIN_SHIFT: u32 = MIN_BLOCK.trailing_zeros();

/// Number of size classes (2^4 ..= 2^63 bytes).
const CLASSES: usize = (usize::BITS - MIN_SHIFT) as usize;

/// The global allocator grows the break by at least this much at a time, to
/// keep the number of `brk` calls low.
pub const BRK_CHUNK: usize = 64 * 1024;

/// Where a [`Heap`] gets fresh memory from.
pub trait Source {
    /// Returns a fresh region `[start, end)` of at least `min` bytes, or
    /// `None` if out of memory. If `start` equals the end of the previous
    /// region the heap treats the two as one.
    fn grow(&mut self, min: usize) -> Option<(usize, usize)>;
}

/// The size class index and block size for `layout`, or `None` if it is too
/// large to represent.
fn class_of(layout: Layout) -> Option<(usize, usize)> {
    let size = layout
        .size()
        .max(layout.align())
        .max(MIN_BLOCK)
        .checked_next_power_of_two()?;
    Some(((size.trailing_zeros() - MIN_SHIFT) as usize, size))
}

/// Rounds `addr` up to `align` (a power of two), or `None` on overflow.
fn align_up(addr: usize, align: usize) -> Option<usize> {
    Some(addr.checked_add(align - 1)? & !(align - 1))
}

/// The allocator state (not thread-safe by itself; see [`BrkAllocator`]).
pub struct Heap {
    /// Head of each class's free list (0 = empty).
    free: [usize; CLASSES],
    /// Next unused byte of the current region.
    cur: usize,
    /// End of the current region.
    end: usize,
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

impl Heap {
    /// An empty heap; memory comes from the `Source` on first use.
    pub const fn new() -> Heap {
        Heap {
            free: [0; CLASSES],
            cur: 0,
            end: 0,
        }
    }

    /// Allocates a block for `layout`; null if out of memory.
    ///
    /// # Safety
    /// The memory handed out by `source` must be valid, writable, and not
    /// used by anything else.
    pub unsafe fn alloc(&mut self, layout: Layout, source: &mut impl Source) -> *mut u8 {
        let Some((class, size)) = class_of(layout) else {
            return ptr::null_mut();
        };
        let head = self.free[class];
        if head != 0 && head.is_multiple_of(layout.align()) {
            // SAFETY: a free block's first word holds the next link.
            self.free[class] = *(head as *const usize);
            return head as *mut u8;
        }
        self.bump(size, layout.align().max(MIN_BLOCK), source)
    }

    /// Takes `size` bytes aligned to `align` from the bump region, growing
    /// it if needed.
    unsafe fn bump(&mut self, size: usize, align: usize, source: &mut impl Source) -> *mut u8 {
        if let Some(p) = self.try_bump(size, align) {
            return p;
        }
        // Enough for the block wherever the new region starts.
        let Some(min) = size.checked_add(align) else {
            return ptr::null_mut();
        };
        let Some((start, end)) = source.grow(min) else {
            return ptr::null_mut();
        };
        if start != self.end {
            // Not contiguous: abandon the rest of the old region.
            self.cur = start;
        }
        self.end = end;
        self.try_bump(size, align).unwrap_or(ptr::null_mut())
    }

    fn try_bump(&mut self, size: usize, align: usize) -> Option<*mut u8> {
        let start = align_up(self.cur, align)?;
        let next = start.checked_add(size)?;
        if start == 0 || next > self.end {
            return None;
        }
        self.cur = next;
        Some(start as *mut u8)
    }

    /// Returns a block to its class's free list.
    ///
    /// # Safety
    /// `ptr` must come from [`alloc`](Self::alloc) on this heap with the same
    /// `layout`, and not be used afterwards.
    pub unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        if let Some((class, _)) = class_of(layout) {
            // SAFETY: every block is at least MIN_BLOCK bytes and 16-aligned,
            // so it can hold the link.
            *(ptr as *mut usize) = self.free[class];
            self.free[class] = ptr as usize;
        }
    }

    /// Whether a block allocated with `old` can be reused unchanged for
    /// `new_size` bytes (same size class).
    pub fn fits_in_place(old: Layout, new_size: usize) -> bool {
        match Layout::from_size_align(new_size, old.align()) {
            Ok(new) => class_of(old).map(|c| c.0) == class_of(new).map(|c| c.0),
            Err(_) => false,
        }
    }
}

/// [`Source`] that moves the program break (`brk`) up by at least
/// [`BRK_CHUNK`], page-aligned.
pub struct BrkSource;

impl Source for BrkSource {
    fn grow(&mut self, min: usize) -> Option<(usize, usize)> {
        let start = mm::current_brk();
        let want = start.checked_add(min.max(BRK_CHUNK))?;
        let end = align_up(want, PAGE_SIZE)?;
        // SAFETY: growing the break only adds fresh memory.
        unsafe { mm::set_brk(end) }.ok()?;
        Some((start, end))
    }
}

/// The `#[global_allocator]`: a [`Heap`] fed by [`BrkSource`].
///
/// Programs are single-threaded, but the allocator must be `Sync`: a flag
/// guards the heap. If it is already taken (an allocation from a signal
/// handler that interrupted one in progress), the inner request fails
/// instead of deadlocking, which ends in the out-of-memory panic.
///
/// Programs that call `brk` themselves must not shrink the break below
/// memory the allocator handed out.
pub struct BrkAllocator {
    busy: AtomicBool,
    heap: UnsafeCell<Heap>,
}

// SAFETY: all access to `heap` happens while `busy` is held.
unsafe impl Sync for BrkAllocator {}

impl BrkAllocator {
    /// A fresh allocator (the break is untouched until the first allocation).
    pub const fn new() -> BrkAllocator {
        BrkAllocator {
            busy: AtomicBool::new(false),
            heap: UnsafeCell::new(Heap::new()),
        }
    }

    /// Runs `f` on the heap if it is not in use; else returns `None`.
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `busy` gives us exclusive access.
        let r = f(unsafe { &mut *self.heap.get() });
        self.busy.store(false, Ordering::Release);
        Some(r)
    }
}

impl Default for BrkAllocator {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl GlobalAlloc for BrkAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: BrkSource hands out fresh break memory only.
        self.with_heap(|h| unsafe { h.alloc(layout, &mut BrkSource) })
            .unwrap_or(ptr::null_mut())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // If the heap is busy (re-entrant free from a signal handler) the
        // block is leaked, which is safe.
        // SAFETY: the caller passes a block from `alloc` with its layout.
        let _ = self.with_heap(|h| unsafe { h.dealloc(ptr, layout) });
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Heap::fits_in_place(layout, new_size) {
            return ptr;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        let new = self.alloc(new_layout);
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes
            // and distinct.
            ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(not(test))]
#[global_allocator]
static GLOBAL: BrkAllocator = BrkAllocator::new();

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out consecutive pieces of a fixed arena.
    struct Arena {
        mem: Vec<u64>,
        used: usize,
        /// Leave a gap between regions, to test non-contiguous growth.
        gap: usize,
    }

    impl Arena {
        fn new(bytes: usize, gap: usize) -> Arena {
            Arena {
                mem: vec![0; bytes / 8],
                used: 0,
                gap,
            }
        }
        fn base(&self) -> usize {
            self.mem.as_ptr() as usize
        }
    }

    impl Source for Arena {
        fn grow(&mut self, min: usize) -> Option<(usize, usize)> {
            let start = self.used;
            let end = start + min.max(256);
            if end > self.mem.len() * 8 {
                return None;
            }
            self.used = end + self.gap;
            Some((self.base() + start, self.base() + end))
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("valid layout")
    }

    #[test]
    fn size_classes() {
        assert_eq!(class_of(layout(0, 1)), Some((0, 16)));
        assert_eq!(class_of(layout(16, 8)), Some((0, 16)));
        assert_eq!(class_of(layout(17, 1)), Some((1, 32)));
        assert_eq!(class_of(layout(1, 64)), Some((2, 64)));
        assert_eq!(class_of(layout(4096, 4096)), Some((8, 4096)));
        // The largest valid layouts still map to the last class.
        assert_eq!(
            class_of(layout((1 << 62) + 1, 1)),
            Some((CLASSES - 1, 1 << 63))
        );
        assert!(Heap::fits_in_place(layout(20, 8), 32));
        assert!(!Heap::fits_in_place(layout(20, 8), 33));
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_reused() {
        for gap in [0, 8, 40] {
            let mut arena = Arena::new(1 << 16, gap);
            let mut heap = Heap::new();
            let mut blocks = Vec::new();
            for (i, (size, align)) in [(1, 1), (24, 8), (100, 4), (7, 64), (300, 16), (33, 32)]
                .iter()
                .cycle()
                .take(60)
                .enumerate()
            {
                let l = layout(*size, *align);
                let p = unsafe { heap.alloc(l, &mut arena) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align.max(&16), 0);
                unsafe { ptr::write_bytes(p, i as u8, *size) };
                blocks.push((p, l, i as u8));
            }
            // No block was clobbered by another: all are disjoint.
            for &(p, l, v) in &blocks {
                let bytes = unsafe { core::slice::from_raw_parts(p, l.size()) };
                assert!(bytes.iter().all(|&b| b == v));
            }
            // A freed block is handed out again for the same class.
            let (p, l, _) = blocks[3];
            unsafe { heap.dealloc(p, l) };
            assert_eq!(unsafe { heap.alloc(l, &mut arena) }, p);
        }
    }

    #[test]
    fn misaligned_free_block_is_skipped() {
        let mut arena = Arena::new(1 << 12, 0);
        let mut heap = Heap::new();
        // A 64-byte block allocated with alignment 16 ...
        let a = unsafe { heap.alloc(layout(16, 16), &mut arena) };
        let b = unsafe { heap.alloc(layout(64, 16), &mut arena) };
        assert_eq!(a as usize + 16, b as usize);
        unsafe { heap.dealloc(b, layout(64, 16)) };
        // ... is not reused for a 64-aligned request unless it happens to be.
        let c = unsafe { heap.alloc(layout(64, 64), &mut arena) };
        assert_eq!(c as usize % 64, 0);
        assert_eq!(c == b, (b as usize).is_multiple_of(64));
    }

    #[test]
    fn out_of_memory_is_null() {
        let mut arena = Arena::new(1024, 0);
        let mut heap = Heap::new();
        assert!(unsafe { heap.alloc(layout(2048, 8), &mut arena) }.is_null());
        assert!(!unsafe { heap.alloc(layout(512, 8), &mut arena) }.is_null());
    }
}
