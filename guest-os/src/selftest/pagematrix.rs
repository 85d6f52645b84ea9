//! The page-permission matrix, in the style of kvm-unit-tests' x86 `access` test: one linear
//! address is mapped through page tables whose U/S, R/W and NX bits take every combination
//! at every level (4 KiB leaf: 4 levels, 2 MiB: 3, 1 GiB: 2), and it is read, written and
//! executed from CPL 0 and CPL 3 under every combination of CR0.WP, CR4.SMEP, CR4.SMAP with
//! RFLAGS.AC, and EFER.NXE. Each case records whether it faulted, the #PF error code, CR2
//! and the accessed/dirty bits left in every level, and compares them with what the SDM
//! (Vol. 3A 4.6 access rights, 4.7 error codes, 4.8 A/D flags) says must happen; the
//! expectation is computed here from those rules, never recorded from a run.
//!
//! Protection keys (SDM 4.6.2) have a matrix of their own (`pagematrix-pk` lines), when
//! the CPU has PKU and PKS: every leaf size, a user or supervisor leaf, writable or not,
//! the leaf with key 1 and every non-leaf entry with key 2 (whose AD and WD are always
//! set: non-leaf keys must be ignored), read, written and executed from CPL 0 and 3 under
//! CR0.WP, CR4.PKE, CR4.PKS and every AD/WD of key 1 in PKRU and IA32_PKRS.
//!
//! Output (compared between vmscope and QEMU by the system tests): one line per page-table
//! configuration with the number of cases and a digest of every observed outcome, a full
//! line for each failing case, and a summary. `pagematrix-verbose` prints one line per case
//! instead.
//!
//! Known deviations: QEMU 7.2's TCG departs from the SDM in two exactly described ways (see
//! [`Deviation`]). An outcome that matches one of them is not a failure but is counted, and
//! enters the digest as the SDM outcome, so the lines stay comparable; the count is printed
//! on its own line, which a faithful CPU never prints.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::Ordering;

use super::testpages::{pml4_entry, pte, Pages};
use super::user::{self, Kind};
use crate::arch::x86_64::idt::vector;
use crate::arch::x86_64::trap::CATCH;
use crate::kprintln;

/// PML4 slot 3: the linear addresses under test; nothing else maps this slot.
const TARGET_BASE: u64 = 0x180_0000_0000;
/// Offset of the tested byte in its 4 KiB page: not 0, so CR2 shows the full address.
const TARGET_OFFSET: u64 = 0x7c8;
/// The tested byte: RET, so a fetch returns to its caller and a write stores what is there.
const RET: u8 = 0xc3;

const PF_P: u32 = 1 << 0;
const PF_W: u32 = 1 << 1;
const PF_U: u32 = 1 << 2;
const PF_RSVD: u32 = 1 << 3;
const PF_ID: u32 = 1 << 4;

const CR0_WP: u64 = 1 << 16;
const CR4_SMEP: u64 = 1 << 20;
const CR4_SMAP: u64 = 1 << 21;
const MSR_EFER: u32 = 0xc000_0080;
const EFER_NXE: u64 = 1 << 11;
const RFLAGS_FIXED: u64 = 1 << 1;
const RFLAGS_AC: u64 = 1 << 18;

/// CPUID feature bits the matrix needs.
const CPUID7_EBX_SMEP: u32 = 1 << 7;
const CPUID7_EBX_SMAP: u32 = 1 << 20;
const CPUID_EXT_EDX_NX: u32 = 1 << 20;
const CPUID_EXT_EDX_PAGE1GB: u32 = 1 << 26;

/// Per-level permission bits of a configuration (3 bits a level).
const LVL_U: u8 = 1;
const LVL_W: u8 = 2;
const LVL_NX: u8 = 4;
const LEVEL_NAMES: [&str; 4] = ["pml4", "pdpt", "pd", "pt"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaf {
    K4,
    M2,
    G1,
}

impl Leaf {
    const ALL: [Leaf; 3] = [Leaf::K4, Leaf::M2, Leaf::G1];
    /// Paging-structure levels walked (PML4 first).
    fn levels(self) -> usize {
        match self {
            Leaf::K4 => 4,
            Leaf::M2 => 3,
            Leaf::G1 => 2,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Leaf::K4 => "4K",
            Leaf::M2 => "2M",
            Leaf::G1 => "1G",
        }
    }
    fn configs(self) -> usize {
        1 << (3 * self.levels())
    }
}

/// Total configurations: 8^4 + 8^3 + 8^2.
const CONFIGS: usize = 4096 + 512 + 64;

/// One page-table configuration: the leaf size and the U/W/NX bits of each level.
#[derive(Clone, Copy)]
struct Config {
    leaf: Leaf,
    bits: [u8; 4],
}

impl Config {
    fn new(leaf: Leaf, code: usize) -> Self {
        let n = leaf.levels();
        let mut bits = [0u8; 4];
        for (i, b) in bits.iter_mut().enumerate().take(n) {
            *b = ((code >> (3 * (n - 1 - i))) & 7) as u8;
        }
        Config { leaf, bits }
    }
    fn levels(&self) -> &[u8] {
        &self.bits[..self.leaf.levels()]
    }
}

/// One environment: privilege, access type and the control bits.
#[derive(Clone, Copy)]
struct Env {
    user: bool,
    kind: Kind,
    wp: bool,
    smep: bool,
    smap: bool,
    ac: bool,
    nxe: bool,
}

/// 2 CPLs x 3 kinds x WP x SMEP x (SMAP, AC) in {00, 10, 11} x NXE.
const ENVS: usize = 144;

impl Env {
    fn new(mut i: usize) -> Self {
        let mut take = |n: usize| {
            let v = i % n;
            i /= n;
            v
        };
        let nxe = take(2) == 1;
        let smap_ac = take(3);
        let smep = take(2) == 1;
        let wp = take(2) == 1;
        let kind = [Kind::Read, Kind::Write, Kind::Fetch][take(3)];
        let user = take(2) == 1;
        Env {
            user,
            kind,
            wp,
            smep,
            smap: smap_ac >= 1,
            ac: smap_ac == 2,
            nxe,
        }
    }
}

/// An outcome packed in a word (the unit of comparison and of the digest):
/// bits 0..4 A of each level (PML4 first), bit 7 D of the leaf, bits 8..16 the #PF error
/// code, bit 16 "faulted", bit 17 "CR2 wrong", bits 24..32 an unexpected vector + 1.
const OUT_D: u32 = 1 << 7;
const OUT_FAULT: u32 = 1 << 16;
const OUT_BAD_CR2: u32 = 1 << 17;

/// What the SDM says happens.
fn expected(cfg: &Config, env: &Env) -> u32 {
    let levels = cfg.levels();
    let mut err = 0;
    if env.kind == Kind::Write {
        err |= PF_W;
    }
    if env.user {
        err |= PF_U;
    }
    // 4.7: I/D is reported for fetches only with SMEP or (PAE paging and NXE).
    if env.kind == Kind::Fetch && (env.nxe || env.smep) {
        err |= PF_ID;
    }
    // NX set with EFER.NXE = 0 is a reserved bit: the walk stops at that entry, leaving
    // accessed flags only in the entries above it.
    if !env.nxe {
        if let Some(k) = levels.iter().position(|b| b & LVL_NX != 0) {
            let a = (1u32 << k) - 1;
            return OUT_FAULT | (err | PF_P | PF_RSVD) << 8 | a;
        }
    }
    let user_page = levels.iter().all(|b| b & LVL_U != 0);
    let writable = levels.iter().all(|b| b & LVL_W != 0);
    let nx = env.nxe && levels.iter().any(|b| b & LVL_NX != 0);
    // 4.6 access rights.
    let allowed = match (env.kind, env.user) {
        (Kind::Fetch, true) => user_page && !nx,
        (Kind::Fetch, false) => !(nx || (env.smep && user_page)),
        (Kind::Read, true) => user_page,
        (Kind::Write, true) => user_page && writable,
        (kind, false) => {
            let smap_blocks = user_page && env.smap && !env.ac;
            !smap_blocks && (kind == Kind::Read || writable || !env.wp)
        }
    };
    let n = levels.len();
    let upper_a = (1u32 << (n - 1)) - 1;
    if !allowed {
        // Upper levels were used (A set); the leaf was not.
        return OUT_FAULT | (err | PF_P) << 8 | upper_a;
    }
    let mut out = upper_a | 1 << (n - 1);
    if env.kind == Kind::Write {
        out |= OUT_D;
    }
    out
}

/// A documented departure from the SDM by an implementation used as a test oracle.
#[derive(Clone, Copy)]
enum Deviation {
    /// QEMU 7.2 reports reserved-bit faults with error-code bit P clear; SDM 4.7: "bit 3 of
    /// the error code can be set only if bit 0 is also set".
    RsvdWithoutP,
    /// QEMU 7.2 sets the accessed flag of a 1 GiB leaf before the permission check, so a
    /// faulting access leaves A set; SDM 4.8 and hardware set it only on a successful
    /// translation (as for 4 KiB and 2 MiB leaves).
    GigLeafAccessedOnFault,
}

impl Deviation {
    const ALL: [Deviation; 2] = [Deviation::RsvdWithoutP, Deviation::GigLeafAccessedOnFault];
    fn name(self) -> &'static str {
        match self {
            Deviation::RsvdWithoutP => "rsvd-without-p",
            Deviation::GigLeafAccessedOnFault => "1g-leaf-accessed-on-fault",
        }
    }
    /// Whether `got` is exactly this deviation from the SDM outcome `want`.
    fn explains(self, cfg: &Config, want: u32, got: u32) -> bool {
        let rsvd = want & OUT_FAULT != 0 && (want >> 8) & PF_RSVD != 0;
        match self {
            Deviation::RsvdWithoutP => rsvd && got == want & !(PF_P << 8),
            Deviation::GigLeafAccessedOnFault => {
                let leaf_a = 1 << (cfg.leaf.levels() - 1);
                cfg.leaf == Leaf::G1 && want & OUT_FAULT != 0 && !rsvd && got == want | leaf_a
            }
        }
    }
}

/// The test's own pages: the page tables for slot 3 and the data page.
static PAGES: Pages<4> = Pages::new();
const T_PDPT: usize = 0;
const T_PD: usize = 1;
const T_PT: usize = 2;
const T_DATA: usize = 3;

/// Per-configuration results, filled environment by environment.
struct Results {
    digest: [u64; CONFIGS],
    failed: [u32; CONFIGS],
}
struct ResultsCell(UnsafeCell<Results>);
// SAFETY: single CPU; only `run` touches it.
unsafe impl Sync for ResultsCell {}
static RESULTS: ResultsCell = ResultsCell(UnsafeCell::new(Results {
    digest: [0; CONFIGS],
    failed: [0; CONFIGS],
}));

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x100_0000_01b3;

fn fnv(mut h: u64, word: u32) -> u64 {
    for b in word.to_le_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Write the target mapping for `cfg` (accessed and dirty clear) and return the linear
/// address under test.
fn map_target(cfg: &Config) -> u64 {
    let data = PAGES.phys(T_DATA) + TARGET_OFFSET;
    let flags = |b: u8| {
        let mut f = pte::P;
        if b & LVL_U != 0 {
            f |= pte::U;
        }
        if b & LVL_W != 0 {
            f |= pte::W;
        }
        if b & LVL_NX != 0 {
            f |= pte::NX;
        }
        f
    };
    let b = cfg.bits;
    // SAFETY: single CPU; slot 3 and the T_* tables are used by nothing else.
    unsafe {
        write_volatile(
            pml4_entry(TARGET_BASE >> 39),
            PAGES.phys(T_PDPT) | flags(b[0]),
        );
        match cfg.leaf {
            Leaf::G1 => {
                write_volatile(PAGES.entry(T_PDPT, 0), pte::PS | flags(b[1]));
                TARGET_BASE + data
            }
            Leaf::M2 => {
                const M2: u64 = (2 << 20) - 1;
                write_volatile(PAGES.entry(T_PDPT, 0), PAGES.phys(T_PD) | flags(b[1]));
                write_volatile(PAGES.entry(T_PD, 0), (data & !M2) | pte::PS | flags(b[2]));
                TARGET_BASE + (data & M2)
            }
            Leaf::K4 => {
                write_volatile(PAGES.entry(T_PDPT, 0), PAGES.phys(T_PD) | flags(b[1]));
                write_volatile(PAGES.entry(T_PD, 0), PAGES.phys(T_PT) | flags(b[2]));
                write_volatile(PAGES.entry(T_PT, 0), (data & pte::ADDR) | flags(b[3]));
                TARGET_BASE + (data & 0xfff)
            }
        }
    }
}

/// The accessed bits of each level (PML4 first) and the leaf's dirty bit, packed as in
/// [`expected`].
fn read_ad(cfg: &Config) -> u32 {
    // SAFETY: reading this test's entries.
    let e = unsafe {
        [
            read_volatile(pml4_entry(TARGET_BASE >> 39)),
            read_volatile(PAGES.entry(T_PDPT, 0)),
            read_volatile(PAGES.entry(T_PD, 0)),
            read_volatile(PAGES.entry(T_PT, 0)),
        ]
    };
    let n = cfg.leaf.levels();
    let mut out = 0;
    for (i, v) in e.iter().enumerate().take(n) {
        if v & pte::A != 0 {
            out |= 1 << i;
        }
    }
    if e[n - 1] & pte::D != 0 {
        out |= OUT_D;
    }
    out
}

/// Set CR0.WP, CR4.SMEP/SMAP and EFER.NXE for `env`.
fn apply_env(env: &Env) {
    // SAFETY: the kernel's own mappings are supervisor pages without NX, so none of these
    // bits changes how the kernel itself runs.
    unsafe {
        let (mut cr0, mut cr4): (u64, u64);
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags));
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
        cr0 = set(cr0, CR0_WP, env.wp);
        cr4 = set(set(cr4, CR4_SMEP, env.smep), CR4_SMAP, env.smap);
        asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags));
        let efer = set(rdmsr(MSR_EFER), EFER_NXE, env.nxe);
        wrmsr(MSR_EFER, efer);
    }
}

fn set(v: u64, bit: u64, on: bool) -> u64 {
    if on {
        v | bit
    } else {
        v & !bit
    }
}

unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack));
    (hi as u64) << 32 | lo as u64
}

unsafe fn wrmsr(msr: u32, v: u64) {
    asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32,
        options(nostack));
}

/// Perform the access at CPL 0 with the catcher armed.
fn kernel_access(va: u64, kind: u64, rflags: u64) {
    // SAFETY: the access faults into the armed catcher (which resumes at label 4 on the
    // saved stack) or completes; a fetch runs the RET at the target. rbx/rbp are saved by
    // hand, the rest are clobbers.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "lea rax, [rip + 4f]",
            "mov [rip + {c} + 8], rax",
            "mov [rip + {c} + 16], rsp",
            "push rdx",
            "mov qword ptr [rip + {c}], 1",
            "popfq",
            "cmp esi, 1",
            "je 2f",
            "ja 3f",
            "mov al, [rdi]",
            "jmp 5f",
            "2:",
            "mov byte ptr [rdi], {ret}",
            "jmp 5f",
            "3:",
            "call rdi",
            "5:",
            "push {fixed}",
            "popfq",
            "mov qword ptr [rip + {c}], 0",
            "4:",
            "pop rbp",
            "pop rbx",
            c = sym CATCH,
            ret = const RET,
            fixed = const RFLAGS_FIXED,
            inout("rdi") va => _,
            inout("rsi") kind => _,
            inout("rdx") rflags => _,
            out("rax") _, out("rcx") _, out("r8") _, out("r9") _, out("r10") _,
            out("r11") _, out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        )
    }
}

/// Run one case and return its packed outcome; with `keys`, the entries get protection
/// keys ([`set_keys`]).
fn run_case(cfg: &Config, env: &Env, keys: bool) -> u32 {
    let va = map_target(cfg);
    if keys {
        set_keys(cfg);
    }
    // SAFETY: INVLPG only drops cached translations (and, per SDM 4.10.4.1, the
    // paging-structure caches), so the new entries are walked.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
    let rflags = RFLAGS_FIXED | if env.ac { RFLAGS_AC } else { 0 };
    if env.user {
        user::access(va, env.kind, RET, rflags);
    } else {
        kernel_access(va, env.kind as u64, rflags);
    }
    let caught = CATCH.count.swap(0, Ordering::SeqCst);
    let vec = CATCH.vector.swap(u64::MAX, Ordering::SeqCst);
    let mut out = read_ad(cfg);
    // A completed user access ends in the stub's UD2; a completed kernel access in nothing.
    let done = if env.user {
        vector::UD as u64
    } else {
        u64::MAX
    };
    if caught > 0 && vec == vector::PF as u64 {
        out |= OUT_FAULT | (CATCH.error_code.load(Ordering::SeqCst) as u32 & 0xff) << 8;
        if CATCH.cr2.load(Ordering::SeqCst) != va {
            out |= OUT_BAD_CR2;
        }
    } else if vec != done || caught > 1 {
        out |= ((vec as u32 & 0xff) + 1) << 24;
    }
    out
}

fn print_out(o: u32, levels: usize) {
    if o & OUT_FAULT != 0 {
        crate::kprint!("#PF({:#x})", (o >> 8) & 0xff);
    } else if o >> 24 != 0 {
        crate::kprint!("vector {}", (o >> 24) - 1);
    } else {
        crate::kprint!("no fault");
    }
    if o & OUT_BAD_CR2 != 0 {
        crate::kprint!(" cr2-wrong");
    }
    crate::kprint!(" A=");
    for i in 0..levels {
        crate::kprint!("{}", (o >> i) & 1);
    }
    crate::kprint!(" D={}", (o & OUT_D != 0) as u8);
}

fn print_config(cfg: &Config) {
    crate::kprint!("{}", cfg.leaf.name());
    for (i, b) in cfg.levels().iter().enumerate() {
        crate::kprint!(
            " {}={}{}{}",
            LEVEL_NAMES[i],
            if b & LVL_U != 0 { 'u' } else { 's' },
            if b & LVL_W != 0 { 'w' } else { 'r' },
            if b & LVL_NX != 0 { 'n' } else { 'x' }
        );
    }
}

fn print_case(cfg: &Config, env: &Env, got: u32, want: u32, dev: Option<Deviation>) {
    crate::kprint!("pagematrix ");
    print_config(cfg);
    crate::kprint!(
        " | cpl{} {} wp={} smep={} smap={} ac={} nxe={}: ",
        if env.user { 3 } else { 0 },
        match env.kind {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Fetch => "fetch",
        },
        env.wp as u8,
        env.smep as u8,
        env.smap as u8,
        env.ac as u8,
        env.nxe as u8
    );
    let n = cfg.leaf.levels();
    print_out(got, n);
    if got == want {
        kprintln!(" ok");
    } else if let Some(d) = dev {
        kprintln!(" deviation {}", d.name());
    } else {
        crate::kprint!(" FAIL (expected ");
        print_out(want, n);
        kprintln!(")");
    }
}

/// Run the whole matrix; returns (passed, total).
pub fn run(verbose: bool) -> (u32, u32) {
    // The matrix clears EFER.NXE, which the kernel's own NX mappings cannot survive.
    super::testpages::on_boot_tables(|| run_on_boot_tables(verbose))
}

fn run_on_boot_tables(verbose: bool) -> (u32, u32) {
    let (_, ebx7, _, _) = cpuid(7);
    let (_, _, _, edx_ext) = cpuid(0x8000_0001);
    if ebx7 & CPUID7_EBX_SMEP == 0 || ebx7 & CPUID7_EBX_SMAP == 0 || edx_ext & CPUID_EXT_EDX_NX == 0
    {
        kprintln!("pagematrix: the CPU lacks SMEP, SMAP or NX; cannot run");
        return (0, 1);
    }
    let leaves: &[Leaf] = if edx_ext & CPUID_EXT_EDX_PAGE1GB != 0 {
        &Leaf::ALL
    } else {
        kprintln!("pagematrix: no 1 GiB pages on this CPU; 1G cases skipped");
        &Leaf::ALL[..2]
    };
    user::map_access_stub();
    // SAFETY: single CPU; the data page belongs to this test.
    unsafe {
        write_volatile(
            PAGES.entry(T_DATA, (TARGET_OFFSET / 8) as usize),
            RET as u64,
        )
    };
    let (cr0, cr4): (u64, u64);
    // SAFETY: reading control registers has no side effects.
    unsafe {
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags));
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
    }
    // SAFETY: reading EFER.
    let efer = unsafe { rdmsr(MSR_EFER) };

    // SAFETY: single CPU; only this function touches RESULTS.
    let res = unsafe { &mut *RESULTS.0.get() };
    res.digest.fill(FNV_OFFSET);
    res.failed.fill(0);
    let (mut pass, mut total) = (0u32, 0u32);
    let mut deviations = [0u32; Deviation::ALL.len()];
    for e in 0..ENVS {
        let env = Env::new(e);
        apply_env(&env);
        let mut index = 0;
        for &leaf in leaves {
            for code in 0..leaf.configs() {
                let cfg = Config::new(leaf, code);
                let got = run_case(&cfg, &env, false);
                let want = expected(&cfg, &env);
                let dev = Deviation::ALL
                    .iter()
                    .position(|d| got != want && d.explains(&cfg, want, got));
                total += 1;
                if got == want || dev.is_some() {
                    pass += 1;
                } else {
                    res.failed[index] += 1;
                }
                if let Some(k) = dev {
                    deviations[k] += 1;
                }
                let seen = if dev.is_some() { want } else { got };
                res.digest[index] = fnv(res.digest[index], seen);
                if verbose || (got != want && dev.is_none()) {
                    print_case(&cfg, &env, got, want, dev.map(|k| Deviation::ALL[k]));
                }
                index += 1;
            }
        }
    }
    let (pk_pass, pk_total) = run_pk(leaves, &mut deviations);
    // SAFETY: restoring the boot values of the control registers; unmapping slot 3.
    unsafe {
        asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags));
        wrmsr(MSR_EFER, efer);
        write_volatile(pml4_entry(TARGET_BASE >> 39), 0);
    }
    user::unmap_access_stub();
    if !verbose {
        let mut index = 0;
        for &leaf in leaves {
            for code in 0..leaf.configs() {
                let cfg = Config::new(leaf, code);
                crate::kprint!("pagematrix ");
                print_config(&cfg);
                crate::kprint!(": {ENVS} cases digest {:016x}", res.digest[index]);
                match res.failed[index] {
                    0 => kprintln!(" ok"),
                    n => kprintln!(" {n} FAIL"),
                }
                index += 1;
            }
        }
    }
    if deviations.iter().any(|&n| n > 0) {
        crate::kprint!("pagematrix: known deviations from the SDM (counted as passed):");
        for (d, n) in Deviation::ALL.iter().zip(deviations) {
            crate::kprint!(" {} {}", d.name(), n);
        }
        kprintln!();
    }
    kprintln!("pagematrix: {} passed, {} failed", pass, total - pass);
    if pk_total > 0 {
        kprintln!(
            "pagematrix-pk: {} passed, {} failed",
            pk_pass,
            pk_total - pk_pass
        );
    }
    (pass + pk_pass, total + pk_total)
}

// ---- protection keys (SDM 4.6.2) --------------------------------------------------------

const CR4_PKE: u64 = 1 << 22;
const CR4_PKS: u64 = 1 << 24;
const MSR_PKRS: u32 = 0x6e1;
const CPUID7_ECX_PKU: u32 = 1 << 3;
const CPUID7_ECX_PKS: u32 = 1 << 31;
const PF_PK: u32 = 1 << 5;
/// The key of the leaf entry, and the key of every non-leaf entry (which must be ignored:
/// its AD and WD are always set).
const LEAF_KEY: u64 = 1;
const UPPER_KEY: u64 = 2;
const PTE_KEY_SHIFT: u64 = 59;
/// 2 CPLs x 3 kinds x WP x PKE x PKS x the leaf key's (AD, WD) in PKRU and IA32_PKRS.
const PK_ENVS: usize = 192;

/// One protection-key environment.
#[derive(Clone, Copy)]
struct PkEnv {
    user: bool,
    kind: Kind,
    wp: bool,
    pke: bool,
    pks: bool,
    /// Bit 0 AD, bit 1 WD of the leaf's key (the same in PKRU and IA32_PKRS).
    rights: u32,
}

impl PkEnv {
    fn new(mut i: usize) -> Self {
        let mut take = |n: usize| {
            let v = i % n;
            i /= n;
            v
        };
        let rights = take(4) as u32;
        let pks = take(2) == 1;
        let pke = take(2) == 1;
        let wp = take(2) == 1;
        let kind = [Kind::Read, Kind::Write, Kind::Fetch][take(3)];
        let user = take(2) == 1;
        PkEnv {
            user,
            kind,
            wp,
            pke,
            pks,
            rights,
        }
    }
    /// PKRU and IA32_PKRS: the leaf key's rights, AD|WD for the non-leaf key.
    fn register(&self) -> u32 {
        self.rights << (2 * LEAF_KEY) | 3 << (2 * UPPER_KEY)
    }
}

/// The configurations: every leaf size, a user or supervisor leaf (every upper level is
/// user and writable), writable or not.
fn pk_config(leaf: Leaf, user_page: bool, writable: bool) -> Config {
    let upper = LVL_U | LVL_W;
    let mut bits = [upper; 4];
    bits[leaf.levels() - 1] = if user_page { LVL_U } else { 0 } | if writable { LVL_W } else { 0 };
    Config { leaf, bits }
}

/// What the SDM says for a protection-key case (NXE on, SMEP and SMAP off).
fn pk_expected(cfg: &Config, env: &PkEnv) -> u32 {
    let levels = cfg.levels();
    let n = levels.len();
    let user_page = levels.iter().all(|b| b & LVL_U != 0);
    let writable = levels.iter().all(|b| b & LVL_W != 0);
    let write = env.kind == Kind::Write;
    let mut err = 0;
    if write {
        err |= PF_W;
    }
    if env.user {
        err |= PF_U;
    }
    if env.kind == Kind::Fetch {
        err |= PF_ID;
    }
    let allowed = match (env.kind, env.user) {
        (Kind::Fetch, true) | (Kind::Read, true) => user_page,
        (Kind::Write, true) => user_page && writable,
        (Kind::Fetch, false) | (Kind::Read, false) => true,
        (Kind::Write, false) => writable || !env.wp,
    };
    // 4.6.2: data accesses only; the key of a user page is checked with CR4.PKE, of a
    // supervisor page (by a supervisor access) with CR4.PKS; AD denies, WD denies writes
    // from user mode or with CR0.WP. 4.7: PK reports a key violation whatever else also
    // denies the access.
    let checked = env.kind != Kind::Fetch
        && if user_page {
            env.pke
        } else {
            env.pks && !env.user
        };
    let pk =
        checked && (env.rights & 1 != 0 || (env.rights & 2 != 0 && write && (env.user || env.wp)));
    let upper_a = (1u32 << (n - 1)) - 1;
    if !allowed || pk {
        let pk_bit = if pk { PF_PK } else { 0 };
        return OUT_FAULT | (err | PF_P | pk_bit) << 8 | upper_a;
    }
    let mut out = upper_a | 1 << (n - 1);
    if write {
        out |= OUT_D;
    }
    out
}

/// Set the protection-key state of `env`: PKRU (written with CR4.PKE set, so that it is
/// in place when CR4.PKE is then cleared), IA32_PKRS, CR4.PKE/PKS, and CR0.WP.
fn apply_pk_env(env: &PkEnv) {
    apply_env(&Env {
        user: env.user,
        kind: env.kind,
        wp: env.wp,
        smep: false,
        smap: false,
        ac: false,
        nxe: true,
    });
    set_pk_registers(env.register(), env.pke, env.pks);
}

fn set_pk_registers(value: u32, pke: bool, pks: bool) {
    // SAFETY: the kernel's own pages and the user stub's have key 0, whose rights stay 0.
    unsafe {
        let mut cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
        cr4 |= CR4_PKE;
        asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags));
        // WRPKRU
        asm!(".byte 0x0f, 0x01, 0xef", in("eax") value, in("ecx") 0u32, in("edx") 0u32,
            options(nostack, preserves_flags));
        wrmsr(MSR_PKRS, value as u64);
        cr4 = set(set(cr4, CR4_PKE, pke), CR4_PKS, pks);
        asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags));
    }
}

/// Put the keys into the entries `map_target` just wrote.
fn set_keys(cfg: &Config) {
    let n = cfg.leaf.levels();
    // SAFETY: single CPU; slot 3 and the T_* tables are used by nothing else.
    unsafe {
        let entries = [
            pml4_entry(TARGET_BASE >> 39),
            PAGES.entry(T_PDPT, 0),
            PAGES.entry(T_PD, 0),
            PAGES.entry(T_PT, 0),
        ];
        for (i, e) in entries.iter().enumerate().take(n) {
            let key = if i == n - 1 { LEAF_KEY } else { UPPER_KEY };
            let v = read_volatile(*e) & !(0xf << PTE_KEY_SHIFT);
            write_volatile(*e, v | key << PTE_KEY_SHIFT);
        }
    }
}

/// The protection-key matrix, when the CPU has PKU and PKS; returns (passed, total) and
/// prints one line per configuration, as the main matrix does.
fn run_pk(leaves: &[Leaf], deviations: &mut [u32]) -> (u32, u32) {
    let (_, _, ecx7, _) = cpuid(7);
    if ecx7 & CPUID7_ECX_PKU == 0 || ecx7 & CPUID7_ECX_PKS == 0 {
        kprintln!("pagematrix-pk: the CPU lacks PKU or PKS; skipped");
        return (0, 0);
    }
    let mut configs = [(Leaf::K4, false, false); 12];
    let mut nc = 0;
    for &leaf in leaves {
        for user_page in [false, true] {
            for writable in [false, true] {
                configs[nc] = (leaf, user_page, writable);
                nc += 1;
            }
        }
    }
    let mut digest = [FNV_OFFSET; 12];
    let mut failed = [0u32; 12];
    let (mut pass, mut total) = (0u32, 0u32);
    for e in 0..PK_ENVS {
        let env = PkEnv::new(e);
        apply_pk_env(&env);
        for (k, &(leaf, user_page, writable)) in configs[..nc].iter().enumerate() {
            let cfg = pk_config(leaf, user_page, writable);
            let env_plain = Env {
                user: env.user,
                kind: env.kind,
                wp: env.wp,
                smep: false,
                smap: false,
                ac: false,
                nxe: true,
            };
            let got = run_case(&cfg, &env_plain, true);
            let want = pk_expected(&cfg, &env);
            let dev = Deviation::ALL
                .iter()
                .position(|d| got != want && d.explains(&cfg, want, got));
            total += 1;
            if got == want || dev.is_some() {
                pass += 1;
            } else {
                failed[k] += 1;
                crate::kprint!("pagematrix-pk ");
                print_config(&cfg);
                crate::kprint!(
                    " | cpl{} {} wp={} pke={} pks={} ad={} wd={}: ",
                    if env.user { 3 } else { 0 },
                    match env.kind {
                        Kind::Read => "read",
                        Kind::Write => "write",
                        Kind::Fetch => "fetch",
                    },
                    env.wp as u8,
                    env.pke as u8,
                    env.pks as u8,
                    env.rights & 1,
                    env.rights >> 1
                );
                print_out(got, cfg.leaf.levels());
                crate::kprint!(" FAIL (expected ");
                print_out(want, cfg.leaf.levels());
                kprintln!(")");
            }
            if let Some(d) = dev {
                deviations[d] += 1;
            }
            let seen = if dev.is_some() { want } else { got };
            digest[k] = fnv(digest[k], seen);
        }
    }
    set_pk_registers(0, false, false);
    for k in 0..nc {
        let (leaf, user_page, writable) = configs[k];
        crate::kprint!("pagematrix-pk ");
        print_config(&pk_config(leaf, user_page, writable));
        crate::kprint!(": {PK_ENVS} cases digest {:016x}", digest[k]);
        match failed[k] {
            0 => kprintln!(" ok"),
            n => kprintln!(" {n} FAIL"),
        }
    }
    (pass, total)
}
