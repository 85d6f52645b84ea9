//! The vDSO: a small ELF shared object the kernel maps into every process
//! (its address is the auxiliary vector's `AT_SYSINFO_EHDR`), exporting
//! functions that read clocks without entering the kernel.
//!
//! [`Vdso::parse`] reads the image the way a dynamic loader would, with
//! every offset bounds-checked against the image:
//!
//! 1. the ELF header (64-bit, little-endian, x86-64) and program headers;
//! 2. the first `PT_LOAD` gives the link-time address of file offset 0
//!    (the kernel maps the whole file contiguously at `AT_SYSINFO_EHDR`);
//! 3. `PT_DYNAMIC` gives `DT_SYMTAB`, `DT_STRTAB`, `DT_STRSZ` and a hash
//!    table, `DT_GNU_HASH` and/or the classic `DT_HASH`;
//! 4. [`Vdso::lookup`] hashes the name and walks that table's chain to a
//!    defined symbol, whose `st_value` is turned into a run-time address.
//!
//! Symbol versions (`DT_VERSYM`/`DT_VERDEF`; Linux exports everything as
//! `LINUX_2.6`) are not checked: the vDSO has one version of each name.
//!
//! The typed accessors ([`Vdso::clock_gettime`], ...) return the functions
//! under their Linux x86-64 names (`__vdso_clock_gettime`, ...). Like the
//! system calls they replace, they return `-errno` on failure.

use core::ffi::c_void;

use crate::sys::time::{Timespec, Timeval};

/// `__vdso_clock_gettime(clock, ts)`.
pub type ClockGettimeFn = unsafe extern "C" fn(clock: i32, ts: *mut Timespec) -> i32;
/// `__vdso_gettimeofday(tv, tz)`.
pub type GettimeofdayFn = unsafe extern "C" fn(tv: *mut Timeval, tz: *mut c_void) -> i32;
/// `__vdso_time(tloc)`.
pub type TimeFn = unsafe extern "C" fn(tloc: *mut i64) -> i64;
/// `__vdso_getcpu(cpu, node, cache)`.
pub type GetcpuFn = unsafe extern "C" fn(cpu: *mut u32, node: *mut u32, cache: *mut c_void) -> i32;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_GNU_HASH: u64 = 0x6fff_fef5;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SYM_SIZE: usize = 24;
const SHN_UNDEF: u16 = 0;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;

/// Which hash table a lookup uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashTable {
    /// `DT_GNU_HASH` (what modern loaders use).
    Gnu,
    /// The System V `DT_HASH`.
    Sysv,
}

/// A parsed vDSO image. All offsets are file offsets into `image`.
#[derive(Clone, Copy, Debug)]
pub struct Vdso<'a> {
    image: &'a [u8],
    /// Run-time address of file offset 0.
    base: usize,
    /// Link-time address of file offset 0 (`p_vaddr - p_offset` of the
    /// first `PT_LOAD`).
    link_base: u64,
    symtab: usize,
    strtab: usize,
    strsz: usize,
    gnu_hash: Option<usize>,
    sysv_hash: Option<usize>,
}

/// Why an image was rejected.
pub type ParseError = &'static str;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The classic System V ELF hash.
pub fn sysv_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(c as u32);
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// The GNU hash (Bernstein's `h * 33 + c`, from 5381).
pub fn gnu_hash(name: &[u8]) -> u32 {
    name.iter()
        .fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32))
}

/// One program header's interesting fields.
struct Phdr {
    p_type: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

fn phdrs(image: &[u8]) -> Result<impl Iterator<Item = Phdr> + '_, ParseError> {
    let phoff = u64_at(image, 32).ok_or("truncated header")? as usize;
    let phentsize = u16_at(image, 54).ok_or("truncated header")? as usize;
    let phnum = u16_at(image, 56).ok_or("truncated header")? as usize;
    if phentsize < PHDR_SIZE {
        return Err("bad e_phentsize");
    }
    Ok((0..phnum).filter_map(move |i| {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        Some(Phdr {
            p_type: u32_at(image, at)?,
            offset: u64_at(image, at + 8)?,
            vaddr: u64_at(image, at + 16)?,
            filesz: u64_at(image, at + 32)?,
        })
    }))
}

fn check_ident(image: &[u8]) -> Result<(), ParseError> {
    if image.len() < EHDR_SIZE || image[..4] != *b"\x7fELF" {
        return Err("not an ELF image");
    }
    // EI_CLASS = ELFCLASS64, EI_DATA = ELFDATA2LSB, e_machine = EM_X86_64.
    if image[4] != 2 || image[5] != 1 || u16_at(image, 18) != Some(62) {
        return Err("not a 64-bit little-endian x86-64 ELF");
    }
    Ok(())
}

impl Vdso<'static> {
    /// The vDSO of this process, from `AT_SYSINFO_EHDR`; `None` if the
    /// kernel provides none or it does not parse.
    pub fn from_auxv() -> Option<Vdso<'static>> {
        let base = crate::env::auxv(crate::env::AT_SYSINFO_EHDR)?;
        // SAFETY: the kernel maps the whole vDSO image at AT_SYSINFO_EHDR.
        unsafe { Vdso::from_base(base) }.ok()
    }

    /// Parses the vDSO image mapped at `base`. Its length is taken from the
    /// program headers (the end of the furthest `PT_LOAD` file range).
    ///
    /// # Safety
    /// `base` must be the address of a mapped ELF header whose `PT_LOAD`
    /// file ranges are mapped contiguously after it (as the kernel maps the
    /// vDSO) and stay mapped for the life of the process.
    pub unsafe fn from_base(base: usize) -> Result<Vdso<'static>, ParseError> {
        let header = core::slice::from_raw_parts(base as *const u8, EHDR_SIZE);
        check_ident(header)?;
        let phoff = u64_at(header, 32).ok_or("truncated header")? as usize;
        let phentsize = u16_at(header, 54).ok_or("truncated header")? as usize;
        let phnum = u16_at(header, 56).ok_or("truncated header")? as usize;
        let ph_end = phoff + phentsize * phnum;
        if phoff < EHDR_SIZE || ph_end > 4096 {
            return Err("program headers outside the first page");
        }
        let with_phdrs = core::slice::from_raw_parts(base as *const u8, ph_end);
        let len = phdrs(with_phdrs)?
            .filter(|p| p.p_type == PT_LOAD)
            .map(|p| p.offset.saturating_add(p.filesz) as usize)
            .max()
            .ok_or("no PT_LOAD")?
            .max(ph_end);
        Vdso::parse(core::slice::from_raw_parts(base as *const u8, len), base)
    }
}

impl<'a> Vdso<'a> {
    /// Parses an in-memory image whose file offset 0 is at run-time address
    /// `base`.
    pub fn parse(image: &'a [u8], base: usize) -> Result<Vdso<'a>, ParseError> {
        check_ident(image)?;
        let load = phdrs(image)?
            .find(|p| p.p_type == PT_LOAD)
            .ok_or("no PT_LOAD")?;
        let link_base = load.vaddr.wrapping_sub(load.offset);
        let dynamic = phdrs(image)?
            .find(|p| p.p_type == PT_DYNAMIC)
            .ok_or("no PT_DYNAMIC")?;
        let mut vdso = Vdso {
            image,
            base,
            link_base,
            symtab: 0,
            strtab: 0,
            strsz: 0,
            gnu_hash: None,
            sysv_hash: None,
        };
        let to_off = |vaddr: u64| -> Result<usize, ParseError> {
            let off = vaddr.wrapping_sub(link_base) as usize;
            if off < image.len() {
                Ok(off)
            } else {
                Err("dynamic entry points outside the image")
            }
        };
        let (mut symtab, mut strtab) = (None, None);
        let mut at = dynamic.offset as usize;
        let end = at.saturating_add(dynamic.filesz as usize);
        while at + 16 <= end {
            let tag = u64_at(image, at).ok_or("truncated PT_DYNAMIC")?;
            let val = u64_at(image, at + 8).ok_or("truncated PT_DYNAMIC")?;
            match tag {
                DT_NULL => break,
                DT_SYMTAB => symtab = Some(to_off(val)?),
                DT_STRTAB => strtab = Some(to_off(val)?),
                DT_STRSZ => vdso.strsz = val as usize,
                DT_HASH => vdso.sysv_hash = Some(to_off(val)?),
                DT_GNU_HASH => vdso.gnu_hash = Some(to_off(val)?),
                _ => {}
            }
            at += 16;
        }
        vdso.symtab = symtab.ok_or("no DT_SYMTAB")?;
        vdso.strtab = strtab.ok_or("no DT_STRTAB")?;
        if vdso.gnu_hash.is_none() && vdso.sysv_hash.is_none() {
            return Err("no hash table");
        }
        Ok(vdso)
    }

    /// Whether the image has the given hash table.
    pub fn has(&self, table: HashTable) -> bool {
        match table {
            HashTable::Gnu => self.gnu_hash.is_some(),
            HashTable::Sysv => self.sysv_hash.is_some(),
        }
    }

    /// Run-time address of the defined global symbol `name`, found through
    /// `DT_GNU_HASH` if present, else `DT_HASH`.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        let table = if self.gnu_hash.is_some() {
            HashTable::Gnu
        } else {
            HashTable::Sysv
        };
        self.lookup_in(table, name)
    }

    /// [`lookup`](Self::lookup) through a specific hash table.
    pub fn lookup_in(&self, table: HashTable, name: &str) -> Option<usize> {
        let name = name.as_bytes();
        let index = match table {
            HashTable::Gnu => self.gnu_find(self.gnu_hash?, name)?,
            HashTable::Sysv => self.sysv_find(self.sysv_hash?, name)?,
        };
        let sym = self.symtab + index * SYM_SIZE;
        let value = u64_at(self.image, sym + 8)?;
        Some(
            self.base
                .wrapping_add(value.wrapping_sub(self.link_base) as usize),
        )
    }

    /// Whether symbol `index` is a defined global/weak symbol called `name`.
    fn sym_matches(&self, index: usize, name: &[u8]) -> bool {
        let sym = self.symtab + index * SYM_SIZE;
        let (Some(st_name), Some(&info), Some(shndx)) = (
            u32_at(self.image, sym),
            self.image.get(sym + 4),
            u16_at(self.image, sym + 6),
        ) else {
            return false;
        };
        let bind = info >> 4;
        if shndx == SHN_UNDEF || (bind != STB_GLOBAL && bind != STB_WEAK) {
            return false;
        }
        let start = self.strtab + st_name as usize;
        let limit = if self.strsz > 0 {
            (self.strtab + self.strsz).min(self.image.len())
        } else {
            self.image.len()
        };
        match self.image.get(start..limit) {
            Some(s) => s.len() > name.len() && &s[..name.len()] == name && s[name.len()] == 0,
            None => false,
        }
    }

    /// `DT_HASH`: `nbucket, nchain, bucket[nbucket], chain[nchain]`; the
    /// chain starting at `bucket[hash % nbucket]` links symbol indices,
    /// ending at 0.
    fn sysv_find(&self, table: usize, name: &[u8]) -> Option<usize> {
        let nbucket = u32_at(self.image, table)? as usize;
        let nchain = u32_at(self.image, table + 4)? as usize;
        if nbucket == 0 {
            return None;
        }
        let buckets = table + 8;
        let chains = buckets + 4 * nbucket;
        let mut i = u32_at(
            self.image,
            buckets + 4 * (sysv_hash(name) as usize % nbucket),
        )? as usize;
        // At most nchain steps: a cyclic chain in a broken image ends too.
        for _ in 0..nchain {
            if i == 0 || i >= nchain {
                return None;
            }
            if self.sym_matches(i, name) {
                return Some(i);
            }
            i = u32_at(self.image, chains + 4 * i)? as usize;
        }
        None
    }

    /// `DT_GNU_HASH`: `nbuckets, symoffset, bloom_size, bloom_shift,
    /// bloom[bloom_size] (u64), buckets[nbuckets], chain[]`. Symbols from
    /// `symoffset` on are sorted by bucket; `buckets[h % nbuckets]` is the
    /// first of its run, and `chain[i - symoffset]` holds each symbol's
    /// hash with bit 0 set on the last one of the run. (The Bloom filter
    /// only speeds up misses and is not consulted.)
    fn gnu_find(&self, table: usize, name: &[u8]) -> Option<usize> {
        let nbuckets = u32_at(self.image, table)? as usize;
        let symoffset = u32_at(self.image, table + 4)? as usize;
        let bloom_size = u32_at(self.image, table + 8)? as usize;
        if nbuckets == 0 {
            return None;
        }
        let buckets = table + 16 + 8 * bloom_size;
        let chain = buckets + 4 * nbuckets;
        let h = gnu_hash(name);
        let mut i = u32_at(self.image, buckets + 4 * (h as usize % nbuckets))? as usize;
        if i < symoffset {
            return None;
        }
        loop {
            let ch = u32_at(self.image, chain + 4 * (i - symoffset))?;
            if ch | 1 == h | 1 && self.sym_matches(i, name) {
                return Some(i);
            }
            if ch & 1 != 0 {
                return None;
            }
            i += 1;
        }
    }

    /// `__vdso_clock_gettime`.
    pub fn clock_gettime(&self) -> Option<ClockGettimeFn> {
        // SAFETY: the vDSO's code at this symbol has this C signature.
        self.lookup("__vdso_clock_gettime")
            .map(|a| unsafe { core::mem::transmute::<usize, ClockGettimeFn>(a) })
    }

    /// `__vdso_gettimeofday`.
    pub fn gettimeofday(&self) -> Option<GettimeofdayFn> {
        // SAFETY: as above.
        self.lookup("__vdso_gettimeofday")
            .map(|a| unsafe { core::mem::transmute::<usize, GettimeofdayFn>(a) })
    }

    /// `__vdso_time`.
    pub fn time(&self) -> Option<TimeFn> {
        // SAFETY: as above.
        self.lookup("__vdso_time")
            .map(|a| unsafe { core::mem::transmute::<usize, TimeFn>(a) })
    }

    /// `__vdso_getcpu`.
    pub fn getcpu(&self) -> Option<GetcpuFn> {
        // SAFETY: as above.
        self.lookup("__vdso_getcpu")
            .map(|a| unsafe { core::mem::transmute::<usize, GetcpuFn>(a) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a minimal vDSO-like image: one PT_LOAD (link address
    /// `LINK`), PT_DYNAMIC, a symbol table with an undefined symbol, a
    /// local symbol and three globals, and both hash tables (one bucket
    /// each).
    fn synthetic(link: u64) -> Vec<u8> {
        let names: [&[u8]; 4] = [b"local_fn", b"alpha", b"beta", b"gamma"];
        // Layout: ehdr 0, phdrs 64 (2 * 56), dynstr 0x100, dynsym 0x180,
        // hash 0x280, gnu hash 0x2c0, dynamic 0x300, code 0x400.
        let mut img = vec![0u8; 0x500];
        let put16 = |img: &mut Vec<u8>, at: usize, v: u16| {
            img[at..at + 2].copy_from_slice(&v.to_le_bytes())
        };
        let put32 = |img: &mut Vec<u8>, at: usize, v: u32| {
            img[at..at + 4].copy_from_slice(&v.to_le_bytes())
        };
        let put64 = |img: &mut Vec<u8>, at: usize, v: u64| {
            img[at..at + 8].copy_from_slice(&v.to_le_bytes())
        };
        img[..4].copy_from_slice(b"\x7fELF");
        img[4] = 2;
        img[5] = 1;
        put16(&mut img, 16, 3); // ET_DYN
        put16(&mut img, 18, 62);
        put64(&mut img, 32, 64);
        put16(&mut img, 54, 56);
        put16(&mut img, 56, 2);
        // PT_LOAD covering the file; PT_DYNAMIC.
        put32(&mut img, 64, PT_LOAD);
        put64(&mut img, 64 + 16, link);
        put64(&mut img, 64 + 32, 0x500);
        put32(&mut img, 120, PT_DYNAMIC);
        put64(&mut img, 120 + 8, 0x300);
        put64(&mut img, 120 + 16, link + 0x300);
        put64(&mut img, 120 + 32, 0x60);
        // dynstr: "\0local_fn\0alpha\0beta\0gamma\0"
        let mut str_off = vec![];
        let mut at = 0x101;
        for n in names {
            str_off.push((at - 0x100) as u32);
            img[at..at + n.len()].copy_from_slice(n);
            at += n.len() + 1;
        }
        let strsz = (at - 0x100) as u64;
        // dynsym: [0] null, [1] local_fn (STB_LOCAL), [2..5] globals at
        // link + 0x400 + 16 * k.
        for (k, &off) in str_off.iter().enumerate() {
            let sym = 0x180 + (k + 1) * SYM_SIZE;
            put32(&mut img, sym, off);
            img[sym + 4] = if k == 0 { 0x02 } else { (STB_GLOBAL << 4) | 2 };
            put16(&mut img, sym + 6, 7);
            put64(&mut img, sym + 8, link + 0x400 + 16 * k as u64);
        }
        // DT_HASH with one bucket: bucket -> 4 -> 3 -> 2 -> 1 -> 0.
        put32(&mut img, 0x280, 1);
        put32(&mut img, 0x284, 5);
        put32(&mut img, 0x288, 4);
        for i in 1..5u32 {
            put32(&mut img, 0x28c + 4 * i as usize, i - 1);
        }
        // DT_GNU_HASH: one bucket, symoffset 2 (globals only), bloom of 1.
        put32(&mut img, 0x2c0, 1);
        put32(&mut img, 0x2c4, 2);
        put32(&mut img, 0x2c8, 1);
        put64(&mut img, 0x2d0, u64::MAX);
        put32(&mut img, 0x2d8, 2);
        for (j, n) in names[1..].iter().enumerate() {
            let last = j == 2;
            put32(&mut img, 0x2dc + 4 * j, (gnu_hash(n) & !1) | last as u32);
        }
        // dynamic
        let dyns = [
            (DT_STRTAB, link + 0x100),
            (DT_SYMTAB, link + 0x180),
            (DT_STRSZ, strsz),
            (DT_HASH, link + 0x280),
            (DT_GNU_HASH, link + 0x2c0),
            (DT_NULL, 0),
        ];
        for (k, (tag, val)) in dyns.iter().enumerate() {
            put64(&mut img, 0x300 + 16 * k, *tag);
            put64(&mut img, 0x308 + 16 * k, *val);
        }
        img
    }

    #[test]
    fn hashes_match_the_elf_spec() {
        assert_eq!(sysv_hash(b""), 0);
        assert_eq!(sysv_hash(b"printf"), 0x077905a6);
        assert_eq!(gnu_hash(b""), 5381);
        assert_eq!(gnu_hash(b"printf"), 0x156b2bb8);
    }

    #[test]
    fn synthetic_image_both_tables() {
        for link in [0u64, 0xffff_ffff_ff70_0000] {
            let img = synthetic(link);
            let base = 0x7000_0000;
            let v = Vdso::parse(&img, base).expect("parse");
            for table in [HashTable::Gnu, HashTable::Sysv] {
                assert!(v.has(table));
                assert_eq!(v.lookup_in(table, "alpha"), Some(base + 0x410));
                assert_eq!(v.lookup_in(table, "beta"), Some(base + 0x420));
                assert_eq!(v.lookup_in(table, "gamma"), Some(base + 0x430));
                // Local symbols and prefixes of names are not found.
                assert_eq!(v.lookup_in(table, "local_fn"), None);
                assert_eq!(v.lookup_in(table, "alph"), None);
                assert_eq!(v.lookup_in(table, "delta"), None);
            }
        }
    }

    #[test]
    fn rejects_broken_images() {
        let img = synthetic(0);
        assert!(Vdso::parse(&img[..32], 0).is_err());
        let mut bad = img.clone();
        bad[18] = 3; // EM_386
        assert!(Vdso::parse(&bad, 0).is_err());
        // A dynamic section pointing outside the image.
        let mut bad = img.clone();
        bad[0x308..0x310].copy_from_slice(&0x9999u64.to_le_bytes());
        assert!(Vdso::parse(&bad, 0).is_err());
        // Truncated in the middle of the symbol table: lookups fail, not panic.
        let v = Vdso::parse(&img[..0x1a0], 0);
        assert!(v.is_err() || v.unwrap().lookup("alpha").is_none());
    }

    extern "C" {
        fn getauxval(ty: core::ffi::c_ulong) -> core::ffi::c_ulong;
    }

    /// The host's real vDSO: both tables agree and the functions work.
    #[test]
    fn host_vdso() {
        // SAFETY: getauxval is glibc's; AT_SYSINFO_EHDR is a valid type.
        let base = unsafe { getauxval(crate::env::AT_SYSINFO_EHDR as _) } as usize;
        if base == 0 {
            eprintln!("no vDSO on this host; skipped");
            return;
        }
        // SAFETY: the kernel mapped the vDSO there.
        let v = unsafe { Vdso::from_base(base) }.expect("parse host vDSO");
        for name in [
            "__vdso_clock_gettime",
            "__vdso_gettimeofday",
            "__vdso_time",
            "__vdso_getcpu",
        ] {
            let a = v.lookup(name).unwrap_or_else(|| panic!("{name} not found"));
            if v.has(HashTable::Sysv) {
                assert_eq!(v.lookup_in(HashTable::Sysv, name), Some(a));
            }
            if v.has(HashTable::Gnu) {
                assert_eq!(v.lookup_in(HashTable::Gnu, name), Some(a));
            }
        }
        assert_eq!(v.lookup("__vdso_nonexistent"), None);
        let cg = v.clock_gettime().expect("clock_gettime");
        let mut ts = Timespec::default();
        // SAFETY: ts is writable.
        assert_eq!(
            unsafe { cg(crate::sys::time::CLOCK_REALTIME as i32, &mut ts) },
            0
        );
        let sys =
            crate::sys::time::clock_gettime(crate::sys::time::CLOCK_REALTIME).expect("syscall");
        assert!((sys.tv_sec - ts.tv_sec).abs() <= 1);
        let t = v.time().expect("time");
        // SAFETY: NULL tloc is allowed.
        assert!((unsafe { t(core::ptr::null_mut()) } - sys.tv_sec).abs() <= 1);
    }
}
