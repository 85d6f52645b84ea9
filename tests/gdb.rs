//! System tests of the GDB stub (`--gdb`, `--gdb-wait`): the real gdb in batch mode against
//! the built-in kernel (symbols from the embedded ELF), and a small remote-protocol client
//! for what batch gdb cannot do (attach to a running machine, Ctrl-C, malformed packets).
//!
//! Without gdb the gdb tests print a visible SKIP, unless VMSCOPE_REQUIRE_QEMU=1 (as in CI,
//! which installs gdb), when they fail instead.

mod common;

use common::{pvh_kernel, qemu_present, Scratch, VMSCOPE};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Longest wait for vmscope, gdb or a reply.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The kernel function every boot calls, and a kernel variable it writes and then reads.
const FUNCTION: &str = "kernel::mm::init::init";
const VARIABLE: &str = "kernel::mm::page_alloc::READY";

fn gdb_present() -> bool {
    let ok = Command::new("gdb")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("VMSCOPE_REQUIRE_QEMU").as_deref() == Ok("1") {
            panic!("gdb is required (VMSCOPE_REQUIRE_QEMU=1) but was not found");
        }
        eprintln!("SKIP: gdb not found; the gdb test did not run");
    }
    ok
}

/// Wait for `child` at most [`TIMEOUT`]; kill it if it takes longer.
fn wait_output(mut child: Child, what: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "{what} did not finish in {TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// vmscope started with `--gdb`, and the address it printed on stderr.
struct Vmscope {
    child: Child,
    addr: String,
    stdout: Option<thread::JoinHandle<String>>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Vmscope {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(VMSCOPE)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vmscope");
        let mut out = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("gdb: listening on ").nth(1) {
                    let addr = rest.split(',').next().unwrap_or(rest).trim().to_string();
                    let _ = tx.send(addr);
                }
                all += &line;
                all += "\n";
            }
            all
        });
        let mut vm = Vmscope {
            child,
            addr: String::new(),
            stdout: Some(stdout),
            stderr: Some(stderr),
        };
        match rx.recv_timeout(TIMEOUT) {
            Ok(addr) => vm.addr = addr,
            Err(_) => {
                let _ = vm.child.kill();
                let (_, _, err) = vm.finish();
                panic!("vmscope {args:?} did not say where it listens:\n{err}");
            }
        }
        vm
    }

    /// Wait for the exit: (status, stdout, stderr).
    fn finish(&mut self) -> (Option<i32>, String, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                panic!("vmscope did not exit in {TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let out = self
            .stdout
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default();
        let err = self
            .stderr
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default();
        (status.code(), out, err)
    }
}

impl Drop for Vmscope {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The embedded kernel ELF (what vmscope boots), written out for gdb's symbols; `test`
/// keeps the file apart from the other tests' (they run in parallel).
fn kernel_elf(test: &str) -> Scratch {
    Scratch::new(&format!("{test}-kernel.elf"), vmscope::guest::KERNEL)
}

/// Run gdb in batch mode on `kernel`, connected to `addr`, with `cmds`: (stdout, stderr).
fn gdb(kernel: &str, addr: &str, cmds: &[&str]) -> (String, String) {
    let mut c = Command::new("gdb");
    c.args(["-batch", "-nx"]);
    let file = format!("file {kernel}");
    let target = format!("target remote {addr}");
    let setup = ["set pagination off", "set confirm off", "set width 0"];
    for cmd in setup
        .iter()
        .chain(&[file.as_str(), target.as_str()])
        .chain(cmds)
    {
        c.args(["-ex", cmd]);
    }
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gdb");
    let o = wait_output(child, "gdb");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("not a hex number: {s:?}"))
}

/// The value of register `name` in `info registers` output.
fn reg(out: &str, name: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no register {name} in:\n{out}"));
    hex(line.split_whitespace().nth(1).unwrap())
}

/// The line that starts with `prefix`.
fn line_starting<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

/// The words of the `x` output line for `addr` (`ADDR[ <symbol+off>]:<TAB>W<TAB>W`).
fn x_words(out: &str, addr: u64) -> Vec<u64> {
    let label = format!("{addr:#x}");
    let line = out
        .lines()
        .find(|l| {
            l.split('\t')
                .next()
                .is_some_and(|f| f.starts_with(&label) && f.ends_with(':'))
        })
        .unwrap_or_else(|| panic!("no x output at {label} in:\n{out}"));
    line.split('\t').skip(1).map(hex).collect()
}

#[test]
fn gdb_breaks_steps_and_watches_in_the_kernel() {
    if !gdb_present() {
        return;
    }
    let plain = common::vmscope(&["boot"]);
    let kernel = kernel_elf("breaks");
    let mut vm = Vmscope::start(&["boot", "--gdb", "127.0.0.1:0", "--gdb-wait"]);
    let (out, err) = gdb(
        kernel.path(),
        &vm.addr,
        &[
            &format!("break {FUNCTION}"),
            "continue",
            "bt",
            "info registers",
            "x/4gx $rsp",
            "x/2gx $rbp",
            "stepi",
            "p/x $pc",
            &format!("watch {VARIABLE}"),
            "continue",
            "monitor cr",
            "p/x $cr3",
            "delete",
            "detach",
        ],
    );
    let (status, vm_out, vm_err) = vm.finish();
    let ctx = format!("gdb stdout:\n{out}\ngdb stderr:\n{err}\nvmscope stderr:\n{vm_err}");

    // The breakpoint, by name, is where `continue` stops.
    let bp = line_starting(&out, "Breakpoint 1 at 0x");
    let bp = hex(bp["Breakpoint 1 at ".len()..].split(':').next().unwrap());
    assert!(
        out.contains(&format!("Breakpoint 1, {FUNCTION} (")),
        "{ctx}"
    );
    // bt: the function, called from kernel_main.
    assert!(out.contains(&format!("#0  {FUNCTION} (")), "{ctx}");
    let caller = line_starting(&out, "#1  0x");
    assert!(caller.contains(" in kernel::kernel_main "), "{ctx}");
    let return_address = hex(caller[4..].split_whitespace().next().unwrap());
    // info registers: RIP at the breakpoint, and the system registers.
    let rip = reg(&out, "rip");
    assert_eq!(rip, bp, "{ctx}");
    assert!(
        line_starting(&out, "rip ").contains(&format!("<{FUNCTION}+")),
        "{ctx}"
    );
    for name in ["fs_base", "gs_base", "k_gs_base", "cr2", "cr8"] {
        reg(&out, name);
    }
    assert!(line_starting(&out, "cr0 ").contains(" PG "), "{ctx}");
    assert!(line_starting(&out, "efer ").contains(" LMA "), "{ctx}");
    assert!(line_starting(&out, "eflags ").contains('['), "{ctx}");
    let (rsp, rbp) = (reg(&out, "rsp"), reg(&out, "rbp"));
    // x/4gx $rsp: two lines of two words, from RSP.
    assert_eq!(x_words(&out, rsp).len(), 2, "{ctx}");
    assert_eq!(x_words(&out, rsp + 16).len(), 2, "{ctx}");
    // x/2gx $rbp: the saved frame pointer, then the return address bt showed.
    assert_eq!(x_words(&out, rbp)[1], return_address, "{ctx}");
    // stepi moved RIP.
    let pc = line_starting(&out, "$1 = 0x");
    assert_ne!(hex(&pc[5..]), rip, "{ctx}");
    // The watchpoint fired when the kernel set the flag.
    let hit = format!("Hardware watchpoint 2: {VARIABLE}\n\nOld value = ");
    assert!(out.contains(&hit), "{ctx}");
    assert!(
        line_starting(&out, "Old value = ").contains("value: 0}"),
        "{ctx}"
    );
    assert!(
        line_starting(&out, "New value = ").contains("value: 1}"),
        "{ctx}"
    );
    // monitor cr (gdb prints it on stderr) and $cr3 agree.
    let cr0 = line_starting(&err, "cr0  0x");
    assert!(cr0.contains(" PE ") && cr0.contains(" PG "), "{ctx}");
    let cr3 = hex(line_starting(&err, "cr3  0x")[5..].trim());
    assert_eq!(hex(&line_starting(&out, "$2 = 0x")[5..]), cr3, "{ctx}");
    assert!(out.contains("[Inferior 1 (process 1) detached]"), "{ctx}");

    // After the detach the machine ran on, exactly as without gdb.
    assert_eq!(status, Some(0), "{ctx}");
    assert_eq!(vm_out, common::stdout(&plain), "{ctx}");
}

/// gdb sees the x87 and SSE registers: `info registers xmm0` shows the union of lanes,
/// `p $st0` the top of the x87 stack; writes reach the CPU.
#[test]
fn gdb_shows_and_writes_x87_and_sse_registers() {
    if !gdb_present() {
        return;
    }
    // mov eax,cr4; or eax,CR4.OSFXSR; mov cr4,eax; pcmpeqd xmm0,xmm0; fld1; fldpi; jmp $
    let code = [
        0x0f, 0x20, 0xe0, 0x0d, 0x00, 0x02, 0x00, 0x00, 0x0f, 0x22, 0xe0, 0x66, 0x0f, 0x76, 0xc0,
        0xd9, 0xe8, 0xd9, 0xeb, 0xeb, 0xfe,
    ];
    let spin = ENTRY + code.len() as u64 - 2;
    let k = Scratch::new("gdb-fpu.elf", &pvh_kernel(&code));
    let mut vm = Vmscope::start(&[
        "boot",
        "--kernel",
        k.path(),
        "--gdb",
        "127.0.0.1:0",
        "--gdb-wait",
    ]);
    let (out, err) = gdb(
        k.path(),
        &vm.addr,
        &[
            &format!("break *{spin:#x}"),
            "continue",
            "info registers xmm0",
            "p $st0",
            "p $st1",
            "p/x $fctrl",
            "p/x $ftag",
            "p $mxcsr",
            "set $xmm1.uint128 = 0x1234",
            "p/x $xmm1.uint128",
            "set $st2 = 2.5",
            "p $st2",
            "kill",
        ],
    );
    let (_, _, vm_err) = vm.finish();
    let ctx = format!("gdb stdout:\n{out}\ngdb stderr:\n{err}\nvmscope stderr:\n{vm_err}");
    let xmm0 = line_starting(&out, "xmm0");
    assert!(
        xmm0.contains("uint128 = 0xffffffffffffffffffffffffffffffff"),
        "{ctx}"
    );
    assert!(
        xmm0.contains("v4_int32 = {0xffffffff") || xmm0.contains("v4_int32 = {-1"),
        "{ctx}"
    );
    assert!(
        out.contains("$1 = 3.14159265358979323851"),
        "st0 = pi: {ctx}"
    );
    assert!(out.contains("$2 = 1\n"), "st1 = 1: {ctx}");
    assert!(out.contains("$3 = 0x37f"), "{ctx}");
    // Tags: ST0 = R6 and ST1 = R7 valid, the rest empty.
    assert!(out.contains("$4 = 0xfff"), "{ctx}");
    assert!(out.contains("$5 = [ IM DM ZM OM UM PM ]"), "{ctx}");
    assert!(out.contains("$6 = 0x1234"), "{ctx}");
    assert!(out.contains("$7 = 2.5"), "{ctx}");
}

#[test]
fn gdb_hardware_breakpoint_read_watchpoint_and_exit() {
    if !gdb_present() {
        return;
    }
    let kernel = kernel_elf("hwbreak");
    let mut vm = Vmscope::start(&["run", "--gdb", "127.0.0.1:0", "--gdb-wait", "hello"]);
    let (out, err) = gdb(
        kernel.path(),
        &vm.addr,
        &[
            &format!("hbreak {FUNCTION}"),
            "continue",
            "delete",
            &format!("rwatch {VARIABLE}"),
            "continue",
            "delete",
            "continue",
        ],
    );
    let (status, vm_out, vm_err) = vm.finish();
    let ctx = format!("gdb stdout:\n{out}\ngdb stderr:\n{err}\nvmscope stderr:\n{vm_err}");
    assert!(
        out.contains("Hardware assisted breakpoint 1 at 0x"),
        "{ctx}"
    );
    assert!(
        out.contains(&format!("Breakpoint 1, {FUNCTION} (")),
        "{ctx}"
    );
    assert!(
        out.contains(&format!(
            "Hardware read watchpoint 2: {VARIABLE}\n\nValue = "
        )),
        "{ctx}"
    );
    assert!(
        out.contains("[Inferior 1 (process 1) exited normally]"),
        "{ctx}"
    );
    assert_eq!(status, Some(0), "{ctx}");
    assert_eq!(vm_out, "Hello, world!\n", "{ctx}");
}

#[test]
fn gdb_kill_ends_vmscope_with_145() {
    if !gdb_present() {
        return;
    }
    let kernel = kernel_elf("kill");
    let mut vm = Vmscope::start(&["run", "--gdb", "127.0.0.1:0", "--gdb-wait", "hello"]);
    let (out, err) = gdb(
        kernel.path(),
        &vm.addr,
        &[
            "set language c",
            "set $rax = 0x1234",
            "p/x $rax",
            "set $cs = 8",
            "kill",
        ],
    );
    let (status, vm_out, vm_err) = vm.finish();
    let ctx = format!("gdb stdout:\n{out}\ngdb stderr:\n{err}\nvmscope stderr:\n{vm_err}");
    assert!(out.contains("$1 = 0x1234"), "{ctx}");
    assert!(err.contains("Could not write register \"cs\""), "{ctx}");
    assert!(vm_err.contains("cannot write cs = 0x8: read-only"), "{ctx}");
    assert_eq!(status, Some(145), "{ctx}");
    assert!(vm_err.contains("vmscope: killed from gdb"), "{ctx}");
    assert!(vm_err.contains("rax=0000000000001234"), "{ctx}");
    assert_eq!(vm_out, "", "{ctx}");
}

/// A minimal GDB remote-protocol client (acknowledged mode, as gdb starts).
struct Rsp(TcpStream);

impl Rsp {
    fn connect(addr: &str) -> Self {
        let s = TcpStream::connect(addr).expect("connect to the stub");
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        Rsp(s)
    }

    fn byte(&mut self) -> std::io::Result<u8> {
        let mut b = [0u8];
        self.0.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn try_send(&mut self, payload: &str) -> std::io::Result<()> {
        let sum = payload.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        write!(self.0, "${payload}#{sum:02x}")?;
        assert_eq!(self.byte()?, b'+', "ack for {payload:?}");
        Ok(())
    }

    /// The next packet's payload, run-length decoding undone.
    fn try_recv(&mut self) -> std::io::Result<String> {
        while self.byte()? != b'$' {}
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.byte()? {
                b'#' => break,
                b'*' => {
                    let n = self.byte()? - 29;
                    let last = *out.last().expect("run length after nothing");
                    out.extend(std::iter::repeat_n(last, n as usize));
                }
                b => out.push(b),
            }
        }
        self.byte()?;
        self.byte()?;
        self.0.write_all(b"+")?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn send(&mut self, payload: &str) {
        self.try_send(payload).expect("send to the stub");
    }

    fn recv(&mut self) -> String {
        self.try_recv().expect("receive from the stub")
    }

    fn ask(&mut self, payload: &str) -> String {
        self.send(payload);
        self.recv()
    }
}

/// Little-endian hex of a register or memory word.
fn le_hex(s: &str) -> u64 {
    (0..s.len() / 2)
        .map(|i| u64::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .rev()
        .fold(0, |v, b| (v << 8) | b)
}

/// The first instruction of a stand-in kernel is at 1 MiB + 0x100 (see `pvh_kernel`).
const ENTRY: u64 = 0x10_0100;

#[test]
fn stub_attaches_late_interrupts_and_survives_bad_packets() {
    // `inc eax; jmp $-1`: counts for ever.
    let counter = Scratch::new("gdb-counter.elf", &pvh_kernel(&[0x40, 0xeb, 0xfd]));
    let mut vm = Vmscope::start(&["boot", "--kernel", counter.path(), "--gdb", "127.0.0.1:0"]);
    // Let it run a while before gdb comes.
    thread::sleep(Duration::from_millis(200));
    let mut gdb = Rsp::connect(&vm.addr);
    assert!(gdb.ask("?").starts_with("T05"));
    let g = gdb.ask("g");
    let rax = le_hex(&g[..16]);
    assert!(rax > 0, "the machine ran before gdb attached: {g}");
    let rip = le_hex(&g[256..272]);
    assert!((ENTRY..ENTRY + 3).contains(&rip), "{rip:#x}");
    assert_eq!(le_hex(&gdb.ask("p10")), rip, "p of rip (register 16)");
    // x87/SSE state: st0 is register 24 (empty, zero), fctrl 32, xmm0 40, mxcsr 56.
    assert_eq!(gdb.ask("p18"), "0".repeat(20));
    assert_eq!(gdb.ask("p20"), "7f030000", "fctrl after reset");
    assert_eq!(gdb.ask("p38"), "801f0000", "mxcsr after reset");
    let xmm = "00112233445566778899aabbccddeeff";
    assert_eq!(gdb.ask(&format!("P28={xmm}")), "OK");
    assert_eq!(gdb.ask("p28"), xmm);
    assert!(
        gdb.ask("P38=ffffffff").starts_with('E'),
        "reserved MXCSR bits"
    );

    // Memory through the (here: absent) page tables, RAM only.
    assert_eq!(gdb.ask(&format!("m{ENTRY:x},3")), "40ebfd");
    assert!(gdb.ask("m40000000,4").starts_with('E'), "beyond RAM");
    assert!(
        gdb.ask("mfee00000,4").starts_with('E'),
        "the local APIC is a device"
    );
    assert_eq!(gdb.ask("M200000,4:deadbeef"), "OK");
    assert_eq!(gdb.ask("m200000,4"), "deadbeef");
    assert!(gdb.ask("M40000000,1:00").starts_with('E'));
    // Registers: rax writable, cr0 (register 60) read-only.
    assert_eq!(gdb.ask("P0=0010000000000000"), "OK");
    assert_eq!(gdb.ask("p0"), "0010000000000000");
    assert!(gdb.ask("P3c=0000000000000000").starts_with('E'));
    assert_eq!(le_hex(&gdb.ask("p3c")), 0x11, "cr0: PE and ET");

    // Nonsense gets an empty or error reply, or (a malformed packet, as gdbstub handles
    // it) ends the session while the machine runs on and a new gdb can attach.
    let mut sessions = 1;
    for bad in [
        "p999", "P3c=12", "vFoo", "mzz,4", "m", "Z0,zz,1", "qRcmd,zz",
    ] {
        match gdb.try_send(bad).and_then(|()| gdb.try_recv()) {
            Ok(r) => assert!(r.is_empty() || r.starts_with('E'), "{bad}: {r:?}"),
            Err(_) => {
                gdb = Rsp::connect(&vm.addr);
                assert!(gdb.ask("?").starts_with("T05"), "after {bad}");
                sessions += 1;
            }
        }
    }
    assert!(sessions > 1, "a malformed packet ended no session");
    assert!(
        le_hex(&gdb.ask("p0")) > 0x1000,
        "the machine ran between sessions"
    );
    assert_eq!(gdb.ask("P0=0010000000000000"), "OK");
    // A monitor command: the output comes as O packets, hex-encoded, then OK.
    gdb.send(&format!("qRcmd,{}", hex_str("icount")));
    let mut text = String::new();
    loop {
        let r = gdb.recv();
        if r == "OK" {
            break;
        }
        let h = r
            .strip_prefix('O')
            .unwrap_or_else(|| panic!("monitor reply {r:?}"));
        text += &String::from_utf8(unhex(h)).unwrap();
    }
    assert!(text.trim().parse::<u64>().unwrap() > 0, "{text:?}");

    // Continue, then Ctrl-C: a SIGINT stop, with the counter further on.
    gdb.send("c");
    thread::sleep(Duration::from_millis(100));
    gdb.0.write_all(&[0x03]).unwrap();
    let stop = gdb.recv();
    assert!(stop.starts_with("T02") || stop.starts_with("S02"), "{stop}");
    assert!(le_hex(&gdb.ask("p0")) > 0x1000);

    // Kill: vmscope ends with 145.
    gdb.send("k");
    let (status, _, err) = vm.finish();
    assert_eq!(status, Some(145), "{err}");
    assert!(err.contains("gdb: session ended: "), "{err}");
}

fn hex_str(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn stub_reports_the_guest_exit_status() {
    // `mov eax, 7; out 0xf4, eax; hlt`: exit status 7.
    let exits = Scratch::new(
        "gdb-exit7.elf",
        &pvh_kernel(&[0xb8, 7, 0, 0, 0, 0xe7, 0xf4, 0xf4]),
    );
    // `int3` with no IDT: #GP, #DF, triple fault (140 = 0x8c).
    let faults = Scratch::new("gdb-triple.elf", &pvh_kernel(&[0xcc]));
    for (kernel, reply, status) in [(&exits, "W07", 7), (&faults, "W8c", 140)] {
        let mut vm = Vmscope::start(&[
            "boot",
            "--kernel",
            kernel.path(),
            "--gdb",
            "127.0.0.1:0",
            "--gdb-wait",
        ]);
        let mut gdb = Rsp::connect(&vm.addr);
        // Stopped before the first instruction.
        assert_eq!(le_hex(&gdb.ask("p10")), ENTRY);
        if status == 7 {
            // A single step runs `mov eax, 7`.
            assert!(gdb.ask("s").starts_with("S05"));
            assert_eq!(le_hex(&gdb.ask("p0")), 7);
            assert_eq!(le_hex(&gdb.ask("p10")), ENTRY + 5);
        }
        assert_eq!(gdb.ask("c"), reply);
        let (code, _, err) = vm.finish();
        assert_eq!(code, Some(status), "{err}");
    }
}

#[test]
fn gdb_options_are_checked() {
    let o = common::vmscope(&["boot", "--gdb-wait"]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let o = common::vmscope(&["boot", "--gdb", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("expected HOST:PORT"),
        "{}",
        common::stderr(&o)
    );
    // A port in use.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = common::vmscope(&["boot", "--gdb", &addr]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("cannot listen"),
        "{}",
        common::stderr(&o)
    );
}

#[test]
fn gdb_with_qemu_uses_qemus_stub() {
    if !qemu_present() || !gdb_present() {
        return;
    }
    let o = common::vmscope(&["boot", "--qemu", "--gdb", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("fixed port"),
        "{}",
        common::stderr(&o)
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let vm = Command::new(VMSCOPE)
        .args(["boot", "--qemu", "--gdb", &addr, "--gdb-wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // QEMU listens once it is up; gdb cannot wait for that itself.
    let start = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(start.elapsed() < TIMEOUT, "QEMU never listened on {addr}");
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(200));
    let kernel = kernel_elf("qemu");
    let (out, err) = gdb(kernel.path(), &addr, &["info registers rip", "continue"]);
    let o = wait_output(vm, "vmscope --qemu");
    let ctx = format!(
        "gdb stdout:\n{out}\ngdb stderr:\n{err}\nvmscope stderr:\n{}",
        common::stderr(&o)
    );
    // -S: QEMU waits in its firmware, before the kernel, for gdb's `continue`.
    assert!(out.contains("rip "), "{ctx}");
    assert_eq!(o.status.code(), Some(0), "{ctx}");
    assert!(common::stdout(&o).contains("Boot OK"), "{ctx}");
}
