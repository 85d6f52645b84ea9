//! The initial process stack (System V x86-64 psABI §3.4.1, Linux `create_elf_tables`):
//! from the top down, the strings (execfn, argv, envp), the 16 AT_RANDOM bytes and the
//! platform string, then, 16-byte aligned at `rsp`: argc, argv pointers, NULL, envp
//! pointers, NULL, and the auxiliary vector of (type, value) pairs ending with AT_NULL.
//!
//! Built as a byte image in kernel memory with the user addresses it will have, then copied
//! to the new process's stack in one go.

use alloc::vec::Vec;

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
    pub hwcap: u64,
    pub sysinfo_ehdr: Option<u64>,
}

/// `AT_RANDOM` bytes: fixed, because runs must be reproducible (Linux draws them from the
/// entropy pool; programs use them for stack canaries and hash seeds).
pub const AT_RANDOM_BYTES: [u8; 16] = *b"vmscope-at-rand!";

/// The image of the stack's top part and the initial `rsp`.
pub struct StackImage {
    /// Bytes to place so that their last byte is at `top - 1`.
    pub bytes: Vec<u8>,
    pub rsp: u64,
}

/// Lay out the initial stack below `top` (exclusive, 16-byte aligned).
pub fn build(
    top: u64,
    execfn: &[u8],
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    aux: &AuxInfo,
) -> StackImage {
    // Strings area, filled from the top down: execfn first (Linux puts it highest).
    let mut strings: Vec<u8> = Vec::new();
    let place = |s: &[u8], strings: &mut Vec<u8>| -> u64 {
        // Returns the offset from the start of the final strings block, fixed up below.
        strings.extend_from_slice(s);
        strings.push(0);
        strings.len() as u64 - s.len() as u64 - 1
    };
    let execfn_off = place(execfn, &mut strings);
    let argv_off: Vec<u64> = argv.iter().map(|a| place(a, &mut strings)).collect();
    let envp_off: Vec<u64> = envp.iter().map(|e| place(e, &mut strings)).collect();
    let platform_off = place(b"x86_64", &mut strings);
    let random_off = strings.len() as u64;
    strings.extend_from_slice(&AT_RANDOM_BYTES);
    // The strings block ends 8 bytes below top (a NULL word at the very top, as Linux).
    let strings_start = (top - 8 - strings.len() as u64) & !0xf;
    let addr = |off: u64| strings_start + off;

    let mut words: Vec<u64> = Vec::new();
    words.push(argv.len() as u64);
    words.extend(argv_off.iter().map(|&o| addr(o)));
    words.push(0);
    words.extend(envp_off.iter().map(|&o| addr(o)));
    words.push(0);
    let mut auxv = |t: u64, v: u64| {
        words.push(t);
        words.push(v);
    };
    if let Some(vdso) = aux.sysinfo_ehdr {
        auxv(at::SYSINFO_EHDR, vdso);
    }
    auxv(at::HWCAP, aux.hwcap);
    auxv(at::PAGESZ, 4096);
    auxv(at::CLKTCK, 100);
    auxv(at::PHDR, aux.phdr);
    auxv(at::PHENT, aux.phent);
    auxv(at::PHNUM, aux.phnum);
    auxv(at::BASE, 0);
    auxv(at::FLAGS, 0);
    auxv(at::ENTRY, aux.entry);
    auxv(at::UID, 0);
    auxv(at::EUID, 0);
    auxv(at::GID, 0);
    auxv(at::EGID, 0);
    auxv(at::SECURE, 0);
    auxv(at::RANDOM, addr(random_off));
    auxv(at::HWCAP2, 0);
    auxv(at::EXECFN, addr(execfn_off));
    auxv(at::PLATFORM, addr(platform_off));
    auxv(at::NULL, 0);

    let rsp = (strings_start - words.len() as u64 * 8) & !0xf;
    let mut bytes = alloc::vec![0u8; (top - rsp) as usize];
    for (i, w) in words.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let s = (strings_start - rsp) as usize;
    bytes[s..s + strings.len()].copy_from_slice(&strings);
    StackImage { bytes, rsp }
}
