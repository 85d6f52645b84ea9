//! execve: replace a task's address space with a static ELF program (`fs/binfmt_elf.c`).
//!
//! Static ET_EXEC and static-PIE ET_DYN (loaded at [`ELF_ET_DYN_BASE`]) are supported; a
//! PT_INTERP (dynamic linking) or anything malformed gives -ENOEXEC. Each PT_LOAD becomes a
//! private file mapping of its file pages plus, past `p_filesz`, anonymous zero pages (the
//! bss); the tail of the last file page is cleared, as Linux's `padzero` does. The break
//! starts right after the highest segment, the stack is a growing-down mapping below
//! [`STACK_TOP`], and the initial stack holds argv, envp and the auxiliary vector.

use alloc::boxed::Box;
use alloc::vec::Vec;

use goblin::elf::header::{EM_X86_64, ET_DYN, ET_EXEC};
use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_INTERP, PT_LOAD};
use goblin::elf::Elf;

use super::stack::{self, AuxInfo};
use crate::mm::mm_struct::{Mm, Prot, STACK_RLIMIT};
use crate::syscall::errno::{Errno, E2BIG, ENOEXEC, ENOMEM};
use mm_core::vma::MmapLayout;

/// Top of the initial stack (the end of user space, no randomisation).
pub const STACK_TOP: u64 = crate::mm::uaccess::TASK_SIZE;
/// Where a static PIE is loaded (Linux's `ELF_ET_DYN_BASE`: 2/3 of TASK_SIZE, page aligned).
pub const ELF_ET_DYN_BASE: u64 = (crate::mm::uaccess::TASK_SIZE / 3 * 2) & !0xfff;
/// Total bytes of argv + envp strings allowed (Linux: a quarter of the stack rlimit; we use
/// the 128 KiB of the historic MAX_ARG_PAGES).
pub const MAX_ARG_STRLEN_TOTAL: usize = 128 << 10;
/// Initial size of the stack mapping (it grows down on demand).
const STACK_INITIAL: u64 = 128 << 10;

const PAGE: u64 = 4096;

fn page_down(a: u64) -> u64 {
    a & !(PAGE - 1)
}

fn page_up(a: u64) -> u64 {
    (a + PAGE - 1) & !(PAGE - 1)
}

/// The new image: its address space, entry point and initial stack pointer.
pub struct Image {
    pub mm: Box<Mm>,
    pub entry: u64,
    pub rsp: u64,
    /// How far an ET_DYN image was moved from its link addresses (0 for ET_EXEC).
    pub load_bias: u64,
}

/// Build the address space of `file` (the executable's bytes, `file_id` naming it for
/// file-backed mappings) with `argv` and `envp`.
pub fn load(
    file: &'static [u8],
    file_id: u64,
    path: &[u8],
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
) -> Result<Image, Errno> {
    let total: usize = argv.iter().chain(envp).map(|s| s.len() + 1).sum();
    if total > MAX_ARG_STRLEN_TOTAL {
        return Err(E2BIG);
    }
    let elf = Elf::parse(file).map_err(|_| ENOEXEC)?;
    let h = &elf.header;
    if !elf.is_64 || h.e_machine != EM_X86_64 || !(h.e_type == ET_EXEC || h.e_type == ET_DYN) {
        return Err(ENOEXEC);
    }
    if elf.program_headers.iter().any(|p| p.p_type == PT_INTERP) {
        return Err(ENOEXEC);
    }
    let rnd = crate::mm::aslr::for_exec();
    let bias = if h.e_type == ET_DYN {
        ELF_ET_DYN_BASE + rnd.pie
    } else {
        0
    };
    let mut mm = Box::new(Mm::new().ok_or(ENOMEM)?);
    mm.layout = MmapLayout::new(crate::mm::uaccess::TASK_SIZE, STACK_RLIMIT, rnd.mmap);
    let stack_top = STACK_TOP - rnd.stack;
    let mut brk = 0u64;
    let mut phdr_addr = 0u64;
    for ph in elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
        let vaddr = ph.p_vaddr.checked_add(bias).ok_or(ENOEXEC)?;
        let filesz_end = vaddr.checked_add(ph.p_filesz).ok_or(ENOEXEC)?;
        let mem_end = vaddr.checked_add(ph.p_memsz).ok_or(ENOEXEC)?;
        let file_end = ph.p_offset.checked_add(ph.p_filesz).ok_or(ENOEXEC)?;
        if ph.p_filesz > ph.p_memsz
            || file_end > file.len() as u64
            || mem_end > crate::mm::uaccess::TASK_SIZE
            || vaddr % PAGE != ph.p_offset % PAGE
        {
            return Err(ENOEXEC);
        }
        let prot = Prot {
            read: ph.p_flags & PF_R != 0,
            write: ph.p_flags & PF_W != 0,
            exec: ph.p_flags & PF_X != 0,
        };
        let start = page_down(vaddr);
        let file_map_end = page_up(filesz_end);
        if ph.p_filesz > 0 {
            let name = core::str::from_utf8(path).unwrap_or("?");
            mm.map_file(
                start,
                file_map_end,
                prot,
                file_id,
                page_down(ph.p_offset),
                name,
            )?;
        }
        if page_up(mem_end) > file_map_end.max(start) {
            mm.map_anon(file_map_end.max(start), page_up(mem_end), prot, false)?;
        }
        // The bytes between p_filesz and the end of its page are bss, not file data.
        if ph.p_memsz > ph.p_filesz && filesz_end % PAGE != 0 {
            let zeros = alloc::vec![0u8; (PAGE - filesz_end % PAGE) as usize];
            mm.write_user(filesz_end, &zeros)?;
        }
        if ph.p_offset <= h.e_phoff && h.e_phoff < file_end {
            phdr_addr = vaddr + (h.e_phoff - ph.p_offset);
        }
        brk = brk.max(page_up(mem_end));
    }
    mm.set_brk_start(brk + rnd.brk);
    mm.map_anon(
        stack_top - STACK_INITIAL,
        stack_top,
        Prot {
            read: true,
            write: true,
            exec: false,
        },
        true,
    )?;
    let vdso = if super::vdso::init() {
        mm.map_vdso().ok()
    } else {
        None
    };
    let aux = AuxInfo {
        phdr: phdr_addr,
        phent: h.e_phentsize as u64,
        phnum: h.e_phnum as u64,
        entry: h.e_entry + bias,
        hwcap: cpuid_hwcap(),
        sysinfo_ehdr: vdso,
    };
    let img = stack::build(stack_top, path, argv, envp, &aux);
    if img.bytes.len() as u64 > STACK_INITIAL {
        return Err(E2BIG);
    }
    mm.write_user(img.rsp, &img.bytes)?;
    mm.set_stack_start(img.rsp);
    Ok(Image {
        mm,
        entry: h.e_entry + bias,
        rsp: img.rsp,
        load_bias: bias,
    })
}

/// `AT_HWCAP` on x86: CPUID.1:EDX.
fn cpuid_hwcap() -> u64 {
    core::arch::x86_64::__cpuid(1).edx as u64
}
