//! The page walker: 4-level IA-32e paging (SDM Vol. 3A, 4.5) with 4 KiB, 2 MiB and 1 GiB
//! pages, reserved-bit checks, the permission rules of 4.6 (U/S, R/W, NX, CR0.WP, SMEP,
//! SMAP with RFLAGS.AC, protection keys of 4.6.2: PKU with PKRU for user-mode pages and PKS
//! with IA32_PKRS for supervisor-mode pages) and accessed/dirty updates (4.8). It owns no state: the CPU hands it
//! the control registers and guest memory; the TLB (tlb.rs) sits in front of it.

use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::memory::GuestMemory;

/// Page-table entry bits (SDM Vol. 3A, Tables 4-15 to 4-20).
pub mod pte {
    pub const P: u64 = 1 << 0;
    pub const RW: u64 = 1 << 1;
    pub const US: u64 = 1 << 2;
    pub const PWT: u64 = 1 << 3;
    pub const PCD: u64 = 1 << 4;
    pub const A: u64 = 1 << 5;
    pub const D: u64 = 1 << 6;
    /// Page size (in PDPTE and PDE); PAT in a 4 KiB PTE.
    pub const PS: u64 = 1 << 7;
    pub const G: u64 = 1 << 8;
    /// PAT bit of a 2 MiB / 1 GiB leaf.
    pub const PAT_LARGE: u64 = 1 << 12;
    pub const NX: u64 = 1 << 63;
    /// Protection key of a leaf entry, bits 62:59 (ignored in non-leaf entries).
    pub const PKEY_SHIFT: u32 = 59;
}

/// #PF error code bits (SDM Vol. 3A, Figure 4-12).
pub mod pf_err {
    pub const P: u32 = 1 << 0;
    pub const W: u32 = 1 << 1;
    pub const U: u32 = 1 << 2;
    pub const RSVD: u32 = 1 << 3;
    pub const ID: u32 = 1 << 4;
    pub const PK: u32 = 1 << 5;
}

/// Physical-address width this CPU reports in CPUID 0x80000008 (QEMU's TCG default).
pub const MAXPHYADDR: u32 = 40;
/// Bits 12..MAXPHYADDR-1 of an entry: the address of the next table or page.
pub const ADDR_MASK: u64 = ((1u64 << MAXPHYADDR) - 1) & !0xfff;
/// Bits MAXPHYADDR..51 must be zero in every entry.
const RSVD_HIGH: u64 = ((1u64 << 52) - 1) & !((1u64 << MAXPHYADDR) - 1);

/// What kind of access asks for a translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    Read,
    Write,
    Fetch,
}

/// One memory access, as the permission rules need to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub kind: AccessKind,
    /// A user-mode access: CPL 3 and not an implicit supervisor access.
    pub user: bool,
    /// Implicit supervisor access (GDT/IDT/TSS reads, pushes during delivery): SMAP applies
    /// regardless of RFLAGS.AC.
    pub implicit_supervisor: bool,
}

impl Access {
    pub const fn new(kind: AccessKind, user: bool) -> Self {
        Access {
            kind,
            user,
            implicit_supervisor: false,
        }
    }
    pub const fn implicit(kind: AccessKind) -> Self {
        Access {
            kind,
            user: false,
            implicit_supervisor: true,
        }
    }
}

/// The paging-relevant control state, captured from the CPU for one walk.
#[derive(Debug, Clone, Copy)]
pub struct PagingMode {
    pub cr3: u64,
    pub wp: bool,
    pub nxe: bool,
    pub smep: bool,
    pub smap: bool,
    /// RFLAGS.AC (only relevant with SMAP and CPL < 3).
    pub ac: bool,
    pub pge: bool,
    /// CR4.PKE: protection keys for user-mode pages, rights in `pkru`.
    pub pke: bool,
    /// CR4.PKS: protection keys for supervisor-mode pages, rights in `pkrs`.
    pub pks: bool,
    /// PKRU: for key i, bit 2i access-disable (AD), bit 2i+1 write-disable (WD).
    pub pkru: u32,
    /// IA32_PKRS (bits 31:0), laid out as PKRU.
    pub pkrs: u32,
}

/// A successful translation with the combined rights of all levels, for the TLB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// Physical address of the 4 KiB frame containing the linear address.
    pub frame: GuestPhysAddr,
    /// log2 of the page size (12, 21 or 30).
    pub page_shift: u8,
    pub writable: bool,
    pub user: bool,
    pub nx: bool,
    pub global: bool,
    pub dirty: bool,
    /// Protection key of the leaf entry (bits 62:59).
    pub pkey: u8,
}

impl Translation {
    pub fn phys(&self, va: GuestVirtAddr) -> GuestPhysAddr {
        self.frame.add(va.page_offset())
    }
}

/// Why a walk failed: the #PF error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFault {
    pub error_code: u32,
}

/// Error-code bits describing the access itself (W/R, U/S, I/D).
pub fn access_error_bits(acc: Access, mode: &PagingMode) -> u32 {
    let mut e = 0;
    if acc.kind == AccessKind::Write {
        e |= pf_err::W;
    }
    if acc.user {
        e |= pf_err::U;
    }
    if acc.kind == AccessKind::Fetch && (mode.nxe || mode.smep) {
        e |= pf_err::ID;
    }
    e
}

/// The AD/WD bits (bit 0 AD, bit 1 WD) that govern data accesses to the page of `t`: those
/// of its key in PKRU for a user-mode page with CR4.PKE=1, in IA32_PKRS for a
/// supervisor-mode page with CR4.PKS=1, else 0 (SDM 4.6.2). Only explicit 4-level paging
/// reaches here (IA-32e mode), where protection keys exist.
#[inline]
pub fn pkey_rights(t: &Translation, mode: &PagingMode) -> u32 {
    let reg = if t.user {
        if !mode.pke {
            return 0;
        }
        mode.pkru
    } else {
        if !mode.pks {
            return 0;
        }
        mode.pkrs
    };
    (reg >> (2 * (t.pkey as u32 & 0xf))) & 3
}

/// Whether the protection key of `t` denies access `acc` (SDM 4.6.2): never an instruction
/// fetch; AD denies every data access; WD denies a write from user mode, or from supervisor
/// mode with CR0.WP=1. A user-mode access to a supervisor-mode page is not a key matter
/// (it faults on U/S alone, without PK), as in QEMU.
#[inline]
pub fn pkey_denied(t: &Translation, acc: Access, mode: &PagingMode) -> bool {
    if acc.kind == AccessKind::Fetch || (acc.user && !t.user) {
        return false;
    }
    let r = pkey_rights(t, mode);
    if r == 0 {
        return false;
    }
    r & 1 != 0 || (r & 2 != 0 && acc.kind == AccessKind::Write && (acc.user || mode.wp))
}

/// The #PF error code for access `acc` denied by the present translation `t`: P, the
/// access bits, and PK when the protection key denies it (whatever else also does, as the
/// SDM's definition of PK in 4.7 and KVM's permission_fault have it).
pub fn protection_fault_code(t: &Translation, acc: Access, mode: &PagingMode) -> u32 {
    let mut e = access_error_bits(acc, mode) | pf_err::P;
    if pkey_denied(t, acc, mode) {
        e |= pf_err::PK;
    }
    e
}

/// The permission rules of SDM 4.6 applied to combined rights, protection keys included.
/// Returns true if allowed.
#[inline]
pub fn permitted(t: &Translation, acc: Access, mode: &PagingMode) -> bool {
    permitted_by_rights(t, acc, mode) && !pkey_denied(t, acc, mode)
}

/// [`permitted`] without protection keys.
#[inline]
pub fn permitted_by_rights(t: &Translation, acc: Access, mode: &PagingMode) -> bool {
    match acc.kind {
        AccessKind::Fetch => {
            if mode.nxe && t.nx {
                return false;
            }
            if acc.user {
                t.user
            } else {
                !(mode.smep && t.user)
            }
        }
        AccessKind::Read | AccessKind::Write => {
            let write = acc.kind == AccessKind::Write;
            if acc.user {
                t.user && (!write || t.writable)
            } else {
                if t.user && mode.smap && (acc.implicit_supervisor || !mode.ac) {
                    return false;
                }
                !write || t.writable || !mode.wp
            }
        }
    }
}

/// Walk the 4-level tables for `va`. With `update` false nothing is written back (used by
/// `--tlb check` to compare without disturbing A/D bits).
///
/// Like QEMU (and permitted by SDM 4.8), accessed bits of non-leaf entries are set as the
/// walk passes them, before the final permission check; the leaf's A (and D on a write) are
/// set only when the access is allowed.
pub fn walk(
    mem: &mut GuestMemory,
    mode: &PagingMode,
    va: GuestVirtAddr,
    acc: Access,
    update: bool,
) -> Result<Translation, PageFault> {
    let acc_bits = access_error_bits(acc, mode);
    let rsvd_nx = if mode.nxe { 0 } else { pte::NX };
    let mut table = mode.cr3 & ADDR_MASK;
    let (mut writable, mut user, mut nx) = (true, true, false);
    // Levels: 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT.
    for level in (1..=4u32).rev() {
        let shift = 12 + 9 * (level - 1);
        let idx = (va.as_u64() >> shift) & 0x1ff;
        let ea = GuestPhysAddr(table + idx * 8);
        let entry = mem.read_u64(ea).unwrap_or(u64::MAX);
        if entry & pte::P == 0 {
            return Err(PageFault {
                error_code: acc_bits,
            });
        }
        let leaf = level == 1 || (level <= 3 && entry & pte::PS != 0);
        let mut rsvd = RSVD_HIGH | rsvd_nx;
        if level == 4 {
            rsvd |= pte::PS;
        }
        if leaf && level > 1 {
            // Address bits below the page size, except the PAT bit, are reserved.
            rsvd |= ((1u64 << shift) - 1) & !0xfff & !pte::PAT_LARGE;
        }
        if entry & rsvd != 0 {
            return Err(PageFault {
                error_code: acc_bits | pf_err::P | pf_err::RSVD,
            });
        }
        writable &= entry & pte::RW != 0;
        user &= entry & pte::US != 0;
        nx |= entry & pte::NX != 0;
        if !leaf {
            if update && entry & pte::A == 0 {
                mem.write(ea, 8, entry | pte::A);
            }
            table = entry & ADDR_MASK;
            continue;
        }
        let page_mask = (1u64 << shift) - 1;
        let base = entry & ADDR_MASK & !page_mask;
        let frame = GuestPhysAddr(base | (va.as_u64() & page_mask & !0xfff));
        let write = acc.kind == AccessKind::Write;
        let t = Translation {
            frame,
            page_shift: shift as u8,
            writable,
            user,
            nx,
            global: entry & pte::G != 0 && mode.pge,
            dirty: entry & pte::D != 0 || write,
            pkey: ((entry >> pte::PKEY_SHIFT) & 0xf) as u8,
        };
        if !permitted(&t, acc, mode) {
            return Err(PageFault {
                error_code: protection_fault_code(&t, acc, mode),
            });
        }
        let mut new = entry | pte::A;
        if write {
            new |= pte::D;
        }
        if update && new != entry {
            mem.write(ea, 8, new);
        }
        return Ok(t);
    }
    unreachable!("the walk returns at level 1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode() -> PagingMode {
        PagingMode {
            cr3: 0x1000,
            wp: true,
            nxe: true,
            smep: false,
            smap: false,
            ac: false,
            pge: true,
            pke: false,
            pks: false,
            pkru: 0,
            pkrs: 0,
        }
    }

    /// Map va 0x40_0000 through tables at 0x1000.. to frame 0x9000 with `leaf_flags`.
    fn setup(leaf_flags: u64) -> GuestMemory {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        let upper = pte::P | pte::RW | pte::US;
        m.write(GuestPhysAddr(0x1000), 8, 0x2000 | upper);
        m.write(GuestPhysAddr(0x2000), 8, 0x3000 | upper);
        m.write(GuestPhysAddr(0x3000 + 2 * 8), 8, 0x4000 | upper);
        m.write(GuestPhysAddr(0x4000), 8, 0x9000 | leaf_flags);
        m
    }

    #[test]
    fn translate_and_set_ad() {
        let mut m = setup(pte::P | pte::RW);
        let va = GuestVirtAddr(0x40_0123);
        let t = walk(
            &mut m,
            &mode(),
            va,
            Access::new(AccessKind::Write, false),
            true,
        )
        .unwrap();
        assert_eq!(t.phys(va), GuestPhysAddr(0x9123));
        let leaf = m.read_u64(GuestPhysAddr(0x4000)).unwrap();
        assert_eq!(leaf & (pte::A | pte::D), pte::A | pte::D);
        assert_ne!(m.read_u64(GuestPhysAddr(0x1000)).unwrap() & pte::A, 0);
    }

    #[test]
    fn user_write_to_supervisor_page_faults_with_p_w_u() {
        let mut m = setup(pte::P | pte::RW);
        let e = walk(
            &mut m,
            &mode(),
            GuestVirtAddr(0x40_0000),
            Access::new(AccessKind::Write, true),
            true,
        )
        .unwrap_err();
        assert_eq!(e.error_code, pf_err::P | pf_err::W | pf_err::U);
        // Leaf A not set on a faulting access.
        assert_eq!(m.read_u64(GuestPhysAddr(0x4000)).unwrap() & pte::A, 0);
    }

    #[test]
    fn nx_without_nxe_is_reserved() {
        let mut m = setup(pte::P | pte::NX);
        let mut md = mode();
        md.nxe = false;
        let e = walk(
            &mut m,
            &md,
            GuestVirtAddr(0x40_0000),
            Access::new(AccessKind::Read, false),
            true,
        )
        .unwrap_err();
        assert_eq!(e.error_code, pf_err::P | pf_err::RSVD);
    }

    #[test]
    fn not_present_fetch_sets_id() {
        let mut m = setup(0);
        let e = walk(
            &mut m,
            &mode(),
            GuestVirtAddr(0x40_0000),
            Access::new(AccessKind::Fetch, true),
            true,
        )
        .unwrap_err();
        assert_eq!(e.error_code, pf_err::U | pf_err::ID);
    }

    fn pk_mode(pke: bool, pks: bool, pkru: u32, pkrs: u32, wp: bool) -> PagingMode {
        PagingMode {
            pke,
            pks,
            pkru,
            pkrs,
            wp,
            ..mode()
        }
    }

    /// A leaf with key 3 (non-leaf entries key 0): PKRU governs user pages, IA32_PKRS
    /// supervisor pages; AD denies reads and writes, WD writes (supervisor ones only with
    /// CR0.WP); fetches are never checked; the error code carries PK.
    #[test]
    fn protection_keys_follow_4_6_2() {
        const KEY: u64 = 3 << pte::PKEY_SHIFT;
        let ad = 1u32 << 6;
        let wd = 2u32 << 6;
        let va = GuestVirtAddr(0x40_0000);
        let r = |u| Access::new(AccessKind::Read, u);
        let w = |u| Access::new(AccessKind::Write, u);
        let f = |u| Access::new(AccessKind::Fetch, u);
        let user_page = pte::P | pte::RW | pte::US | KEY;
        let sup_page = pte::P | pte::RW | KEY;
        let run = |leaf: u64, md: &PagingMode, acc: Access| {
            let mut m = setup(leaf);
            walk(&mut m, md, va, acc, true).map(|t| t.pkey)
        };
        // The key is the leaf's.
        assert_eq!(run(user_page, &mode(), r(true)), Ok(3));
        // PKE off: PKRU ignored.
        assert!(run(user_page, &pk_mode(false, true, ad, 0, true), r(true)).is_ok());
        let pku_ad = pk_mode(true, false, ad, 0, true);
        let pk = pf_err::P | pf_err::PK;
        assert_eq!(
            run(user_page, &pku_ad, r(true)).unwrap_err().error_code,
            pk | pf_err::U
        );
        assert_eq!(
            run(user_page, &pku_ad, r(false)).unwrap_err().error_code,
            pk
        );
        assert_eq!(
            run(user_page, &pku_ad, w(false)).unwrap_err().error_code,
            pk | pf_err::W
        );
        assert!(run(user_page, &pku_ad, f(true)).is_ok());
        // Only key 3's bits matter.
        assert!(run(
            user_page,
            &pk_mode(true, false, !(3 << 6), 0, true),
            w(true)
        )
        .is_ok());
        // WD: user writes always, supervisor writes with WP only.
        let wd1 = pk_mode(true, false, wd, 0, true);
        let wd0 = pk_mode(true, false, wd, 0, false);
        assert!(run(user_page, &wd1, r(true)).is_ok());
        assert_eq!(
            run(user_page, &wd0, w(true)).unwrap_err().error_code,
            pk | pf_err::W | pf_err::U
        );
        assert_eq!(
            run(user_page, &wd1, w(false)).unwrap_err().error_code,
            pk | pf_err::W
        );
        assert!(run(user_page, &wd0, w(false)).is_ok());
        // PK is reported together with other violations (a read-only user page).
        let ro = (user_page & !pte::RW) | KEY;
        assert_eq!(
            run(ro, &wd1, w(true)).unwrap_err().error_code,
            pk | pf_err::W | pf_err::U
        );
        assert_eq!(
            run(ro, &mode(), w(true)).unwrap_err().error_code,
            pf_err::P | pf_err::W | pf_err::U
        );
        // PKRU does not govern supervisor pages, nor PKRS user pages.
        assert!(run(sup_page, &pku_ad, w(false)).is_ok());
        let pks_ad = pk_mode(false, true, 0, ad, true);
        assert!(run(user_page, &pks_ad, w(true)).is_ok());
        assert_eq!(run(sup_page, &pks_ad, r(false)).unwrap_err().error_code, pk);
        assert!(run(sup_page, &pks_ad, f(false)).is_ok());
        // A user access to a supervisor page faults on U/S, without PK.
        assert_eq!(
            run(sup_page, &pks_ad, r(true)).unwrap_err().error_code,
            pf_err::P | pf_err::U
        );
        let pks_wd1 = pk_mode(false, true, 0, wd, true);
        let pks_wd0 = pk_mode(false, true, 0, wd, false);
        assert_eq!(
            run(sup_page, &pks_wd1, w(false)).unwrap_err().error_code,
            pk | pf_err::W
        );
        assert!(run(sup_page, &pks_wd0, w(false)).is_ok());
        assert!(run(sup_page, &pks_wd1, r(false)).is_ok());
        // A faulting access leaves the leaf's A clear.
        let mut m = setup(user_page);
        assert!(walk(&mut m, &pku_ad, va, r(true), true).is_err());
        assert_eq!(m.read_u64(GuestPhysAddr(0x4000)).unwrap() & pte::A, 0);
    }

    /// Keys in non-leaf entries are ignored; a 2 MiB leaf's key counts.
    #[test]
    fn protection_key_comes_from_the_leaf_at_every_size() {
        let mut m = GuestMemory::new(1 << 20).unwrap();
        let upper = pte::P | pte::RW | pte::US | (5 << pte::PKEY_SHIFT);
        m.write(GuestPhysAddr(0x1000), 8, 0x2000 | upper);
        m.write(GuestPhysAddr(0x2000), 8, 0x3000 | upper);
        m.write(
            GuestPhysAddr(0x3000 + 2 * 8),
            8,
            0x20_0000 | pte::P | pte::RW | pte::US | pte::PS | (7 << pte::PKEY_SHIFT),
        );
        let md = PagingMode {
            pke: true,
            pkru: 3 << 10,
            ..mode()
        };
        let t = walk(
            &mut m,
            &md,
            GuestVirtAddr(0x40_1000),
            Access::new(AccessKind::Write, true),
            true,
        )
        .unwrap();
        assert_eq!((t.pkey, t.page_shift), (7, 21));
        let md = PagingMode {
            pkru: 1 << 14,
            ..md
        };
        let e = walk(
            &mut m,
            &md,
            GuestVirtAddr(0x40_1000),
            Access::new(AccessKind::Read, true),
            true,
        )
        .unwrap_err();
        assert_eq!(e.error_code, pf_err::P | pf_err::U | pf_err::PK);
    }
}
