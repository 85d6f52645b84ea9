//! The file-descriptor table of a process (Linux's `files_struct` with its `fdtable`): slots
//! from 0 up, each empty or holding a reference to an open-file description, and the
//! close-on-exec bitmap beside them.
//!
//! The table is generic over the description type `F` (the kernel's `Arc<File>`), so the
//! descriptor rules are tested on the host without the rest of the kernel: the lowest free
//! descriptor at or above a start (`open`, `dup`, `F_DUPFD`), a per-process limit
//! (`RLIMIT_NOFILE`, `EMFILE`), `dup2`/`dup3` replacing a slot, close-on-exec, and fork's
//! copy, which clones the references (the descriptions, with their offsets, are shared).
//!
//! Growth is fallible: a table that cannot grow answers `ENOMEM` rather than aborting, and
//! nothing is ever allocated in proportion to a user-given number beyond the limit.
//! Removed descriptions are handed back to the caller, who drops them outside its lock
//! (closing a pipe end wakes its peers).

use crate::Errno;
use alloc::vec::Vec;

/// Bits per word of the close-on-exec bitmap.
const BITS: usize = 64;

/// A process's descriptors.
#[derive(Debug)]
pub struct FdTable<F> {
    fd: Vec<Option<F>>,
    /// Bit `n` set: descriptor `n` is closed by execve (`FD_CLOEXEC`).
    close_on_exec: Vec<u64>,
}

impl<F> Default for FdTable<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F> FdTable<F> {
    /// An empty table.
    pub const fn new() -> Self {
        FdTable {
            fd: Vec::new(),
            close_on_exec: Vec::new(),
        }
    }

    /// One more than the highest slot the table has room for (`/proc/PID/status`'s FDSize
    /// rounds it).
    pub fn max_fds(&self) -> usize {
        self.fd.len()
    }

    /// Open descriptors.
    pub fn count(&self) -> usize {
        self.fd.iter().filter(|f| f.is_some()).count()
    }

    /// The description behind `fd` (any number: negative ones arrive as huge values).
    pub fn get(&self, fd: u64) -> Option<&F> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.fd.get(i))
            .and_then(|f| f.as_ref())
    }

    /// Whether `fd` is closed by execve.
    pub fn close_on_exec_of(&self, fd: usize) -> bool {
        self.close_on_exec
            .get(fd / BITS)
            .is_some_and(|w| w & (1 << (fd % BITS)) != 0)
    }

    /// Mark `fd` close-on-exec or not (the slot must exist).
    pub fn set_close_on_exec(&mut self, fd: usize, on: bool) {
        if let Some(w) = self.close_on_exec.get_mut(fd / BITS) {
            if on {
                *w |= 1 << (fd % BITS);
            } else {
                *w &= !(1 << (fd % BITS));
            }
        }
    }

    /// Make room for slot `fd` (`expand_files`), or ENOMEM.
    fn expand(&mut self, fd: usize) -> Result<(), Errno> {
        if fd < self.fd.len() {
            return Ok(());
        }
        // Grow by doubling (at least 64 slots), as Linux's `expand_fdtable` rounds up.
        let want = (fd + 1).next_power_of_two().max(BITS);
        self.fd
            .try_reserve_exact(want - self.fd.len())
            .map_err(|_| Errno::ENOMEM)?;
        let words = want.div_ceil(BITS);
        self.close_on_exec
            .try_reserve_exact(words.saturating_sub(self.close_on_exec.len()))
            .map_err(|_| Errno::ENOMEM)?;
        self.fd.resize_with(want, || None);
        self.close_on_exec.resize(words, 0);
        Ok(())
    }

    /// Put `file` in the lowest free slot at or above `start` and below `limit`
    /// (`alloc_fd`): `EMFILE` when there is none, `ENOMEM` when the table cannot grow. The
    /// file is handed back with the error.
    pub fn alloc(
        &mut self,
        start: usize,
        limit: usize,
        file: F,
        cloexec: bool,
    ) -> Result<usize, (Errno, F)> {
        let free = self
            .fd
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, f)| f.is_none())
            .map(|(i, _)| i)
            .unwrap_or(self.fd.len().max(start));
        if free >= limit {
            return Err((Errno::EMFILE, file));
        }
        if let Err(e) = self.expand(free) {
            return Err((e, file));
        }
        self.fd[free] = Some(file);
        self.set_close_on_exec(free, cloexec);
        Ok(free)
    }

    /// Put `file` at `fd`, closing what was there (`dup2`, `dup3`): returns the replaced
    /// description, or the file back with `EBADF` (at or above `limit`) or `ENOMEM`.
    pub fn replace(
        &mut self,
        fd: usize,
        limit: usize,
        file: F,
        cloexec: bool,
    ) -> Result<Option<F>, (Errno, F)> {
        if fd >= limit {
            return Err((Errno::EBADF, file));
        }
        if let Err(e) = self.expand(fd) {
            return Err((e, file));
        }
        let old = self.fd[fd].replace(file);
        self.set_close_on_exec(fd, cloexec);
        Ok(old)
    }

    /// Empty slot `fd` (`close`): the description it held, or `EBADF`.
    pub fn close(&mut self, fd: u64) -> Result<F, Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        let f = self
            .fd
            .get_mut(i)
            .and_then(|f| f.take())
            .ok_or(Errno::EBADF)?;
        self.set_close_on_exec(i, false);
        Ok(f)
    }

    /// Close every close-on-exec descriptor (`do_close_on_exec`, at execve); returns them.
    pub fn close_on_exec(&mut self) -> Vec<F> {
        let mut closed = Vec::new();
        for (w, word) in self.close_on_exec.iter_mut().enumerate() {
            let mut bits = core::mem::take(word);
            while bits != 0 {
                let i = w * BITS + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(f) = self.fd.get_mut(i).and_then(|f| f.take()) {
                    // At worst the description is dropped here, under the caller's lock.
                    if closed.try_reserve(1).is_ok() {
                        closed.push(f);
                    }
                }
            }
        }
        closed
    }

    /// Close everything (exit); returns the descriptions.
    pub fn clear(&mut self) -> Vec<Option<F>> {
        self.close_on_exec.clear();
        core::mem::take(&mut self.fd)
    }
}

impl<F: Clone> FdTable<F> {
    /// fork's copy (`dup_fd`): the same descriptions in the same slots, the same
    /// close-on-exec bits; `ENOMEM` if the copy cannot be allocated.
    pub fn try_clone(&self) -> Result<Self, Errno> {
        let mut fd = Vec::new();
        fd.try_reserve_exact(self.fd.len())
            .map_err(|_| Errno::ENOMEM)?;
        fd.extend(self.fd.iter().cloned());
        let mut close_on_exec = Vec::new();
        close_on_exec
            .try_reserve_exact(self.close_on_exec.len())
            .map_err(|_| Errno::ENOMEM)?;
        close_on_exec.extend_from_slice(&self.close_on_exec);
        Ok(FdTable { fd, close_on_exec })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use proptest::prelude::*;

    #[test]
    fn lowest_free_slot_and_limit() {
        let mut t = FdTable::new();
        assert_eq!(t.alloc(0, 3, 'a', false), Ok(0));
        assert_eq!(t.alloc(0, 3, 'b', false), Ok(1));
        assert_eq!(t.alloc(0, 3, 'c', true), Ok(2));
        assert_eq!(t.alloc(0, 3, 'd', false), Err((Errno::EMFILE, 'd')));
        assert_eq!(t.close(1), Ok('b'));
        assert_eq!(t.close(1), Err(Errno::EBADF));
        assert_eq!(t.close(u64::MAX), Err(Errno::EBADF));
        assert_eq!(t.alloc(0, 3, 'e', false), Ok(1));
        // F_DUPFD: at or above the start.
        assert_eq!(t.alloc(10, 1024, 'f', false), Ok(10));
        assert_eq!(t.alloc(10, 11, 'g', false), Err((Errno::EMFILE, 'g')));
        assert_eq!(t.get(10), Some(&'f'));
        assert_eq!(t.get(9), None);
        assert_eq!(t.get(-1i64 as u64), None);
        assert!(t.close_on_exec_of(2));
        assert!(!t.close_on_exec_of(1));
    }

    #[test]
    fn replace_returns_the_old_description() {
        let mut t = FdTable::new();
        t.alloc(0, 8, 1, false).unwrap();
        assert_eq!(t.replace(5, 8, 2, true), Ok(None));
        assert_eq!(t.replace(5, 8, 3, false), Ok(Some(2)));
        assert!(!t.close_on_exec_of(5));
        assert_eq!(t.replace(8, 8, 4, false), Err((Errno::EBADF, 4)));
    }

    #[test]
    fn exec_closes_only_cloexec_and_fork_shares() {
        let mut t = FdTable::new();
        let a = Rc::new(());
        for i in 0..100 {
            t.alloc(0, 1024, a.clone(), i % 3 == 0).unwrap();
        }
        let child = t.try_clone().unwrap();
        assert_eq!(Rc::strong_count(&a), 201);
        let closed = t.close_on_exec();
        assert_eq!(closed.len(), 34);
        drop(closed);
        assert_eq!(t.count(), 66);
        assert!((0..100).all(|i| !t.close_on_exec_of(i)));
        assert_eq!(child.count(), 100);
        assert!(child.close_on_exec_of(99));
        drop(child);
        drop(t);
        assert_eq!(Rc::strong_count(&a), 1);
    }

    proptest! {
        /// Against a model: a map from descriptor to value and a close-on-exec set.
        #[test]
        fn behaves_as_the_model(ops in proptest::collection::vec((0u8..5, 0usize..80, any::<bool>()), 0..200)) {
            use std::collections::{BTreeMap, BTreeSet};
            const LIMIT: usize = 64;
            let mut t = FdTable::new();
            let mut m: BTreeMap<usize, u32> = BTreeMap::new();
            let mut ce: BTreeSet<usize> = BTreeSet::new();
            for (n, (op, fd, flag)) in ops.into_iter().enumerate() {
                let v = n as u32;
                match op {
                    0 => {
                        let want = (fd..LIMIT).find(|i| !m.contains_key(i));
                        match (t.alloc(fd, LIMIT, v, flag), want) {
                            (Ok(got), Some(w)) => { prop_assert_eq!(got, w); m.insert(w, v); if flag { ce.insert(w); } else { ce.remove(&w); } }
                            (Err((e, _)), None) => prop_assert_eq!(e, Errno::EMFILE),
                            (r, w) => prop_assert!(false, "{:?} vs {:?}", r, w),
                        }
                    }
                    1 => {
                        let r = t.close(fd as u64);
                        prop_assert_eq!(r.ok(), m.remove(&fd));
                        ce.remove(&fd);
                    }
                    2 => {
                        let r = t.replace(fd, LIMIT, v, flag);
                        if fd >= LIMIT {
                            prop_assert!(r.is_err());
                        } else {
                            prop_assert_eq!(r.ok().flatten(), m.insert(fd, v));
                            if flag { ce.insert(fd); } else { ce.remove(&fd); }
                        }
                    }
                    3 => {
                        let mut closed = t.close_on_exec();
                        closed.sort();
                        let mut want: Vec<u32> = ce.iter().filter_map(|i| m.remove(i)).collect();
                        want.sort();
                        prop_assert_eq!(closed, want);
                        ce.clear();
                    }
                    _ => {
                        let c = t.try_clone().unwrap();
                        t = c;
                    }
                }
                for i in 0..LIMIT {
                    prop_assert_eq!(t.get(i as u64), m.get(&i));
                    prop_assert_eq!(t.close_on_exec_of(i), ce.contains(&i) && m.contains_key(&i));
                }
            }
        }
    }
}
