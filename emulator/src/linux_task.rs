//! Which Linux task is running, read from the kernel's own data structures, so the fault
//! trace attributes hardware events (#PF, CR3 writes, INVLPG) of an unmodified Linux guest
//! to a PID and command name as it does for vmscope's kernel (whose annotations say so).
//!
//! How: Linux keeps the running task in the per-CPU variable `current_task` (x86-64, up to
//! 6.1; `pcpu_hot.current_task` from 6.2), read by the kernel as `%gs:current_task`. The
//! offsets come from the kernel's BTF (the `.BTF` section every Debian kernel carries,
//! CONFIG_DEBUG_INFO_BTF): the `current_task` variable's offset in the `.data..percpu`
//! datasec (the per-CPU section is linked at address 0, so its offset is the per-CPU
//! offset), and the byte offsets of `tgid`, `pid` and `comm` in `struct task_struct`.
//!
//! At an event, the per-CPU base is whichever of GS.base and IA32_KERNEL_GS_BASE holds a
//! kernel (upper-half) address: GS.base in the kernel after SWAPGS, KERNEL_GS_BASE in user
//! mode and on the entry before SWAPGS. Memory is read through the page tables of CR3 with
//! the PTI user bit (bit 12) and the PCID cleared: with page-table isolation the user
//! tables do not map task structs, and the kernel's PGD is the even page of the pair
//! (arch/x86/mm/pti.c). Nothing is written (no A/D bits); a failed read gives no task.

use crate::addr::GuestPhysAddr;
use crate::memory::GuestMemory;

/// BTF (include/uapi/linux/btf.h).
const BTF_MAGIC: u16 = 0xeb9f;
const BTF_KIND_INT: u32 = 1;
const BTF_KIND_ARRAY: u32 = 3;
const BTF_KIND_STRUCT: u32 = 4;
const BTF_KIND_UNION: u32 = 5;
const BTF_KIND_ENUM: u32 = 6;
const BTF_KIND_FUNC_PROTO: u32 = 13;
const BTF_KIND_VAR: u32 = 14;
const BTF_KIND_DATASEC: u32 = 15;
const BTF_KIND_DECL_TAG: u32 = 17;
const BTF_KIND_ENUM64: u32 = 19;
/// `btf_type` is 12 bytes: name_off, info, size/type.
const BTF_TYPE_SIZE: usize = 12;

/// `TASK_COMM_LEN`.
pub const TASK_COMM_LEN: usize = 16;
/// Physical-address bits of a page-table entry.
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;
const PTE_P: u64 = 1;
const PTE_PS: u64 = 1 << 7;
/// CR3: the PTI user-PGD bit and the PCID.
const CR3_PTI_USER: u64 = 1 << 12;
const CR3_PCID: u64 = 0xfff;
const KERNEL_HALF: u64 = 1 << 63;

/// Where the running task's identity lives, for one kernel build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxTaskLayout {
    /// Offset of `current_task` in the per-CPU area.
    pub current_task: u64,
    /// Byte offsets in `struct task_struct`.
    pub pid: u64,
    pub tgid: u64,
    pub comm: u64,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// Bytes of kind-specific data after a `btf_type` of `kind` with `vlen` entries.
fn extra_len(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        BTF_KIND_INT | BTF_KIND_VAR | BTF_KIND_DECL_TAG => 4,
        BTF_KIND_ARRAY => 12,
        BTF_KIND_STRUCT | BTF_KIND_UNION | BTF_KIND_DATASEC | BTF_KIND_ENUM64 => 12 * vlen,
        BTF_KIND_ENUM | BTF_KIND_FUNC_PROTO => 8 * vlen,
        2 | 7..=12 | 16 | 18 => 0,
        _ => return None,
    })
}

impl LinuxTaskLayout {
    /// The layout from a kernel ELF (vmlinux) with a `.BTF` section.
    pub fn from_vmlinux(elf: &[u8]) -> Result<Self, String> {
        let e = goblin::elf::Elf::parse(elf).map_err(|e| format!("not an ELF: {e}"))?;
        let sh = e
            .section_headers
            .iter()
            .find(|s| e.shdr_strtab.get_at(s.sh_name) == Some(".BTF"))
            .ok_or("no .BTF section")?;
        let start = sh.sh_offset as usize;
        let btf = start
            .checked_add(sh.sh_size as usize)
            .and_then(|end| elf.get(start..end))
            .ok_or(".BTF lies outside the file")?;
        Self::from_btf(btf)
    }

    /// The layout from raw BTF (the `.BTF` section, or /sys/kernel/btf/vmlinux).
    pub fn from_btf(btf: &[u8]) -> Result<Self, String> {
        let bad = || "malformed BTF".to_string();
        if u16_at(btf, 0) != Some(BTF_MAGIC) {
            return Err("not BTF (bad magic)".into());
        }
        let hdr_len = u32_at(btf, 4).ok_or_else(bad)? as usize;
        let field = |o: usize| u32_at(btf, 8 + o).map(|v| v as usize).ok_or_else(bad);
        let (type_off, type_len, str_off, str_len) = (field(0)?, field(4)?, field(8)?, field(12)?);
        let types = btf
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or_else(bad)?;
        let strs = btf
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or_else(bad)?;
        let name = |off: u32| -> &[u8] {
            let s = strs.get(off as usize..).unwrap_or(&[]);
            &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]
        };
        // Type IDs start at 1; remember the `current_task` VAR's ID and find the datasec
        // entry that places it, and task_struct's members.
        let (mut id, mut at) = (1u32, 0usize);
        let mut current_var = None;
        let mut percpu_entries: Vec<(u32, u64)> = Vec::new();
        let (mut pid, mut tgid, mut comm) = (None, None, None);
        while at + BTF_TYPE_SIZE <= types.len() {
            let name_off = u32_at(types, at).ok_or_else(bad)?;
            let info = u32_at(types, at + 4).ok_or_else(bad)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 != 0;
            let body = at + BTF_TYPE_SIZE;
            let len = extra_len(kind, vlen).ok_or_else(|| format!("BTF kind {kind} unknown"))?;
            match kind {
                BTF_KIND_VAR if name(name_off) == b"current_task" => current_var = Some(id),
                BTF_KIND_DATASEC if name(name_off) == b".data..percpu" => {
                    for k in 0..vlen {
                        let e = body + 12 * k;
                        let ty = u32_at(types, e).ok_or_else(bad)?;
                        let off = u32_at(types, e + 4).ok_or_else(bad)?;
                        percpu_entries.push((ty, off as u64));
                    }
                }
                BTF_KIND_STRUCT if name(name_off) == b"task_struct" && vlen > 0 => {
                    for k in 0..vlen {
                        let m = body + 12 * k;
                        let mname = u32_at(types, m).ok_or_else(bad)?;
                        let moff = u32_at(types, m + 8).ok_or_else(bad)?;
                        // With kind_flag the low 24 bits are the bit offset.
                        let bits = if kind_flag { moff & 0xff_ffff } else { moff } as u64;
                        let slot = match name(mname) {
                            b"pid" => &mut pid,
                            b"tgid" => &mut tgid,
                            b"comm" => &mut comm,
                            _ => continue,
                        };
                        *slot = Some(bits / 8);
                    }
                }
                _ => {}
            }
            at = body + len;
            id += 1;
        }
        let var = current_var.ok_or("no current_task variable in the BTF")?;
        let current_task = percpu_entries
            .iter()
            .find(|&&(ty, _)| ty == var)
            .map(|&(_, off)| off)
            .ok_or("current_task is not in .data..percpu")?;
        Ok(LinuxTaskLayout {
            current_task,
            pid: pid.ok_or("task_struct has no pid")?,
            tgid: tgid.ok_or("task_struct has no tgid")?,
            comm: comm.ok_or("task_struct has no comm")?,
        })
    }

    /// The running task's thread-group ID (the PID user space sees) and name, or `None`
    /// when the structures cannot be read (early boot, before the per-CPU areas exist).
    pub fn current(
        &self,
        mem: &GuestMemory,
        cr3: u64,
        gs_base: u64,
        kernel_gs_base: u64,
    ) -> Option<(u32, String)> {
        let percpu = [gs_base, kernel_gs_base]
            .into_iter()
            .find(|b| b & KERNEL_HALF != 0)?;
        let pgd = cr3 & PTE_ADDR & !CR3_PTI_USER & !CR3_PCID;
        let read = |va: u64, buf: &mut [u8]| -> Option<()> {
            for (i, b) in buf.iter_mut().enumerate() {
                let pa = translate(mem, pgd, va.checked_add(i as u64)?)?;
                *b = mem.read(pa, 1)? as u8;
            }
            Some(())
        };
        let mut w = [0u8; 8];
        read(percpu.checked_add(self.current_task)?, &mut w)?;
        let task = u64::from_le_bytes(w);
        if task & KERNEL_HALF == 0 {
            return None;
        }
        let mut t = [0u8; 4];
        read(task.checked_add(self.tgid)?, &mut t)?;
        let tgid = u32::from_le_bytes(t);
        let mut c = [0u8; TASK_COMM_LEN];
        read(task.checked_add(self.comm)?, &mut c)?;
        let end = c.iter().position(|&b| b == 0).unwrap_or(TASK_COMM_LEN);
        Some((tgid, String::from_utf8_lossy(&c[..end]).into_owned()))
    }
}

/// A 4-level walk of `va` from the PML4 at `pgd`, reading only (no A/D updates).
fn translate(mem: &GuestMemory, pgd: u64, va: u64) -> Option<GuestPhysAddr> {
    let mut table = pgd;
    for level in (1..=4u32).rev() {
        let shift = 12 + 9 * (level - 1);
        let e = mem.read(GuestPhysAddr(table + ((va >> shift) & 0x1ff) * 8), 8)?;
        if e & PTE_P == 0 {
            return None;
        }
        if level == 1 || (level <= 3 && e & PTE_PS != 0) {
            let size_mask = (1u64 << shift) - 1;
            return Some(GuestPhysAddr(
                (e & PTE_ADDR & !size_mask) | (va & size_mask),
            ));
        }
        table = e & PTE_ADDR;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with `current_task` (VAR, id 2) at 0x1fbc0 in .data..percpu and a
    /// task_struct whose pid, tgid and comm are at bytes 0x5a8, 0x5ac and 0x750.
    fn btf() -> Vec<u8> {
        let mut strs =
            b"\0current_task\0.data..percpu\0task_struct\0pid\0tgid\0comm\0int\0".to_vec();
        let off = |s: &str, strs: &[u8]| {
            strs.windows(s.len() + 1)
                .position(|w| &w[..s.len()] == s.as_bytes() && w[s.len()] == 0)
                .unwrap() as u32
        };
        let mut t = Vec::new();
        let mut ty = |name: u32, kind: u32, vlen: u32, size: u32, extra: &[u32]| {
            for v in [name, (kind << 24) | vlen, size].iter().chain(extra) {
                t.extend_from_slice(&v.to_le_bytes());
            }
        };
        // 1: int
        ty(off("int", &strs), BTF_KIND_INT, 0, 4, &[0x20]);
        // 2: VAR current_task
        ty(off("current_task", &strs), BTF_KIND_VAR, 0, 1, &[1]);
        // 3: task_struct (three members)
        ty(
            off("task_struct", &strs),
            BTF_KIND_STRUCT,
            3,
            0x2000,
            &[
                off("pid", &strs),
                1,
                0x5a8 * 8,
                off("tgid", &strs),
                1,
                0x5ac * 8,
                off("comm", &strs),
                1,
                0x750 * 8,
            ],
        );
        // 4: DATASEC .data..percpu with one entry (var 2).
        ty(
            off(".data..percpu", &strs),
            BTF_KIND_DATASEC,
            1,
            0x35000,
            &[2, 0x1fbc0, 8],
        );
        let mut b = Vec::new();
        b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [24u32, 0, t.len() as u32, t.len() as u32, strs.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.append(&mut strs);
        b
    }

    #[test]
    fn layout_from_btf() {
        let l = LinuxTaskLayout::from_btf(&btf()).unwrap();
        assert_eq!(
            l,
            LinuxTaskLayout {
                current_task: 0x1fbc0,
                pid: 0x5a8,
                tgid: 0x5ac,
                comm: 0x750
            }
        );
    }

    #[test]
    fn bad_btf_is_an_error_not_a_panic() {
        assert!(LinuxTaskLayout::from_btf(b"").is_err());
        assert!(LinuxTaskLayout::from_btf(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]).is_err());
        let b = btf();
        for cut in [30, 60, b.len() - 5] {
            assert!(LinuxTaskLayout::from_btf(&b[..cut]).is_err(), "cut {cut}");
        }
        assert!(LinuxTaskLayout::from_vmlinux(b"\x7fELF").is_err());
    }
}
