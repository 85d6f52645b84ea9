//! The initial process stack (System V x86-64 psABI §3.4.1, Linux `create_elf_tables`):
//! from the top down, the strings (execfn, argv, envp), the 16 AT_RANDOM bytes and the
//! platform string, then, 16-byte aligned at `rsp`: argc, argv pointers, NULL, envp
//! pointers, NULL, and the auxiliary vector of (type, value) pairs ending with AT_NULL.
//!
//! [`Layout`] computes where everything goes from the sizes alone, so exec can copy the
//! strings straight from the old process into the new stack (as Linux's `copy_strings`
//! does) instead of building the whole image, up to a quarter of the stack limit, in
//! kernel memory. [`auxv`] gives the auxiliary vector.

/// Auxiliary vector types (`include/uapi/linux/auxvec.h`).
pub mod at {
    pub const NULL: u64 = 0;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const UID: u64 = 11;
    pub const EUID: u64 = 12;
    pub const GID: u64 = 13;
    pub const EGID: u64 = 14;
    pub const PLATFORM: u64 = 15;
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const RANDOM: u64 = 25;
    pub const HWCAP2: u64 = 26;
    pub const EXECFN: u64 = 31;
    pub const SYSINFO_EHDR: u64 = 33;
}

/// What the loader knows about the new image, for the auxiliary vector.
pub struct AuxInfo {
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    pub entry: u64,
    /// Where the program interpreter (PT_INTERP) was loaded; 0 without one.
    pub base: u64,
    pub hwcap: u64,
    pub sysinfo_ehdr: Option<u64>,
}

/// `AT_RANDOM` bytes: fixed, because runs must be reproducible (Linux draws them from the
/// entropy pool; programs use them for stack canaries and hash seeds).
pub const AT_RANDOM_BYTES: [u8; 16] = *b"vmscope-at-rand!";

/// Bytes of the fixed strings: the platform name with its NUL, then the AT_RANDOM bytes.
const PLATFORM: &[u8] = b"x86_64\0";

/// Where the initial stack's parts go, from the top down.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Start of the strings block: execfn, argv strings, envp strings, platform, random.
    pub strings_start: u64,
    /// The initial stack pointer: argc, then the pointer arrays and auxv.
    pub rsp: u64,
    /// Number of 8-byte words from `rsp` (argc, argv, NULL, envp, NULL, auxv).
    pub words: usize,
}

impl Layout {
    /// Lay out a stack below `top` (exclusive, 16-byte aligned) for an `execfn_len`-byte
    /// path, `argc` + `envc` strings of `strings_len` bytes (NULs included) and
    /// `auxv_pairs` auxiliary entries (AT_NULL included). None if it does not fit below
    /// `top` at all.
    pub fn new(
        top: u64,
        execfn_len: usize,
        argc: usize,
        envc: usize,
        strings_len: usize,
        auxv_pairs: usize,
    ) -> Option<Layout> {
        let strings = (execfn_len + 1)
            .checked_add(strings_len)?
            .checked_add(PLATFORM.len() + AT_RANDOM_BYTES.len())? as u64;
        // The strings block ends 8 bytes below top (a NULL word at the very top, as Linux).
        let strings_start = top.checked_sub(8 + strings)? & !0xf;
        let words = 1 + argc + 1 + envc + 1 + 2 * auxv_pairs;
        let rsp = strings_start.checked_sub(words as u64 * 8)? & !0xf;
        Some(Layout {
            strings_start,
            rsp,
            words,
        })
    }

    /// Address of the execfn string (the first string).
    pub fn execfn(&self) -> u64 {
        self.strings_start
    }

    /// Address of the platform string, given the bytes of execfn, argv and envp strings
    /// (NULs included).
    pub fn platform(&self, strings_before: usize) -> u64 {
        self.strings_start + strings_before as u64
    }

    /// Address of the AT_RANDOM bytes.
    pub fn random(&self, strings_before: usize) -> u64 {
        self.platform(strings_before) + PLATFORM.len() as u64
    }

    /// Bytes from `rsp` to `top`: how much of the stack the image occupies.
    pub fn size(&self, top: u64) -> u64 {
        top - self.rsp
    }
}

/// The fixed strings after envp: platform name and AT_RANDOM bytes.
pub fn tail_strings() -> [&'static [u8]; 2] {
    [PLATFORM, &AT_RANDOM_BYTES]
}

/// Number of auxiliary-vector entries [`auxv`] produces, AT_NULL included.
pub fn auxv_pairs(aux: &AuxInfo) -> usize {
    auxv(aux, 0, 0, 0).len()
}

/// The auxiliary vector in Linux's order (`create_elf_tables`), ending with AT_NULL.
pub fn auxv(aux: &AuxInfo, random: u64, execfn: u64, platform: u64) -> AuxVec {
    let mut v = AuxVec {
        pairs: [(0, 0); MAX_AUXV],
        len: 0,
    };
    if let Some(vdso) = aux.sysinfo_ehdr {
        v.push(at::SYSINFO_EHDR, vdso);
    }
    v.push(at::HWCAP, aux.hwcap);
    v.push(at::PAGESZ, 4096);
    v.push(at::CLKTCK, 100);
    v.push(at::PHDR, aux.phdr);
    v.push(at::PHENT, aux.phent);
    v.push(at::PHNUM, aux.phnum);
    v.push(at::BASE, aux.base);
    v.push(at::FLAGS, 0);
    v.push(at::ENTRY, aux.entry);
    v.push(at::UID, 0);
    v.push(at::EUID, 0);
    v.push(at::GID, 0);
    v.push(at::EGID, 0);
    v.push(at::SECURE, 0);
    v.push(at::RANDOM, random);
    v.push(at::HWCAP2, 0);
    v.push(at::EXECFN, execfn);
    v.push(at::PLATFORM, platform);
    v.push(at::NULL, 0);
    v
}

/// Room for every auxiliary entry this kernel emits.
const MAX_AUXV: usize = 24;

/// A fixed-capacity auxiliary vector (no allocation on the exec path).
pub struct AuxVec {
    pairs: [(u64, u64); MAX_AUXV],
    len: usize,
}

impl AuxVec {
    fn push(&mut self, t: u64, v: u64) {
        // `auxv` pushes at most 20 entries, below MAX_AUXV; a miscount would drop entries
        // rather than panic.
        if let Some(p) = self.pairs.get_mut(self.len) {
            *p = (t, v);
            self.len += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries as (type, value) pairs.
    pub fn pairs(&self) -> &[(u64, u64)] {
        &self.pairs[..self.len]
    }
}
