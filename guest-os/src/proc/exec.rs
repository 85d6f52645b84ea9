//! execve: replace a task's address space with an ELF program (`fs/binfmt_elf.c`) or run a
//! `#!` script's interpreter (`fs/binfmt_script.c`).
//!
//! ET_EXEC and ET_DYN programs are supported; an ET_DYN main program is loaded at
//! [`ELF_ET_DYN_BASE`]. A program with PT_INTERP (dynamically linked) gets its interpreter
//! (`ld.so`) mapped too, at the top of the mmap area like any mmap, and starts there, with
//! AT_BASE naming it and AT_ENTRY the program's own entry. A file starting with `#!` runs
//! the interpreter its first line names, with argv `[interpreter, optional argument,
//! script path, argv[1..]]`; interpreters may be scripts themselves, up to
//! [`BINPRM_MAX_RECURSION`] levels (then ELOOP). Anything malformed gives -ENOEXEC. Each PT_LOAD becomes a
//! private file mapping of its file pages plus, past `p_filesz`, anonymous zero pages (the
//! bss); the tail of the last file page is cleared, as Linux's `padzero` does. The break
//! starts right after the highest segment, the stack is a growing-down mapping below
//! [`STACK_TOP`], and the initial stack holds argv, envp and the auxiliary vector.

use alloc::boxed::Box;
use alloc::vec::Vec;

use goblin::elf::header::header64::SIZEOF_EHDR;
use goblin::elf::header::{Header, EI_CLASS, ELFCLASS64};
use goblin::elf::header::{EM_X86_64, ET_DYN, ET_EXEC};
use goblin::elf::program_header::ProgramHeader;
use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_INTERP, PT_LOAD};

use core::sync::atomic::Ordering;

use super::stack::{self, AuxInfo, Layout};
use super::{current, signal};
use crate::arch::x86_64::idt::TrapFrame;
use crate::fs::file::MapTarget;
use crate::fs::inode::Inode;
use crate::mm::mm_struct::{stack_rlimit, Mm, Prot};
use crate::mm::uaccess::{copy_from_user, get_user, strncpy_from_user, strnlen_user};
use crate::syscall::errno::{Errno, SysResult, E2BIG, EACCES, EFAULT, ENOEXEC, ENOMEM, ESRCH};
use alloc::sync::Arc;
use mm_core::vma::MmapLayout;

/// Top of the initial stack (the end of user space, no randomisation).
pub const STACK_TOP: u64 = crate::mm::uaccess::TASK_SIZE;
/// Where a static PIE is loaded (Linux's `ELF_ET_DYN_BASE`: 2/3 of TASK_SIZE, page aligned).
pub const ELF_ET_DYN_BASE: u64 = (crate::mm::uaccess::TASK_SIZE / 3 * 2) & !0xfff;
/// Initial size of the stack mapping (it grows down on demand); larger when argv and envp
/// need more.
const STACK_INITIAL: u64 = 128 << 10;

const PAGE: u64 = 4096;

/// Linux's `MAX_ARG_STRLEN`: one argument or environment string, NUL included, takes at
/// most 32 pages; a longer one is E2BIG.
pub const MAX_ARG_STRLEN: usize = 32 * PAGE as usize;
/// Linux's `MAX_ARG_STRINGS`: the most strings argv or envp may hold.
pub const MAX_ARG_STRINGS: usize = 0x7fff_ffff;
/// Linux's `ARG_MAX`: the strings may always take 32 pages, however small the stack limit.
const ARG_MAX: u64 = 32 * PAGE;
/// Linux's `_STK_LIM` (8 MiB): the strings never take more than 3/4 of it.
const STK_LIM: u64 = 8 << 20;
/// Bytes copied per step between the old and the new address space.
const COPY_CHUNK: usize = 1024;
/// Bytes of a file's head in which a `#!` line must end (`BINPRM_BUF_SIZE`).
const BINPRM_BUF_SIZE: usize = 256;
/// Interpreter levels a `#!` chain may have before ELOOP (`BINPRM_MAX_RECURSION`: a script
/// whose interpreter is a script, and so on).
pub const BINPRM_MAX_RECURSION: usize = 4;
/// Longest PT_INTERP path, its NUL included (`PATH_MAX`).
const INTERP_PATH_MAX: u64 = 4096;

fn page_down(a: u64) -> u64 {
    a & !(PAGE - 1)
}

fn page_up(a: u64) -> u64 {
    (a + PAGE - 1) & !(PAGE - 1)
}

/// Bytes argv and envp (strings and pointers) may take with stack limit `rlim_stack`: a
/// quarter of it, at most 3/4 of `_STK_LIM`, at least `ARG_MAX` (`bprm_stack_limits`).
/// 2 MiB with the default 8 MiB limit.
pub fn arg_limit(rlim_stack: u64) -> u64 {
    (STK_LIM / 4 * 3).min(rlim_stack / 4).max(ARG_MAX)
}

/// Where argv and envp come from.
#[derive(Clone, Copy)]
pub enum ArgSource<'a> {
    /// Kernel copies (the first process, from the initramfs).
    Kernel {
        argv: &'a [Vec<u8>],
        envp: &'a [Vec<u8>],
    },
    /// NULL-terminated arrays of string pointers in the calling process (execve); a NULL
    /// array is empty.
    User { argv: u64, envp: u64 },
}

/// argv as exec builds it: `prefix` (for a `#!` script: the interpreter, its optional
/// argument and the script's path) in front of the caller's argv from index `skip` on
/// (`remove_arg_zero` drops the caller's argv[0]); envp is the caller's.
#[derive(Clone, Copy)]
pub struct Argv<'a> {
    pub src: ArgSource<'a>,
    pub prefix: &'a [Vec<u8>],
    pub skip: usize,
}

impl<'a> From<ArgSource<'a>> for Argv<'a> {
    fn from(src: ArgSource<'a>) -> Self {
        Argv {
            src,
            prefix: &[],
            skip: 0,
        }
    }
}

/// One list of strings to copy to the new stack.
#[derive(Clone, Copy)]
enum StrList<'a> {
    Kernel(&'a [Vec<u8>]),
    /// `count` pointers of the user array at `arr`.
    User {
        arr: u64,
        count: usize,
    },
}

/// The sizes of argv and envp: string counts and bytes (NULs included).
#[derive(Debug, Default, Clone, Copy)]
struct ArgSizes {
    argc: usize,
    envc: usize,
    argv_bytes: usize,
    envp_bytes: usize,
}

/// Number of pointers before the NULL in the user array `arr`; E2BIG once they alone would
/// exceed `limit` bytes (Linux's `count`).
fn count_user(arr: u64, limit: u64) -> Result<usize, Errno> {
    if arr == 0 {
        return Ok(0);
    }
    let mut n = 0usize;
    loop {
        let at = arr.checked_add(n as u64 * 8).ok_or(EFAULT)?;
        let p: u64 = get_user(at)?;
        if p == 0 {
            return Ok(n);
        }
        n += 1;
        if n >= MAX_ARG_STRINGS || n as u64 * 8 > limit {
            return Err(E2BIG);
        }
    }
}

/// Bytes (NULs included) of the `n` strings of user array `arr`, refusing a string over
/// `MAX_ARG_STRLEN` and a total over `budget` with E2BIG.
fn measure_user(arr: u64, n: usize, budget: u64) -> Result<usize, Errno> {
    let mut total = 0u64;
    for i in 0..n {
        let p: u64 = get_user(arr + i as u64 * 8)?;
        let len = strnlen_user(p, MAX_ARG_STRLEN)?;
        total += len as u64;
        if len > MAX_ARG_STRLEN || total > budget {
            return Err(E2BIG);
        }
    }
    Ok(total as usize)
}

/// Bytes (NULs included) of kernel strings, with the same limits as [`measure_user`].
fn measure_kernel(list: &[Vec<u8>], budget: u64) -> Result<usize, Errno> {
    let mut total = 0u64;
    for s in list {
        let len = s.len() + 1;
        total += len as u64;
        if len > MAX_ARG_STRLEN || total > budget {
            return Err(E2BIG);
        }
    }
    Ok(total as usize)
}

/// Count and measure argv and envp against the limits of `bprm_stack_limits` and
/// `copy_strings`: each string at most `MAX_ARG_STRLEN`, and the path, the strings and
/// the pointer arrays together within [`arg_limit`]. Reads only what it must: it stops at
/// the first string past the limit.
fn measure(args: Argv, path_len: usize) -> Result<ArgSizes, Errno> {
    let limit = arg_limit(stack_rlimit());
    let (src_argc, envc) = match args.src {
        ArgSource::Kernel { argv, envp } => (argv.len(), envp.len()),
        ArgSource::User { argv, envp } => (count_user(argv, limit)?, count_user(envp, limit)?),
    };
    let skip = args.skip.min(src_argc);
    let argc = args.prefix.len() + src_argc - skip;
    let ptr_size = (argc.max(1) as u64 + envc as u64) * 8;
    if limit <= ptr_size {
        return Err(E2BIG);
    }
    // The path is copied first (`bprm->filename`) and counts against the same budget.
    let path_bytes = path_len as u64 + 1;
    if path_bytes > MAX_ARG_STRLEN as u64 || path_bytes > limit - ptr_size {
        return Err(E2BIG);
    }
    let budget = limit - ptr_size - path_bytes;
    let envp_bytes = match args.src {
        ArgSource::Kernel { envp, .. } => measure_kernel(envp, budget)?,
        ArgSource::User { envp, .. } => measure_user(envp, envc, budget)?,
    };
    let budget = budget - envp_bytes as u64;
    let prefix_bytes = measure_kernel(args.prefix, budget)?;
    let budget = budget - prefix_bytes as u64;
    let src_bytes = match args.src {
        ArgSource::Kernel { argv, .. } => measure_kernel(&argv[skip..], budget)?,
        ArgSource::User { argv, .. } => {
            measure_user(argv + skip as u64 * 8, src_argc - skip, budget)?
        }
    };
    Ok(ArgSizes {
        argc,
        envc,
        argv_bytes: prefix_bytes + src_bytes,
        envp_bytes,
    })
}

impl<'a> Argv<'a> {
    /// The lists that make up argv (`argc` strings in all, as measured) or envp.
    fn lists(&self, envp: bool, sizes: &ArgSizes) -> [StrList<'a>; 2] {
        if envp {
            let env = match self.src {
                ArgSource::Kernel { envp, .. } => StrList::Kernel(envp),
                ArgSource::User { envp, .. } => StrList::User {
                    arr: envp,
                    count: sizes.envc,
                },
            };
            return [StrList::Kernel(&[]), env];
        }
        let rest = sizes.argc - self.prefix.len();
        let src = match self.src {
            ArgSource::Kernel { argv, .. } => {
                let skip = self.skip.min(argv.len());
                StrList::Kernel(&argv[skip..skip + rest])
            }
            ArgSource::User { argv, .. } => StrList::User {
                arr: argv + self.skip as u64 * 8,
                count: rest,
            },
        };
        [StrList::Kernel(self.prefix), src]
    }
}

/// A new address space under construction: destroyed (page tables, pages and all) if
/// exec fails before it is installed, so no error path leaks it.
struct NewMm(Option<Box<Mm>>);

impl NewMm {
    fn get(&mut self) -> Result<&mut Mm, Errno> {
        self.0.as_deref_mut().ok_or(ENOMEM)
    }

    /// Hand the finished address space over to the caller.
    fn install(mut self) -> Result<Box<Mm>, Errno> {
        self.0.take().ok_or(ENOMEM)
    }
}

impl Drop for NewMm {
    fn drop(&mut self) {
        if let Some(mm) = self.0.take() {
            (*mm).destroy();
        }
    }
}

/// Buffered sequential writes into the (not yet current) new address space.
struct StackWriter {
    addr: u64,
    buf: [u8; COPY_CHUNK],
    len: usize,
}

impl StackWriter {
    fn new(addr: u64) -> StackWriter {
        StackWriter {
            addr,
            buf: [0; COPY_CHUNK],
            len: 0,
        }
    }

    fn push(&mut self, mm: &mut Mm, mut bytes: &[u8]) -> Result<(), Errno> {
        while !bytes.is_empty() {
            let n = bytes.len().min(COPY_CHUNK - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
            if self.len == COPY_CHUNK {
                self.flush(mm)?;
            }
        }
        Ok(())
    }

    fn push_word(&mut self, mm: &mut Mm, w: u64) -> Result<(), Errno> {
        self.push(mm, &w.to_le_bytes())
    }

    fn flush(&mut self, mm: &mut Mm) -> Result<(), Errno> {
        mm.write_user(self.addr, &self.buf[..self.len])?;
        self.addr += self.len as u64;
        self.len = 0;
        Ok(())
    }
}

/// Copy the strings of `lists` (envp, or argv) into the new stack through `strings`,
/// writing each one's address through `words`; a copy of argv goes to `cmdline` too. At
/// most `budget` bytes: the strings were measured, and a string that changed since is E2BIG
/// rather than a write past the layout.
fn copy_strings(
    mm: &mut Mm,
    lists: &[StrList],
    budget: usize,
    strings: &mut StackWriter,
    words: &mut StackWriter,
    mut cmdline: Option<&mut Vec<u8>>,
) -> Result<(), Errno> {
    let mut used = 0usize;
    let mut chunk = [0u8; COPY_CHUNK];
    for list in lists {
        let n = match *list {
            StrList::Kernel(l) => l.len(),
            StrList::User { count, .. } => count,
        };
        for i in 0..n {
            let at = strings.addr + strings.len as u64;
            words.push_word(mm, at)?;
            match *list {
                StrList::Kernel(l) => {
                    let s = &l[i];
                    used += s.len() + 1;
                    if used > budget {
                        return Err(E2BIG);
                    }
                    strings.push(mm, s)?;
                    strings.push(mm, &[0])?;
                    if let Some(c) = cmdline.as_deref_mut() {
                        c.extend_from_slice(s);
                        c.push(0);
                    }
                }
                StrList::User { arr, .. } => {
                    let mut p: u64 = get_user(arr + i as u64 * 8)?;
                    loop {
                        let to_page_end = (PAGE - (p & (PAGE - 1))) as usize;
                        let k = to_page_end.min(COPY_CHUNK).min(budget + 1 - used);
                        if k == 0 {
                            return Err(E2BIG);
                        }
                        copy_from_user(&mut chunk[..k], p)?;
                        let (part, done) = match chunk[..k].iter().position(|&b| b == 0) {
                            Some(z) => (&chunk[..=z], true),
                            None => (&chunk[..k], false),
                        };
                        used += part.len();
                        if used > budget {
                            return Err(E2BIG);
                        }
                        strings.push(mm, part)?;
                        if let Some(c) = cmdline.as_deref_mut() {
                            c.extend_from_slice(part);
                        }
                        if done {
                            break;
                        }
                        p += k as u64;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The new image: its address space, entry point and initial stack pointer.
pub struct Image {
    pub mm: Box<Mm>,
    pub entry: u64,
    pub rsp: u64,
    /// How far an ET_DYN image was moved from its link addresses (0 for ET_EXEC).
    pub load_bias: u64,
    /// argv as NUL-terminated strings, for /proc/PID/cmdline.
    pub cmdline: Vec<u8>,
    /// The ELF file that runs (a script's interpreter), for /proc/PID/exe.
    pub exe: Vec<u8>,
}

/// Load what `path` names with the arguments and environment of `args` (`bprm_execve`'s
/// search for a handler): `#!` lines are followed to their interpreter (binfmt_script),
/// then the ELF is loaded (binfmt_elf). The script's own path stays AT_EXECFN and names the
/// process (`comm`).
pub fn load_path(path: &[u8], args: ArgSource) -> Result<Image, Errno> {
    let mut prefix: Vec<Vec<u8>> = Vec::new();
    let mut skip = 0;
    let mut file = try_copy(path)?;
    for depth in 0..=BINPRM_MAX_RECURSION {
        let (inode, target) = open_exec(&file)?;
        let mut head = [0u8; BINPRM_BUF_SIZE];
        let n = crate::fs::read_kernel(&inode, 0, &mut head)?;
        if n >= 2 && head[..2] == *b"#!" {
            if depth == BINPRM_MAX_RECURSION {
                return Err(crate::syscall::errno::ELOOP);
            }
            let (interp, arg) = parse_shebang(&head[..n], n == BINPRM_BUF_SIZE)?;
            // argv: [interpreter, argument, this file, what followed the previous file].
            let mut p: Vec<Vec<u8>> = Vec::new();
            p.try_reserve(prefix.len() + 3).map_err(|_| ENOMEM)?;
            p.push(try_copy(interp)?);
            if let Some(a) = arg {
                p.push(try_copy(a)?);
            }
            p.push(core::mem::take(&mut file));
            if depth == 0 {
                skip = 1;
            } else {
                p.extend(prefix.drain(1..));
            }
            prefix = p;
            file = try_copy(interp)?;
            continue;
        }
        let argv = Argv {
            src: args,
            prefix: &prefix,
            skip,
        };
        return load(&inode, &target, path, &file, argv);
    }
    Err(crate::syscall::errno::ELOOP)
}

/// A copy of `b` on the kernel heap, ENOMEM if there is no room (exec runs for users).
fn try_copy(b: &[u8]) -> Result<Vec<u8>, Errno> {
    let mut v = Vec::new();
    v.try_reserve_exact(b.len()).map_err(|_| ENOMEM)?;
    v.extend_from_slice(b);
    Ok(v)
}

/// The interpreter and optional argument of a `#!` line (`load_script`): blanks (space,
/// tab) separate them, the argument is the rest of the line without trailing blanks.
/// `truncated`: the buffer was full, so a line without a newline may go on; then the
/// interpreter's name must end inside it (ENOEXEC otherwise, as Linux since 5.0).
fn parse_shebang(head: &[u8], truncated: bool) -> Result<(&[u8], Option<&[u8]>), Errno> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let body = &head[2..];
    let (line, complete) = match body.iter().position(|&b| b == b'\n') {
        Some(i) => (&body[..i], true),
        None => (body, !truncated),
    };
    let line = match line.iter().position(|b| !blank(b)) {
        Some(i) => &line[i..],
        None => return Err(ENOEXEC),
    };
    let name_end = line.iter().position(blank).unwrap_or(line.len());
    if name_end == line.len() && !complete {
        return Err(ENOEXEC);
    }
    let (interp, rest) = line.split_at(name_end);
    if interp.contains(&0) {
        return Err(ENOEXEC);
    }
    let rest = match rest.iter().position(|b| !blank(b)) {
        Some(i) => &rest[i..],
        None => &[][..],
    };
    let end = rest.iter().rposition(|b| !blank(b)).map_or(0, |i| i + 1);
    let arg = &rest[..end];
    Ok((interp, (!arg.is_empty()).then_some(arg)))
}

/// What mapping an ELF file's segments gave.
struct Mapped {
    /// The program headers' address in memory (AT_PHDR), 0 if no segment holds them.
    phdr: u64,
    /// The end of the highest segment (the break starts there).
    end: u64,
}

/// Map the PT_LOAD segments of `inode` (named `name`) with `bias` added (`elf_map` and
/// `padzero`): file pages privately, the bss past `p_filesz` as anonymous zero pages, the
/// rest of the last file page cleared.
fn map_segments(
    mm: &mut Mm,
    inode: &Inode,
    file: &MapTarget,
    name: &str,
    h: &Header,
    program_headers: &[ProgramHeader],
    bias: u64,
) -> Result<Mapped, Errno> {
    let file_len = inode.size();
    let mut out = Mapped { phdr: 0, end: 0 };
    for ph in program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
        let vaddr = ph.p_vaddr.checked_add(bias).ok_or(ENOEXEC)?;
        let filesz_end = vaddr.checked_add(ph.p_filesz).ok_or(ENOEXEC)?;
        let mem_end = vaddr.checked_add(ph.p_memsz).ok_or(ENOEXEC)?;
        let file_end = ph.p_offset.checked_add(ph.p_filesz).ok_or(ENOEXEC)?;
        if ph.p_filesz > ph.p_memsz
            || file_end > file_len
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
            mm.map_file(
                start,
                file_map_end,
                prot,
                file,
                page_down(ph.p_offset),
                name,
            )?;
        }
        if page_up(mem_end) > file_map_end.max(start) {
            mm.map_anon(file_map_end.max(start), page_up(mem_end), prot, false)?;
        }
        // The bytes between p_filesz and the end of its page are bss, not file data.
        if ph.p_memsz > ph.p_filesz && filesz_end % PAGE != 0 {
            let zeros = [0u8; PAGE as usize];
            mm.write_user(filesz_end, &zeros[..(PAGE - filesz_end % PAGE) as usize])?;
        }
        if ph.p_offset <= h.e_phoff && h.e_phoff < file_end {
            out.phdr = vaddr + (h.e_phoff - ph.p_offset);
        }
        out.end = out.end.max(page_up(mem_end));
    }
    Ok(out)
}

/// The span of an ELF file's PT_LOAD segments: (lowest page, bytes up to the highest page
/// end) (`total_mapping_size`).
fn load_span(program_headers: &[ProgramHeader]) -> Result<(u64, u64), Errno> {
    let loads = || program_headers.iter().filter(|p| p.p_type == PT_LOAD);
    let lo = loads().map(|p| page_down(p.p_vaddr)).min().ok_or(ENOEXEC)?;
    let hi = loads()
        .map(|p| p.p_vaddr.checked_add(p.p_memsz).map(page_up))
        .try_fold(0u64, |m, e| e.map(|e| m.max(e)))
        .ok_or(ENOEXEC)?;
    Ok((lo, hi.checked_sub(lo).ok_or(ENOEXEC)?))
}

/// The interpreter named by PT_INTERP (`ld.so`'s path), opened, with its headers.
struct Interp {
    inode: Arc<Inode>,
    target: MapTarget,
    path: Vec<u8>,
    header: Header,
    program_headers: Vec<ProgramHeader>,
}

/// Read and open the PT_INTERP interpreter of an ELF file (`load_elf_binary`'s first
/// loop): a NUL-terminated path of at most PATH_MAX bytes naming an executable x86-64 ELF
/// (ET_EXEC or ET_DYN) that has no interpreter of its own.
fn open_interp(inode: &Inode, ph: &ProgramHeader) -> Result<Interp, Errno> {
    if ph.p_filesz < 2 || ph.p_filesz > INTERP_PATH_MAX {
        return Err(ENOEXEC);
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(ph.p_filesz as usize)
        .map_err(|_| ENOMEM)?;
    buf.resize(ph.p_filesz as usize, 0);
    if crate::fs::read_kernel(inode, ph.p_offset, &mut buf)? != buf.len() {
        return Err(ENOEXEC);
    }
    if buf.pop() != Some(0) || buf.contains(&0) {
        return Err(ENOEXEC);
    }
    let (iinode, target) = open_exec(&buf)?;
    let (header, program_headers) = read_elf_headers(&iinode)?;
    if header.e_machine != EM_X86_64
        || !(header.e_type == ET_EXEC || header.e_type == ET_DYN)
        || program_headers.iter().any(|p| p.p_type == PT_INTERP)
    {
        return Err(ENOEXEC);
    }
    Ok(Interp {
        inode: iinode,
        target,
        path: buf,
        header,
        program_headers,
    })
}

/// Build the address space of the ELF file `inode` (`file` naming it for file-backed
/// mappings, `exe` its path) for the exec of `path`, with the arguments and environment
/// of `args`.
///
/// In Linux's order (`do_execveat_common`): the new address space first, then argv and
/// envp are counted and measured against the limits (E2BIG, EFAULT), then the ELF is
/// checked and mapped (ENOEXEC), then its interpreter if it names one, then the strings
/// are copied straight from the caller's memory to the new stack. Every error after the
/// new address space exists frees it.
fn load(
    inode: &Inode,
    file: &MapTarget,
    path: &[u8],
    exe: &[u8],
    args: Argv,
) -> Result<Image, Errno> {
    let mut new = NewMm(Some(Box::new(Mm::new().ok_or(ENOMEM)?)));
    let sizes = measure(args, path.len())?;
    let (header, program_headers) = read_elf_headers(inode)?;
    let h = &header;
    if h.e_machine != EM_X86_64 || !(h.e_type == ET_EXEC || h.e_type == ET_DYN) {
        return Err(ENOEXEC);
    }
    let interp = match program_headers.iter().find(|p| p.p_type == PT_INTERP) {
        Some(ph) => Some(open_interp(inode, ph)?),
        None => None,
    };
    let rnd = crate::mm::aslr::for_exec();
    let bias = if h.e_type == ET_DYN {
        ELF_ET_DYN_BASE + rnd.pie
    } else {
        0
    };
    let mm = new.get()?;
    mm.layout = MmapLayout::new(crate::mm::uaccess::TASK_SIZE, stack_rlimit(), rnd.mmap);
    let stack_top = STACK_TOP - rnd.stack;
    let name = core::str::from_utf8(exe).unwrap_or("?");
    let main = map_segments(mm, inode, file, name, h, &program_headers, bias)?;
    mm.set_brk_start(main.end + rnd.brk);
    // The interpreter goes where an mmap of its whole span would (`load_elf_interp`).
    let mut entry = h.e_entry + bias;
    let mut base = 0;
    if let Some(i) = &interp {
        let (lo, span) = load_span(&i.program_headers)?;
        let ibias = if i.header.e_type == ET_DYN {
            let layout = mm.layout;
            let at = mm
                .vmas
                .get_unmapped_area(
                    span,
                    crate::mm::addr::VirtAddr::new(0),
                    mm_core::vma::Placement::Anywhere,
                    &layout,
                )
                .map_err(|e| Errno(e.errno()))?;
            at.as_u64() - lo
        } else {
            0
        };
        let iname = core::str::from_utf8(&i.path).unwrap_or("?");
        map_segments(
            mm,
            &i.inode,
            &i.target,
            iname,
            &i.header,
            &i.program_headers,
            ibias,
        )?;
        entry = i.header.e_entry + ibias;
        base = ibias;
    }
    let vdso = if super::vdso::init() {
        mm.map_vdso().ok()
    } else {
        None
    };
    let aux = AuxInfo {
        phdr: main.phdr,
        phent: h.e_phentsize as u64,
        phnum: h.e_phnum as u64,
        entry: h.e_entry + bias,
        base,
        hwcap: cpuid_hwcap(),
        sysinfo_ehdr: vdso,
    };
    let strings_len = sizes.argv_bytes + sizes.envp_bytes;
    let layout = Layout::new(
        stack_top,
        path.len(),
        sizes.argc,
        sizes.envc,
        strings_len,
        stack::auxv_pairs(&aux),
    )
    .ok_or(E2BIG)?;
    let stack_size = STACK_INITIAL.max(page_up(layout.size(stack_top)));
    mm.map_anon(
        stack_top - stack_size,
        stack_top,
        Prot {
            read: true,
            write: true,
            exec: false,
        },
        true,
    )?;
    let mut cmdline = Vec::new();
    cmdline
        .try_reserve_exact(sizes.argv_bytes)
        .map_err(|_| ENOMEM)?;
    let mut strings = StackWriter::new(layout.execfn());
    let mut words = StackWriter::new(layout.rsp);
    strings.push(mm, path)?;
    strings.push(mm, &[0])?;
    words.push_word(mm, sizes.argc as u64)?;
    copy_strings(
        mm,
        &args.lists(false, &sizes),
        sizes.argv_bytes,
        &mut strings,
        &mut words,
        Some(&mut cmdline),
    )?;
    words.push_word(mm, 0)?;
    copy_strings(
        mm,
        &args.lists(true, &sizes),
        sizes.envp_bytes,
        &mut strings,
        &mut words,
        None,
    )?;
    words.push_word(mm, 0)?;
    let before = path.len() + 1 + strings_len;
    for s in stack::tail_strings() {
        strings.push(mm, s)?;
    }
    strings.flush(mm)?;
    let auxv = stack::auxv(
        &aux,
        layout.random(before),
        layout.execfn(),
        layout.platform(before),
    );
    for &(t, v) in auxv.pairs() {
        words.push_word(mm, t)?;
        words.push_word(mm, v)?;
    }
    words.flush(mm)?;
    mm.set_stack_start(layout.rsp);
    let exe_path = try_copy(exe)?;
    Ok(Image {
        mm: new.install()?,
        entry,
        rsp: layout.rsp,
        load_bias: bias,
        cmdline,
        exe: exe_path,
    })
}

/// Most bytes of program headers (`load_elf_phdrs` refuses larger tables).
const MAX_PHDRS_BYTES: usize = 65536;

/// The ELF header and program headers of `inode` (`load_elf_phdrs`): only these are read,
/// as Linux reads them; the segments are mapped from the page cache.
fn read_elf_headers(inode: &Inode) -> Result<(Header, Vec<ProgramHeader>), Errno> {
    let mut eh = [0u8; SIZEOF_EHDR];
    if crate::fs::read_kernel(inode, 0, &mut eh)? != SIZEOF_EHDR || eh[EI_CLASS] != ELFCLASS64 {
        return Err(ENOEXEC);
    }
    let header = goblin::elf::Elf::parse_header(&eh).map_err(|_| ENOEXEC)?;
    let ctx = goblin::container::Ctx::new(
        goblin::container::Container::Big,
        header.endianness().map_err(|_| ENOEXEC)?,
    );
    let phsize = ProgramHeader::size(ctx);
    if header.e_phentsize as usize != phsize {
        return Err(ENOEXEC);
    }
    let bytes = phsize * header.e_phnum as usize;
    if bytes == 0 || bytes > MAX_PHDRS_BYTES {
        return Err(ENOEXEC);
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(bytes).map_err(|_| ENOMEM)?;
    buf.resize(bytes, 0);
    if crate::fs::read_kernel(inode, header.e_phoff, &mut buf)? != bytes {
        return Err(ENOEXEC);
    }
    let phdrs = ProgramHeader::parse(&buf, 0, header.e_phnum as usize, ctx).map_err(|_| ENOEXEC)?;
    Ok((header, phdrs))
}

/// What exec needs of the file it runs: the node, its inode and how mappings name it.
pub fn open_exec(path: &[u8]) -> Result<(Arc<Inode>, MapTarget), Errno> {
    let abs = crate::fs::namei::path_at(crate::fs::namei::AT_FDCWD, path)?;
    let p = match crate::fs::namei::lookup(&abs, true)? {
        crate::fs::namei::Node::Vfs(p) => p,
        crate::fs::namei::Node::Proc(_) => return Err(EACCES),
    };
    let inode = p.inode().ok_or(crate::syscall::errno::ENOENT)?;
    // `may_open` + `path_noexec`: a regular file with an execute bit.
    if !inode.is_reg() || inode.mode() & 0o111 == 0 || inode.i_mapping == 0 {
        return Err(EACCES);
    }
    let (dev_major, dev_minor) = inode.i_sb.s_dev;
    let target = MapTarget {
        id: inode.i_mapping,
        dev_major,
        dev_minor,
        ino: inode.i_ino,
        name: crate::fs::namei::d_path(&p)?,
    };
    Ok((inode, target))
}

/// `AT_HWCAP` on x86: CPUID.1:EDX.
fn cpuid_hwcap() -> u64 {
    core::arch::x86_64::__cpuid(1).edx as u64
}

/// `execve(path, argv, envp)`: on success the old image is gone and the frame starts the
/// new program; on failure the caller continues unchanged with -errno.
pub fn sys_execve(frame: &mut TrapFrame, a: &crate::syscall::Args) -> SysResult {
    let me = current().ok_or(ESRCH)?;
    let path = strncpy_from_user(a.0[0], 4096)?;
    let args = super::exec::ArgSource::User {
        argv: a.0[1],
        envp: a.0[2],
    };
    let img = load_path(&path, args)?;
    // The other threads of the group go first (`de_thread`); if a fatal signal comes
    // meanwhile, the exec fails and the signal ends the process.
    if let Err(e) = de_thread(me) {
        img.mm.destroy();
        return Err(e);
    }
    // Point of no return. The exec'ing thread's robust futexes and clear_child_tid belong
    // to the old image (`exec_mm_release`).
    super::mm_release(me);
    let leader = me.group_leader_static();
    img.mm.activate();
    // A vfork child gives the borrowed address space back (`exec_mmap`: the parent is
    // released below); an owner whose address space others borrow leaves it to them.
    let borrowed = leader.mm_borrowed();
    if borrowed {
        leader.mm_unborrow();
    } else {
        crate::mm::rmap::check(leader);
    }
    crate::mm::rmap::attach(img.mm.anon_id, leader.pid);
    let old = me.mm().lock().replace(img.mm);
    if let Some(old) = old {
        if leader.mm_borrowers.load(Ordering::Acquire) > 0 {
            super::hand_over_mm(leader, old);
        } else {
            crate::mm::rmap::detach(old.anon_id, leader.pid);
            old.destroy();
        }
    }
    let cs = frame.cs;
    let ss = frame.ss;
    let start = TrapFrame {
        rip: img.entry,
        rsp: img.rsp,
        cs,
        ss,
        rflags: 0x202,
        ..TrapFrame::default()
    };
    // The process keeps its PID: a thread other than the leader hands the new program to
    // the leader (whose exit left it a zombie) and goes.
    let runner = if me.is_leader() { me } else { leader };
    runner.set_comm(&path);
    runner.set_exe(&img.exe);
    *runner.cmdline.lock() = img.cmdline;
    crate::trace::exec(runner, &path, img.entry, img.load_bias);
    super::release_vfork(runner);
    signal::reset_on_exec(me);
    crate::fs::fdtable::close_on_exec(me);
    runner.fs_base.store(0, Ordering::Relaxed);
    // POSIX timers do not survive exec (`exit_itimers`).
    super::posix_timers::exit(leader);
    // The restartable-sequence area was in the old image (`rseq_execve`).
    me.rseq.store(0, Ordering::Relaxed);
    runner.rseq.store(0, Ordering::Relaxed);
    if !core::ptr::eq(runner, me) {
        hand_over_to_leader(me, leader, &start);
    }
    // SAFETY: clearing the user FS base for the new image.
    unsafe { crate::arch::x86_64::syscall::wrmsr(crate::arch::x86_64::syscall::MSR_FS_BASE, 0) };
    // The new program starts with the initial FPU state (`fpu_flush_thread`).
    crate::arch::x86_64::fpu::restore_init();
    *frame = start;
    Ok(0)
}

/// `de_thread`: kill every other thread of the group and wait until they are gone (the
/// leader, if it is not the caller, left a zombie). EAGAIN if the group is already exiting
/// or exec'ing, or when a fatal signal arrives while waiting.
fn de_thread(me: &'static super::Task) -> Result<(), crate::syscall::errno::Errno> {
    use crate::syscall::errno::EAGAIN;
    let leader = me.group_leader_static();
    let others_left = || {
        leader.threads.lock().iter().any(|x| !core::ptr::eq(*x, me))
            || (!me.is_leader() && leader.state.load(Ordering::Acquire) != super::state::ZOMBIE)
    };
    if !others_left() {
        return Ok(());
    }
    if leader.group_exiting.load(Ordering::Acquire)
        || leader
            .group_exec_task
            .compare_exchange(
                core::ptr::null_mut(),
                me as *const super::Task as *mut super::Task,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
    {
        return Err(EAGAIN);
    }
    super::zap_other_threads(me);
    // Each exiting peer wakes this thread (`exit_current`).
    let result = loop {
        if !others_left() {
            break Ok(());
        }
        if signal::kill_pending(me) || leader.group_exiting.load(Ordering::Acquire) {
            break Err(EAGAIN);
        }
        super::sched::sleep();
    };
    leader
        .group_exec_task
        .store(core::ptr::null_mut(), Ordering::Release);
    result
}

/// execve by a thread that is not the leader, after [`de_thread`]: as in Linux the
/// process keeps its PID, so the leader (a zombie, switched away for good: there is one
/// CPU and the kernel is not preempted) is brought back to run the new program, taking
/// the exec'ing thread's signal mask and pending signals, and this thread exits.
fn hand_over_to_leader(
    me: &'static super::Task,
    leader: &'static super::Task,
    start: &TrapFrame,
) -> ! {
    leader.threads.lock().retain(|x| !core::ptr::eq(*x, me));
    {
        let mine = me.signals.lock();
        let mut l = leader.signals.lock();
        l.actions = mine.actions;
        l.blocked = mine.blocked;
        l.pending = mine.pending;
        l.info = mine.info;
        l.sas_ss_sp = 0;
        l.sas_ss_size = 0;
        l.sas_ss_flags = 0;
    }
    *leader.fpu.lock() = crate::arch::x86_64::fpu::FpuState::init();
    leader.clear_child_tid.store(0, Ordering::Relaxed);
    leader.robust_list.store(0, Ordering::Relaxed);
    leader.exit_code.store(0, Ordering::Relaxed);
    *leader.restart_block.lock() = None;
    super::sched::prepare_child(leader, start);
    leader
        .state
        .store(super::state::RUNNABLE, Ordering::Release);
    super::sched::enqueue(leader);
    super::exit_exec_thread(me)
}
