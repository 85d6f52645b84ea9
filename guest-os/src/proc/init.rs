//! Starting the first process (`rdinit=`), as Linux's `run_init_process` does.
//!
//! `rdinit=PATH` names the program in the initramfs. If PATH is not an ELF file it is the
//! runner's control file (`vmscope run`): its text is the program's path, and the files
//! `argv` and `envp` next to it hold NUL-terminated strings, which avoids quoting arguments
//! on the kernel command line. Otherwise argv is `[PATH]` plus the words after `--` on the
//! command line, and the environment is `HOME=/ TERM=linux` as Linux gives init.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{exec, set_current, Task};
use crate::arch::x86_64::{gdt, syscall};
use crate::syscall::errno::Errno;

fn split_nul(data: &[u8]) -> Vec<Vec<u8>> {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| s.to_vec())
        .collect()
}

/// Resolve what to run: (path, argv, envp).
/// What init runs: path, argv, envp.
type Plan = (Vec<u8>, Vec<Vec<u8>>, Vec<Vec<u8>>);

fn plan(rdinit: &[u8], cmdline: &[u8]) -> Result<Plan, Errno> {
    let data = crate::fs::read_file(rdinit)?;
    if data.starts_with(b"\x7fELF") {
        let mut argv = alloc::vec![rdinit.to_vec()];
        if let Some(pos) = cmdline.windows(4).position(|w| w == b" -- ") {
            argv.extend(
                cmdline[pos + 4..]
                    .split(|&b| b == b' ')
                    .filter(|w| !w.is_empty())
                    .map(|w| w.to_vec()),
            );
        }
        return Ok((
            rdinit.to_vec(),
            argv,
            alloc::vec![b"HOME=/".to_vec(), b"TERM=linux".to_vec()],
        ));
    }
    let dir = match rdinit.iter().rposition(|&b| b == b'/') {
        Some(i) => &rdinit[..=i],
        None => b"/".as_slice(),
    };
    let path: Vec<u8> = data
        .iter()
        .copied()
        .take_while(|&b| b != b'\n' && b != 0)
        .collect();
    let file = |name: &str| {
        let mut p = dir.to_vec();
        p.extend_from_slice(name.as_bytes());
        crate::fs::read_file(&p)
            .map(|d| split_nul(&d))
            .unwrap_or_default()
    };
    let mut argv = file("argv");
    if argv.is_empty() {
        argv.push(path.clone());
    }
    Ok((path, argv, file("envp")))
}

/// Run `rdinit=` from the command line, if given; never returns then.
pub fn run_from_cmdline(cmdline: &[u8]) {
    let Some(rdinit) = crate::cmdline::param(cmdline, "rdinit") else {
        return;
    };
    let (path, argv, envp) = match plan(rdinit, cmdline) {
        Ok(p) => p,
        Err(e) => panic!(
            "No working init found: rdinit={} ({:?})",
            core::str::from_utf8(rdinit).unwrap_or("?"),
            e
        ),
    };
    let pid = super::sched::alloc_pid();
    let Some(task) = Task::new(pid, 0) else {
        panic!("init: no memory for a task");
    };
    let task: &'static Task = Box::leak(task);
    super::sched::register(task);
    set_current(task);
    super::cputime::start(task, super::timer::now_ns());
    // The first process's registers: the initial FPU state.
    crate::arch::x86_64::fpu::restore(&task.fpu.lock());
    super::sched::set_fpu_owner(task);
    crate::trace::switch(0, Some(task));
    let args = exec::ArgSource::Kernel {
        argv: &argv,
        envp: &envp,
    };
    let img = exec::load_path(&path, args);
    let img = match img {
        Ok(i) => i,
        Err(e) => panic!(
            "init: exec {} failed: {:?}",
            core::str::from_utf8(&path).unwrap_or("?"),
            e
        ),
    };
    task.set_comm(&path);
    task.set_exe(&img.exe);
    *task.cmdline.lock() = img.cmdline;
    crate::trace::exec(task, &path, img.entry, img.load_bias);
    img.mm.activate();
    crate::mm::rmap::attach(img.mm.anon_id, task.pid);
    *task.mm().lock() = Some(img.mm);
    if crate::cmdline::has_flag(cmdline, "rmap_check") {
        crate::mm::rmap::CHECK.store(true, core::sync::atomic::Ordering::Relaxed);
    }
    syscall::init(task.kstack.top());
    gdt::set_rsp0(task.kstack.top());
    super::sched::start_tick();
    // SAFETY: the new address space maps the entry point and the initial stack.
    unsafe { syscall::enter_user(img.entry, img.rsp) }
}
