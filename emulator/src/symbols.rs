//! ELF symbol tables for the instruction trace (and anything else that names guest code):
//! the function and object symbols of an ELF's `.symtab`, sorted by address, with Rust
//! names demangled (without the hash). Lookups go both ways: an address to `name+offset`,
//! a name to its address.

use goblin::elf::section_header::SHN_UNDEF;
use goblin::elf::sym::{STB_GLOBAL, STB_WEAK, STT_FUNC, STT_NOTYPE, STT_OBJECT};
use goblin::elf::Elf;

/// One symbol: where it starts, how long it is (0 when the ELF does not say) and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub addr: u64,
    pub size: u64,
    /// Demangled for Rust symbols (`core::fmt::write`), as in the ELF otherwise.
    pub name: String,
    /// The name as the ELF has it, when it differs from `name` (a mangled Rust name).
    pub raw: Option<String>,
}

/// How far past an unsized symbol (a label of assembly code, a linker-script symbol) an
/// address may be and still be named after it.
const UNSIZED_REACH: u64 = 0x1_0000;

/// The largest size given to a symbol of a `System.map` (which has no sizes): the Linux
/// kernel's largest functions are a few tens of KiB.
pub const MAP_MAX_SIZE: u64 = 0x1_0000;

/// A sorted symbol table.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    /// Every symbol kept, sorted by address, the best name for an address first.
    all: Vec<Symbol>,
    /// One symbol per address (the best), sorted: what addresses are named after.
    by_addr: Vec<usize>,
    /// The addresses of `by_addr`, dense for the binary search.
    starts: Vec<u64>,
}

impl SymbolTable {
    /// The function, object and code-label symbols of `elf`'s `.symtab`. An ELF without
    /// one (stripped) gives an empty table; bytes that are not an ELF are an error.
    pub fn from_elf(bytes: &[u8]) -> Result<Self, String> {
        let elf = Elf::parse(bytes).map_err(|e| format!("not an ELF file: {e}"))?;
        let mut syms = Vec::new();
        for s in elf.syms.iter() {
            let ty = s.st_type();
            if !(ty == STT_FUNC || ty == STT_OBJECT || ty == STT_NOTYPE)
                || s.st_shndx == SHN_UNDEF as usize
                || s.st_value == 0
            {
                continue;
            }
            let Some(raw) = elf.strtab.get_at(s.st_name) else {
                continue;
            };
            // Assembler temporaries and mapping symbols carry no meaning for a reader.
            if raw.is_empty() || raw.starts_with(".L") || raw.starts_with('$') {
                continue;
            }
            // Rank for the same address: functions, then objects, then labels; global
            // before local; sized before unsized.
            let global = matches!(s.st_bind(), STB_GLOBAL | STB_WEAK);
            let rank = match ty {
                STT_FUNC => 0,
                STT_OBJECT => 2,
                _ => 4,
            } + u8::from(!global)
                + if s.st_size == 0 { 8 } else { 0 };
            syms.push((rank, Symbol::new(s.st_value, s.st_size, raw)));
        }
        Ok(Self::from_ranked(syms))
    }

    /// The symbols of a `System.map` or of `/proc/kallsyms` output (`ADDR TYPE NAME
    /// [MODULE]` lines): text symbols (`T`, `t`, `W`, `w`) and data (`D`, `d`, `B`, `b`,
    /// `R`, `r`, `V`, `v`); absolute and undefined ones and zero addresses (kallsyms with
    /// `kptr_restrict`) are left out. The format has no sizes: each symbol is taken to
    /// reach the next one of its kind, at most [`MAP_MAX_SIZE`] bytes. Lines that do not
    /// parse are an error (with their number), so a wrong file is not silently empty.
    pub fn from_system_map(text: &str) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let mut f = line.split_whitespace();
            let (Some(addr), Some(ty), Some(name)) = (f.next(), f.next(), f.next()) else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(format!("line {}: not ADDR TYPE NAME: {line:?}", n + 1));
            };
            let addr = u64::from_str_radix(addr, 16)
                .map_err(|_| format!("line {}: bad address {addr:?}", n + 1))?;
            let mut ty = ty.chars();
            if let (Some(t), None) = (ty.next(), ty.next()) {
                parsed.push((addr, t, name));
            }
        }
        Ok(Self::from_typed(parsed))
    }

    /// A table from `nm`-style `(address, type, name)` entries (System.map, kallsyms).
    pub fn from_typed<'a>(entries: impl IntoIterator<Item = (u64, char, &'a str)>) -> Self {
        let mut parsed: Vec<(u8, u64, &str)> = entries
            .into_iter()
            .filter(|&(addr, _, _)| addr != 0)
            .filter_map(|(addr, ty, name)| {
                let rank = match ty {
                    'T' | 'W' => 0,
                    't' | 'w' => 1,
                    'D' | 'B' | 'R' | 'V' => 2,
                    'd' | 'b' | 'r' | 'v' => 3,
                    _ => return None,
                };
                Some((rank, addr, name))
            })
            .collect();
        parsed.sort_by_key(|&(rank, addr, _)| (rank > 1, addr));
        let mut syms = Vec::with_capacity(parsed.len());
        for (i, &(rank, addr, name)) in parsed.iter().enumerate() {
            let next = parsed[i + 1..]
                .iter()
                .find(|&&(r, a, _)| (r > 1) == (rank > 1) && a > addr)
                .map_or(addr.saturating_add(MAP_MAX_SIZE), |&(_, a, _)| a);
            let size = (next - addr).min(MAP_MAX_SIZE);
            syms.push((rank, Symbol::new(addr, size, name)));
        }
        Self::from_ranked(syms)
    }

    /// The symbols of a kernel ELF: its `.symtab`, or for a stripped Linux kernel the
    /// kallsyms tables it carries ([`crate::kallsyms`]). Empty when it has neither.
    pub fn from_kernel_elf(bytes: &[u8]) -> Result<Self, String> {
        let t = Self::from_elf(bytes)?;
        if !t.is_empty() {
            return Ok(t);
        }
        match crate::kallsyms::from_image(bytes) {
            Ok(k) => {
                log::info!("kernel symbols: {} from the image's kallsyms", k.len());
                Ok(Self::from_typed(
                    k.iter().map(|(a, t, n)| (*a, *t, n.as_str())),
                ))
            }
            Err(e) => {
                log::debug!("no kallsyms in the kernel image: {e}");
                Ok(t)
            }
        }
    }

    /// Kernel symbols from a file given by the user: an ELF's `.symtab`, else a
    /// `System.map` / kallsyms listing.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.starts_with(b"\x7fELF") {
            return Self::from_kernel_elf(bytes);
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "neither an ELF nor a text symbol map".to_string())?;
        Self::from_system_map(text)
    }

    /// A table from `(addr, size, name)` triples (names are demangled as from an ELF).
    pub fn from_symbols<'a>(syms: impl IntoIterator<Item = (u64, u64, &'a str)>) -> Self {
        Self::from_ranked(
            syms.into_iter()
                .map(|(a, s, n)| (if s == 0 { 8 } else { 0 }, Symbol::new(a, s, n)))
                .collect(),
        )
    }

    fn from_ranked(mut syms: Vec<(u8, Symbol)>) -> Self {
        syms.sort_by(|(ra, a), (rb, b)| {
            (a.addr, ra, &a.name, a.size).cmp(&(b.addr, rb, &b.name, b.size))
        });
        syms.dedup_by(|(_, a), (_, b)| a == b);
        let all: Vec<Symbol> = syms.into_iter().map(|(_, s)| s).collect();
        let mut by_addr = Vec::new();
        for (i, s) in all.iter().enumerate() {
            if i == 0 || all[i - 1].addr != s.addr {
                by_addr.push(i);
            }
        }
        let starts = by_addr.iter().map(|&i| all[i].addr).collect();
        SymbolTable {
            all,
            by_addr,
            starts,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// The symbol `addr` lies in, and the offset into it: the nearest symbol at or below
    /// `addr` whose size covers it, or an unsized one (a code label) that is the nearest
    /// symbol below and less than 64 KiB away.
    pub fn lookup(&self, addr: u64) -> Option<(&Symbol, u64)> {
        let idx = self.starts.partition_point(|&a| a <= addr);
        // A few symbols back, for a small symbol nested in a larger one (or overlapping).
        for (k, &i) in self.by_addr[..idx].iter().enumerate().rev().take(8) {
            let s = &self.all[i];
            let off = addr - s.addr;
            if s.size == 0 {
                if k + 1 == idx && off < UNSIZED_REACH {
                    return Some((s, off));
                }
            } else if off < s.size {
                return Some((s, off));
            }
        }
        None
    }

    /// The first symbol (lowest address) called `name`: its demangled name, the
    /// demangled name with the crate path left out (`kernel_main` for
    /// `guest_os::kernel_main`), or the name as in the ELF.
    pub fn find(&self, name: &str) -> Option<&Symbol> {
        self.all
            .iter()
            .find(|s| s.name == name || s.raw.as_deref() == Some(name))
            .or_else(|| {
                self.all
                    .iter()
                    .find(|s| s.name.rsplit("::").next() == Some(name))
            })
    }

    /// `name` or `name+0xOFF` for `addr`, if a symbol covers it.
    pub fn describe(&self, addr: u64) -> Option<String> {
        self.lookup(addr).map(|(s, off)| {
            if off == 0 {
                s.name.clone()
            } else {
                format!("{}+{off:#x}", s.name)
            }
        })
    }

    /// Every symbol, sorted by address.
    pub fn iter(&self) -> impl Iterator<Item = &Symbol> {
        self.all.iter()
    }
}

impl Symbol {
    fn new(addr: u64, size: u64, raw: &str) -> Self {
        let name = demangle(raw);
        let raw = (name != raw).then(|| raw.to_string());
        Symbol {
            addr,
            size,
            name,
            raw,
        }
    }
}

/// A Rust symbol (legacy `_ZN...E` or v0 `_R...`) demangled without its hash; other
/// names unchanged.
pub fn demangle(raw: &str) -> String {
    match rustc_demangle::try_demangle(raw) {
        Ok(d) => format!("{d:#}"),
        Err(_) => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SymbolTable {
        SymbolTable::from_symbols([
            (0x1000, 0x100, "outer"),
            (0x1040, 0x10, "inner"),
            (0x2000, 0, "label"),
            (
                0x3000,
                0x20,
                "_ZN8guest_os11kernel_main17h0123456789abcdefE",
            ),
            (0x3000, 0, "alias_unsized"),
        ])
    }

    #[test]
    fn lookup_names_addresses() {
        let t = table();
        assert_eq!(t.describe(0x1000).as_deref(), Some("outer"));
        assert_eq!(t.describe(0x1044).as_deref(), Some("inner+0x4"));
        // Past `inner`, still inside `outer`.
        assert_eq!(t.describe(0x1050).as_deref(), Some("outer+0x50"));
        assert_eq!(t.describe(0x1100), None);
        assert_eq!(t.describe(0x2010).as_deref(), Some("label+0x10"));
        assert_eq!(t.describe(0x2000 + UNSIZED_REACH), None);
        assert_eq!(
            t.describe(0x3008).as_deref(),
            Some("guest_os::kernel_main+0x8")
        );
        assert_eq!(t.describe(0xfff), None);
        assert_eq!(t.describe(u64::MAX), None);
    }

    #[test]
    fn find_by_name() {
        let t = table();
        assert_eq!(t.find("inner").map(|s| s.addr), Some(0x1040));
        assert_eq!(
            t.find("guest_os::kernel_main").map(|s| s.addr),
            Some(0x3000)
        );
        assert_eq!(t.find("kernel_main").map(|s| s.addr), Some(0x3000));
        assert_eq!(
            t.find("_ZN8guest_os11kernel_main17h0123456789abcdefE")
                .map(|s| s.addr),
            Some(0x3000)
        );
        assert!(t.find("nothing").is_none());
    }

    #[test]
    fn system_map_and_kallsyms() {
        let map = "ffffffff81000000 T _stext\n\
                   ffffffff81000000 T startup_64\n\
                   ffffffff81000100 t secondary_startup_64\n\
                   ffffffff81000200 T do_anonymous_page\n\
                   ffffffff82000000 D init_task\n\
                   ffffffff82001000 d other_data\n\
                   0000000000000000 A __per_cpu_start\n\
                   ffffffffc0000000 t mod_fn\t[ext4]\n";
        let t = SymbolTable::from_system_map(map).unwrap();
        assert_eq!(
            t.describe(0xffffffff81000010).as_deref(),
            Some("_stext+0x10")
        );
        assert_eq!(
            t.describe(0xffffffff81000104).as_deref(),
            Some("secondary_startup_64+0x4")
        );
        // Text reaches the next text symbol, not the data after it.
        assert_eq!(
            t.describe(0xffffffff81000300).as_deref(),
            Some("do_anonymous_page+0x100")
        );
        assert_eq!(t.describe(0xffffffff81000200 + MAP_MAX_SIZE), None);
        assert_eq!(
            t.describe(0xffffffff82000010).as_deref(),
            Some("init_task+0x10")
        );
        assert_eq!(t.find("mod_fn").map(|s| s.addr), Some(0xffffffffc0000000));
        assert!(t.find("__per_cpu_start").is_none());
        assert!(SymbolTable::from_system_map("zz T x\n").is_err());
        assert!(SymbolTable::from_system_map("only-one-field\n").is_err());
        assert!(SymbolTable::from_file_bytes(b"\xff\xfe").is_err());
    }

    #[test]
    fn not_an_elf_is_an_error_and_empty_is_fine() {
        assert!(SymbolTable::from_elf(b"hello").is_err());
        assert!(SymbolTable::default().lookup(0x1000).is_none());
    }
}
