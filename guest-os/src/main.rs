//! vmscope guest kernel: a `no_std` x86-64 kernel booted through the Xen PVH boot protocol.
//!
//! Boot flow: the loader enters `pvh_start32` (32-bit, paging off; `arch::x86_64::boot32`),
//! which enables long mode with a boot mapping of the first 1 GiB and calls [`kernel_main`] in
//! the higher half. The kernel prints its banner, command line and memory map on COM1 and
//! exits through the isa-debug-exit device.

#![no_std]
#![no_main]

extern crate alloc;

pub mod arch;
pub mod block;
pub mod boot;
pub mod cmdline;
pub mod console;
pub mod drivers;
pub mod exit;
pub mod fs;
pub mod klog;
pub mod mm;
mod panic;
pub mod proc;
pub mod selftest;
pub mod sync;
pub mod syscall;
pub mod trace;

use boot::e820;
use boot::pvh::PvhBootInfo;
use mm::PhysAddr;

/// Rust's `alloc` (Box, Vec, BTreeMap) allocates from kmalloc.
#[global_allocator]
static ALLOCATOR: mm::slab::KernelAllocator = mm::slab::KernelAllocator;

/// Kernel version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Rust entry point, called by the boot trampoline on the higher-half kernel stack.
///
/// `start_info_phys` is the physical address of the PVH `hvm_start_info` (EBX at entry).
#[no_mangle]
pub extern "C" fn kernel_main(start_info_phys: u64) -> ! {
    drivers::uart16550::COM1.init();
    console::init_logging(console::DEFAULT_LOG_LEVEL);

    let boot_info = match PvhBootInfo::from_phys(PhysAddr::new(start_info_phys)) {
        Ok(info) => info,
        Err(err) => panic!("{}", err),
    };

    // The command line decides where the console goes, so read it before printing.
    let cmdline = boot_info.cmdline();
    if let Some(level) = console::log_level_from_cmdline(cmdline) {
        log::set_max_level(level);
    }
    console::configure(cmdline);
    cmdline::save(cmdline);
    kprintln!("vmscope kernel {} (x86_64, PVH boot)", VERSION);
    kprint!("Command line: ");
    console::write_bytes(cmdline);
    kprintln!();

    let start_info = boot_info.start_info();
    log::debug!(
        "hvm_start_info at {:#x}: version {}, flags {:#x}, rsdp {:#x}",
        start_info_phys,
        start_info.version,
        start_info.flags,
        start_info.rsdp_paddr
    );

    kprintln!("BIOS-provided physical RAM map:");
    e820::print_table("BIOS-e820", boot_info.memmap());
    let summary = e820::Summary::of(boot_info.memmap());
    kprintln!(
        "Memory: {}K usable in {} ranges, {}K reserved",
        summary.usable_bytes >> 10,
        summary.usable_ranges,
        summary.reserved_bytes >> 10
    );

    let initrd = boot_info.module(0);
    match initrd {
        Some(initrd) => {
            log::debug!("initrd at {:#x}", initrd.paddr);
            kprintln!("initrd: {} bytes", initrd.size);
        }
        None => kprintln!("initrd: none"),
    }

    arch::x86_64::init_traps();
    // The firmware leaves the 8259s at their reset vectors (IRQ 0 would arrive as vector 8,
    // looking like #DF) and QEMU's PIT ticks: remap and mask them before anything enables
    // interrupts, as Linux does early in boot.
    drivers::pic::remap_and_mask_all();
    trace::init();
    mm::aslr::init(cmdline);
    mm::init::init(&boot_info, start_info_phys, cmdline);
    mm::slab::init(cmdline);
    mm::memory::init_zero_page();
    // From here on the kernel may touch user memory only through mm::uaccess.
    let prot = arch::x86_64::cpufeature::init();
    log::info!("SMEP {}, SMAP {}", prot.smep, prot.smap);
    let xsave = arch::x86_64::fpu::init();
    log::info!(
        "fpu: {} ({} bytes per task)",
        if xsave { "xsave" } else { "fxsave" },
        arch::x86_64::fpu::xstate_size()
    );
    mm::proc::print_from_cmdline(cmdline);
    kprintln!("Boot OK");

    drivers::rtc::init();
    proc::timer::init_realtime();
    // Not every initrd is an initramfs (tests pass arbitrary bytes): only a newc archive
    // is unpacked.
    if let Err(e) = fs::mount_root(initrd.map(|i| (i.paddr, i.size))) {
        log::info!("{e}");
    }
    // PCI and the disks on it (vda, vdb...); nothing is printed unless the command line
    // asks for it (`pci=dump`, `loglevel=info`), so runs without disks look as before.
    drivers::pci::init(cmdline);
    drivers::virtio_blk::probe_all();
    fs::populate_dev();
    // ext2 disks are mounted, swap areas enabled.
    fs::mount_disks();
    // `sysctl.vm.swappiness=N`, as Linux's `sysctl.*` boot parameters.
    if let Some(v) = cmdline::param(cmdline, "sysctl.vm.swappiness")
        .and_then(|v| core::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&v| v <= mm::vmscan::MAX_SWAPPINESS)
    {
        mm::vmscan::SWAPPINESS.store(v, core::sync::atomic::Ordering::Relaxed);
    }
    // `hugepages=N`, `transparent_hugepage=always|madvise|never`.
    mm::hugetlb::init_from_cmdline(cmdline);
    mm::huge_memory::init_from_cmdline(cmdline);
    if !selftest::run_from_cmdline(cmdline) {
        exit::exit(exit::EXIT_SELFTEST_FAILED);
    }
    proc::init::run_from_cmdline(cmdline);
    exit::exit(exit::EXIT_SUCCESS)
}
