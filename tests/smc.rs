//! Self-modifying code and the decode cache (issue [11], stage B; ARCHITECTURE.md,
//! "Emulator core"). Decoded instructions are kept until their frame is written; these
//! tests write code through every path and check the new bytes run: a store into the next
//! instruction, a store elsewhere in the same page, a store through a second virtual
//! mapping of the frame, a virtio-blk read (DMA) into a code page, and an instruction that
//! crosses into a page that is then unmapped (INVLPG, or a CR3 switch), which must fault.
//! Each runs with the decode shadow check on (every cached instruction re-decoded and
//! compared) and off, and under every TLB mode.
//!
//! The machine is a hand-built 64-bit one: identity-mapped 4 KiB pages below 2 MiB, an
//! IDT whose handler for vector v exits with status v, CPL 0.

mod common;

use std::io::Write;
use vmscope::addr::GuestPhysAddr;
use vmscope::cpu::regs::{cr0, cr4, efer, gpr, seg_attr, SegReg, Segment};
use vmscope::devices::disk::{DiskImage, DiskSpec};
use vmscope::devices::uart16550::ConsoleSink;
use vmscope::machine::{Machine, MachineConfig, Outcome};
use vmscope::tlb::TlbMode;

const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const PT: u64 = 0x4000;
const GDT: u64 = 0x5000;
const IDT: u64 = 0x6000;
/// Handler for vector v at HANDLERS + v * 16: `mov eax, v; out 0xf4, eax; hlt`.
const HANDLERS: u64 = 0x7000;
const STACK_TOP: u64 = 0x9000;
/// Page directory for 3-4 GiB (2 MiB pages), where the virtio BARs are put.
const PD_HI: u64 = 0xa000;
const CODE: u64 = 0x10000;
/// A second code page (a function the main code calls).
const FUNC: u64 = 0x11000;
/// A virtual alias of CODE's frame.
const ALIAS: u64 = 0x40000;
/// Second set of tables, for the CR3 switch.
const PML4_B: u64 = 0x30000;
const PDPT_B: u64 = 0x31000;
const PD_B: u64 = 0x32000;
const PT_B: u64 = 0x33000;
const P: u64 = 1;
const W: u64 = 2;
const PS: u64 = 0x80;

fn tables(m: &mut Machine, pml4: u64, pdpt: u64, pd: u64, pt: u64) {
    let mem = &mut m.bus.mem;
    mem.write(GuestPhysAddr(pml4), 8, pdpt | P | W);
    mem.write(GuestPhysAddr(pdpt), 8, pd | P | W);
    mem.write(GuestPhysAddr(pdpt + 3 * 8), 8, PD_HI | P | W);
    mem.write(GuestPhysAddr(pd), 8, pt | P | W);
    for i in 1..512u64 {
        mem.write(GuestPhysAddr(pt + i * 8), 8, (i << 12) | P | W);
    }
    mem.write(GuestPhysAddr(pt + (ALIAS >> 12) * 8), 8, CODE | P | W);
}

/// A 64-bit machine at CPL 0 with `code` at CODE and `func` at FUNC.
fn machine(code: &[u8], func: &[u8], tlb: TlbMode, shadow: bool) -> Machine {
    let config = MachineConfig {
        mem_bytes: 4 << 20,
        tlb_mode: tlb,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(config, ConsoleSink::Buffer(Default::default())).unwrap();
    tables(&mut m, PML4, PDPT, PD, PT);
    tables(&mut m, PML4_B, PDPT_B, PD_B, PT_B);
    let mem = &mut m.bus.mem;
    // The BARs' 2 MiB page at 0xfe000000.
    mem.write(
        GuestPhysAddr(PD_HI + ((0xfe00_0000u64 >> 21) & 511) * 8),
        8,
        0xfe00_0000 | P | W | PS,
    );
    mem.write(GuestPhysAddr(GDT + 8), 8, 0x00af_9b00_0000_ffff);
    mem.write(GuestPhysAddr(GDT + 16), 8, 0x00cf_9300_0000_ffff);
    for v in 0..256u64 {
        let h = HANDLERS + v * 16;
        let lo = (h & 0xffff) | (0x08 << 16) | (0x8e << 40) | (((h >> 16) & 0xffff) << 48);
        mem.write(GuestPhysAddr(IDT + v * 16), 8, lo);
        mem.write(GuestPhysAddr(IDT + v * 16 + 8), 8, h >> 32);
        mem.write_bytes(
            GuestPhysAddr(h),
            &[0xb8, v as u8, 0, 0, 0, 0xe7, 0xf4, 0xf4],
        );
    }
    mem.write_bytes(GuestPhysAddr(CODE), code);
    mem.write_bytes(GuestPhysAddr(FUNC), func);
    let c = &mut m.cpu;
    c.decode_shadow = shadow;
    c.cr0 = cr0::PE | cr0::ET | cr0::PG | cr0::WP;
    c.cr4 = cr4::PAE;
    c.efer = efer::LME | efer::LMA;
    c.cr3 = PML4;
    c.gdtr.base = GDT;
    c.gdtr.limit = 23;
    c.idtr.base = IDT;
    c.idtr.limit = 256 * 16 - 1;
    for s in 0..6 {
        c.seg[s] = Segment::flat32(0x10, 0x93);
    }
    c.seg[SegReg::Cs as usize] = Segment {
        selector: 0x08,
        base: 0,
        limit: 0xffff_ffff,
        attr: 0x9b | seg_attr::L | seg_attr::G,
    };
    c.gpr[gpr::RSP] = STACK_TOP;
    c.rip = CODE;
    c.cpl = 0;
    m
}

fn status(o: &Outcome) -> Option<u32> {
    match o {
        Outcome::Exit { raw } => Some(raw >> 1),
        _ => None,
    }
}

/// Run `code`/`func` in every TLB mode, with and without the shadow check, after `setup`,
/// and expect exit status `want` and whatever `check` checks of each machine.
fn expect_with(
    code: &[u8],
    func: &[u8],
    setup: impl Fn(&mut Machine),
    want: u32,
    check: impl Fn(&Machine),
) {
    for tlb in [TlbMode::On, TlbMode::Check, TlbMode::Off] {
        for shadow in [false, true] {
            let mut m = machine(code, func, tlb, shadow);
            m.config.max_insns = Some(10_000);
            setup(&mut m);
            let o = m.run();
            assert_eq!(status(&o), Some(want), "{tlb:?} shadow {shadow}: {o:?}");
            check(&m);
        }
    }
}

fn expect(code: &[u8], func: &[u8], setup: impl Fn(&mut Machine), want: u32) {
    expect_with(code, func, setup, want, |_| {})
}

fn le32(v: u64) -> [u8; 4] {
    (v as u32).to_le_bytes()
}

#[test]
fn a_store_into_the_next_instruction_is_seen() {
    // The `mov eax, 0x11` runs once (and is cached), then the store just before it
    // rewrites its immediate and it runs again.
    let code = [
        0x31, 0xc9, // 0: xor ecx, ecx
        0xeb, 0x07, // 2: jmp 11
        0xc6, 0x05, 1, 0, 0, 0, 0x22, // 4: mov byte [rip+1], 0x22 (the imm at 12)
        0xb8, 0x11, 0, 0, 0, // 11: mov eax, 0x11
        0xff, 0xc1, // 16: inc ecx
        0x83, 0xf9, 0x02, // 18: cmp ecx, 2
        0x75, 0xed, // 21: jne 4
        0xe7, 0xf4, 0xf4, // 23: out 0xf4, eax; hlt
    ];
    expect(&code, &[], |_| {}, 0x22);
}

/// Main code for the tests that call FUNC-like code at `target` twice, running `patch`
/// (which may use rbx = `rbx`) between the calls.
fn call_twice(rbx: u64, target: u64, patch: &[u8]) -> Vec<u8> {
    let mut c = vec![0x31, 0xc9]; // xor ecx, ecx
    c.push(0xbb); // mov ebx, imm32
    c.extend_from_slice(&le32(rbx));
    let again = c.len() as u64;
    c.push(0xe8); // call rel32
    let next = CODE + c.len() as u64 + 4;
    c.extend_from_slice(&le32(target.wrapping_sub(next)));
    c.extend_from_slice(&[0xff, 0xc1, 0x83, 0xf9, 0x02]); // inc ecx; cmp ecx, 2
    c.extend_from_slice(&[0x74, patch.len() as u8 + 2]); // je done
    c.extend_from_slice(patch);
    let after = c.len() as u64 + 2;
    c.extend_from_slice(&[0xeb, (again as i64 - after as i64) as i8 as u8]); // jmp again
    c.extend_from_slice(&[0xe7, 0xf4, 0xf4]); // done: out 0xf4, eax; hlt
    c
}

#[test]
fn a_store_elsewhere_in_the_same_page_is_seen() {
    // The called code sits at CODE + 0x800, in the caller's page.
    let mut code = call_twice(CODE + 0x801, CODE + 0x800, &[0xc6, 0x03, 0x22]);
    code.resize(0x800, 0x90);
    code.extend_from_slice(&[0xb8, 0x11, 0, 0, 0, 0xc3]); // mov eax, 0x11; ret
    expect(&code, &[], |_| {}, 0x22);
}

#[test]
fn a_store_through_a_second_mapping_of_the_frame_is_seen() {
    // Executed through CODE + 0x800, written through ALIAS + 0x801 (the same frame).
    let mut code = call_twice(ALIAS + 0x801, CODE + 0x800, &[0xc6, 0x03, 0x22]);
    code.resize(0x800, 0x90);
    code.extend_from_slice(&[0xb8, 0x11, 0, 0, 0, 0xc3]);
    expect(&code, &[], |_| {}, 0x22);
    // And executed through both mappings: each RIP has its own entry, both dropped.
    let mut code = call_twice(CODE + 0x801, ALIAS + 0x800, &[0xc6, 0x03, 0x22]);
    code.resize(0x800, 0x90);
    code.extend_from_slice(&[0xb8, 0x11, 0, 0, 0, 0xc3]);
    expect(&code, &[], |_| {}, 0x22);
}

/// The virtio-blk device of disk 0 (slot 00:02.0) with its modern BAR at this address.
const BAR: u64 = 0xfe00_0000;
const DESC: u64 = 0x60000;
const AVAIL: u64 = 0x61000;
const USED: u64 = 0x62000;
const HDR: u64 = 0x63000;
const STATUS: u64 = 0x63100;

fn pci_config_write(m: &mut Machine, reg: u32, v: u32) {
    m.bus.port_write(0xcf8, 4, 0x8000_0000 | (2 << 11) | reg);
    m.bus.port_write(0xcfc, 4, v);
}

/// Bring the disk's queue 0 up (virtio 1.x 3.1.1) and queue one read of sector 0 into
/// FUNC; the guest's write to the notify register starts it.
fn virtio_setup(m: &mut Machine) {
    pci_config_write(m, 0x20, BAR as u32); // BAR4 (64-bit memory)
    pci_config_write(m, 0x24, 0);
    pci_config_write(m, 0x04, 0x6); // memory space, bus master
    let common = |m: &mut Machine, off: u64, size: usize, v: u64| {
        m.bus.write(GuestPhysAddr(BAR + off), size, v)
    };
    common(m, 0x14, 1, 3); // ACKNOWLEDGE | DRIVER
    common(m, 0x08, 4, 1);
    common(m, 0x0c, 4, 1); // VERSION_1
    common(m, 0x14, 1, 0x0b); // FEATURES_OK
    common(m, 0x16, 2, 0);
    common(m, 0x18, 2, 8);
    common(m, 0x20, 8, DESC);
    common(m, 0x28, 8, AVAIL);
    common(m, 0x30, 8, USED);
    common(m, 0x1c, 2, 1);
    common(m, 0x14, 1, 0x0f); // DRIVER_OK
    let mem = &mut m.bus.mem;
    let desc = |mem: &mut vmscope::memory::GuestMemory, i: u64, a: u64, len: u64, fl: u64| {
        let d = DESC + 16 * i;
        mem.write(GuestPhysAddr(d), 8, a);
        mem.write(GuestPhysAddr(d + 8), 4, len);
        mem.write(GuestPhysAddr(d + 12), 2, fl);
        mem.write(GuestPhysAddr(d + 14), 2, i + 1);
    };
    mem.write(GuestPhysAddr(HDR), 4, 0); // VIRTIO_BLK_T_IN
    mem.write(GuestPhysAddr(HDR + 8), 8, 0); // sector 0
    desc(mem, 0, HDR, 16, 1);
    desc(mem, 1, FUNC, 512, 3); // device-writable, next
    desc(mem, 2, STATUS, 1, 2);
    mem.write(GuestPhysAddr(STATUS), 1, 0xff);
    mem.write(GuestPhysAddr(AVAIL + 4), 2, 0);
    mem.write(GuestPhysAddr(AVAIL + 2), 2, 1);
}

#[test]
fn a_disk_read_into_a_code_page_is_seen() {
    // Sector 0 holds `mov eax, 0x33; ret`; FUNC starts as `mov eax, 0x11; ret`.
    let dir = std::env::temp_dir().join(format!("vmscope-smc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("code.img");
    let mut sector = vec![0u8; 4096];
    sector[..6].copy_from_slice(&[0xb8, 0x33, 0, 0, 0, 0xc3]);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&sector)
        .unwrap();
    // mov word [rbx], 0: the notify register of queue 0.
    let code = call_twice(BAR + 0x3000, FUNC, &[0x66, 0xc7, 0x03, 0, 0]);
    expect_with(
        &code,
        &[0xb8, 0x11, 0, 0, 0, 0xc3],
        |m| {
            let spec = DiskSpec {
                path: path.clone(),
                read_only: false,
            };
            m.add_disk(DiskImage::open(&spec).unwrap()).unwrap();
            virtio_setup(m);
        },
        0x33,
        |m| {
            assert_eq!(
                m.bus.mem.read(GuestPhysAddr(STATUS), 1),
                Some(0),
                "VIRTIO_BLK_S_OK"
            )
        },
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `mov eax, 0x44; ret` placed to cross from FUNC's page into the next one at 0x12000.
const CROSS: u64 = 0x12000 - 2;

fn crossing(m: &mut Machine) {
    m.bus
        .mem
        .write_bytes(GuestPhysAddr(CROSS), &[0xb8, 0x44, 0, 0, 0, 0xc3]);
}

#[test]
fn an_instruction_crossing_into_a_page_unmapped_by_invlpg_faults() {
    // Between the calls: PT[0x12] = 0; invlpg [0x12000].
    let mut patch = vec![0x48, 0xc7, 0x04, 0x25];
    patch.extend_from_slice(&le32(PT + 0x12 * 8));
    patch.extend_from_slice(&[0, 0, 0, 0]); // mov qword [PT + 0x90], 0
    patch.extend_from_slice(&[0x0f, 0x01, 0x3c, 0x25]);
    patch.extend_from_slice(&le32(0x12000)); // invlpg [0x12000]
    let code = call_twice(0, CROSS, &patch);
    // The fault is the fetch of the instruction's second part, not of the RET after it.
    expect_with(&code, &[], crossing, 14, |m| assert_eq!(m.cpu.cr2, 0x12000));
    // Unchanged tables: the instruction runs both times.
    let code = call_twice(0, CROSS, &[0x90]);
    expect(&code, &[], crossing, 0x44);
}

#[test]
fn an_instruction_crossing_into_a_page_unmapped_by_a_cr3_switch_faults() {
    // The second tables lack 0x12000; between the calls: mov eax, PML4_B; mov cr3, rax.
    let mut patch = vec![0xb8];
    patch.extend_from_slice(&le32(PML4_B));
    patch.extend_from_slice(&[0x0f, 0x22, 0xd8]);
    let code = call_twice(0, CROSS, &patch);
    expect_with(
        &code,
        &[],
        |m| {
            crossing(m);
            m.bus.mem.write(GuestPhysAddr(PT_B + 0x12 * 8), 8, 0);
        },
        14,
        |m| assert_eq!((m.cpu.cr2, m.cpu.cr3), (0x12000, PML4_B)),
    );
}

#[test]
fn written_code_frames_are_unmarked_and_rewritten_code_is_cached_again() {
    // After a run the frames that hold decoded code are marked; a host write (the loader
    // or the GDB stub's path) unmarks the frame.
    let code = [0xb8, 0x05, 0, 0, 0, 0xe7, 0xf4, 0xf4];
    let mut m = machine(&code, &[], TlbMode::On, true);
    m.run();
    assert!(m.bus.mem.is_code(GuestPhysAddr(CODE)));
    assert!(!m.bus.mem.is_code(GuestPhysAddr(FUNC)));
    m.bus.mem.write_bytes(GuestPhysAddr(CODE + 1), &[0x06]);
    assert!(!m.bus.mem.is_code(GuestPhysAddr(CODE)));
    m.cpu.rip = CODE;
    m.bus.exit_request = None;
    let o = m.run();
    assert_eq!(status(&o), Some(6), "{o:?}");
    assert!(m.bus.mem.is_code(GuestPhysAddr(CODE)));
}

// ---- whole programs under the decode shadow check ---------------------------------------

/// Programs and kernel self-tests with `VMSCOPE_DECODE_SHADOW=1` (every cached
/// instruction re-read and re-decoded; a difference panics): the same output, status,
/// instruction count and TLB counters as without it. Exec, fork with copy-on-write and
/// page reuse make the kernel write into frames that held code many times over.
#[test]
fn programs_and_selftests_under_the_decode_shadow_check() {
    use common::{stderr, stdout, VMSCOPE};
    use std::process::Command;
    let stats = |err: &str| -> Vec<String> {
        err.lines()
            .filter(|l| l.starts_with("instructions: ") || l.starts_with("tlb"))
            .map(str::to_string)
            .collect()
    };
    let cases: &[&[&str]] = &[
        &["run", "hello"],
        &["run", "forkcow"],
        &["run", "execchain"],
        &["run", "vfork"],
        &["run", "mmap"],
        &["run", "segv"],
        &["boot", "--cmdline", "selftest=exceptions"],
        &["boot", "--cmdline", "selftest=delivery"],
        &["boot", "--cmdline", "selftest=tlb"],
    ];
    for args in cases {
        let run = |shadow: &str| {
            let (cmd, rest) = args.split_first().unwrap();
            let mut all = vec![*cmd, "--stats"];
            all.extend_from_slice(rest);
            Command::new(VMSCOPE)
                .args(&all)
                .env("RUST_LOG", "warn")
                .env("VMSCOPE_DECODE_SHADOW", shadow)
                .output()
                .expect("run vmscope")
        };
        let (plain, shadow) = (run("0"), run("1"));
        let (ep, es) = (stderr(&plain), stderr(&shadow));
        assert!(!es.contains("decode shadow"), "{args:?}: {es}");
        assert_eq!(plain.status.code(), shadow.status.code(), "{args:?}: {es}");
        assert_eq!(stdout(&plain), stdout(&shadow), "{args:?}");
        assert!(!stats(&ep).is_empty(), "{args:?}: no --stats in {ep}");
        assert_eq!(stats(&ep), stats(&es), "{args:?}");
    }
}
