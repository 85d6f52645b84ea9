//! System tests of the instruction trace (`--trace`): two runs of `hello` give
//! byte-identical files; the lines name kernel and user symbols, mark faults, show a push's
//! stack write; the filters (CPL, limit, start/stop, range) keep exactly the lines they
//! should, each a slice of the full trace; bad options are one line and status 2.

mod common;

use common::{stderr, stdout, vmscope};
use std::path::PathBuf;
use std::sync::OnceLock;
use vmscope::symbols::SymbolTable;

/// A trace file in the temp directory, removed on drop.
struct TraceFile(PathBuf);

impl TraceFile {
    fn new(tag: &str) -> Self {
        TraceFile(
            std::env::temp_dir().join(format!("vmscope-itrace-{}-{tag}.txt", std::process::id())),
        )
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
    fn read(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap_or_else(|e| panic!("{}: {e}", self.0.display()))
    }
}

impl Drop for TraceFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `vmscope run OPTIONS... --trace FILE hello`; checks the program ran as usual and returns
/// the trace and vmscope's stderr.
fn trace_hello(tag: &str, options: &[&str]) -> (String, String) {
    let f = TraceFile::new(tag);
    let mut args = vec!["run", "--trace", f.path()];
    args.extend_from_slice(options);
    args.push("hello");
    let o = vmscope(&args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    assert_eq!(stdout(&o), "Hello, world!\n", "{args:?}");
    let text = String::from_utf8(f.read()).expect("the trace is UTF-8");
    (text, stderr(&o))
}

/// The whole trace of `hello` (with --stats), shared by the tests.
fn full() -> &'static (String, String) {
    static FULL: OnceLock<(String, String)> = OnceLock::new();
    FULL.get_or_init(|| trace_hello("full", &["--stats"]))
}

/// The parts of a line every line has.
struct Line<'a> {
    icount: u64,
    mode: &'a str,
    rip: u64,
    text: &'a str,
}

fn parse(line: &str) -> Line<'_> {
    let mut f = line.split(' ');
    let icount = f
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{line}"));
    assert_eq!(f.next(), Some("cpu0"), "{line}");
    let mode = f.next().unwrap();
    assert!(["k", "u"].contains(&mode), "{line}");
    let rip = f.next().unwrap();
    assert_eq!(rip.len(), 16, "{line}");
    let rip = u64::from_str_radix(rip, 16).unwrap_or_else(|_| panic!("{line}"));
    Line {
        icount,
        mode,
        rip,
        text: line,
    }
}

/// The value of `name=` in a line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=");
    let at = line.find(&key)? + key.len();
    line[at..].split(' ').next()
}

#[test]
fn two_runs_give_byte_identical_traces() {
    let a = TraceFile::new("det-a");
    let b = TraceFile::new("det-b");
    for f in [&a, &b] {
        let o = vmscope(&["run", "--trace", f.path(), "hello"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let (a, b) = (a.read(), b.read());
    assert!(a.len() > 1_000_000, "only {} bytes", a.len());
    assert!(a == b, "two traces of hello differ");
    // And the same as a run with --stats (which changes nothing in the guest).
    assert!(a == full().0.as_bytes(), "--stats changed the trace");
}

#[test]
fn tracing_changes_nothing_in_the_guest() {
    // The fault trace (every delivery, with its icount) is the same with and without the
    // instruction trace, and with a trace cut short by a limit.
    let mut traces = Vec::new();
    for extra in [
        &[][..],
        &["--trace", "/dev/null"],
        &["--trace", "/dev/null", "--trace-limit", "5"],
    ] {
        let f = TraceFile::new(&format!("ft{}", traces.len()));
        let mut args = vec!["run", "--fault-trace", f.path()];
        args.extend_from_slice(extra);
        args.push("hello");
        let o = vmscope(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), "Hello, world!\n");
        traces.push(f.read());
    }
    assert!(traces[0].len() > 1000);
    assert!(traces[0] == traces[1], "--trace changed the fault trace");
    assert!(
        traces[0] == traces[2],
        "--trace-limit changed the fault trace"
    );
}

#[test]
fn every_instruction_has_a_line_in_order() {
    let (text, err) = full();
    let insns: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("instructions: "))
        .expect("--stats prints the instruction count")
        .parse()
        .unwrap();
    // The task lines: the kernel's annotations say init (pid 1) runs, then that it
    // exec'd hello.
    assert_eq!(tasks(text), ["1 ?", "1 /bin/hello"]);
    let lines: Vec<Line> = body(text).into_iter().map(parse).collect();
    // hello halts nowhere and takes no interrupt: one line per instruction, counted from 0.
    assert_eq!(lines.len() as u64, insns);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.icount, i as u64, "{}", l.text);
    }
}

#[test]
fn kernel_and_user_symbols() {
    let (text, _) = full();
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("0 cpu0 k "), "{first}");
    assert!(first.contains(" <pvh_start32> "), "{first}");
    let kmain = text
        .lines()
        .find(|l| l.contains(" <kernel_main> "))
        .expect("kernel_main's first instruction");
    assert!(parse(kmain).rip >= 0xffff_ffff_8000_0000, "{kmain}");
    // hello's own code at CPL 3, named from its ELF: the entry point and main.
    let user: Vec<&str> = text.lines().filter(|l| parse(l).mode == "u").collect();
    assert!(user.len() > 100, "{} user lines", user.len());
    for sym in [
        " <_start> 31 ed  xor ebp,ebp",
        " <__vmrt_main> ",
        " <vmrt::io::_print> ",
    ] {
        assert!(
            user.iter().any(|l| l.contains(sym)),
            "no user line with {sym:?}"
        );
    }
    // Every user instruction lies in hello's text and has a symbol.
    for l in &user {
        let p = parse(l);
        assert!((0x40_0000..0x50_0000).contains(&p.rip), "{l}");
        assert!(
            l.split(' ').nth(4).is_some_and(|s| s.starts_with('<')),
            "{l}"
        );
    }
    // Branch targets are named too.
    assert!(
        text.contains("  call vmrt::io::_print  rsp="),
        "no call naming its target"
    );
}

#[test]
fn a_push_shows_its_stack_write() {
    let (text, _) = full();
    let mut seen = 0;
    for l in text.lines().filter(|l| l.contains("  push r")) {
        if l.contains('!') {
            continue; // faulted
        }
        let rsp = field(l, "rsp").unwrap_or_else(|| panic!("no rsp change: {l}"));
        let w = l.find("[W ").unwrap_or_else(|| panic!("no write: {l}"));
        let mem = &l[w + 3..];
        let (la, rest) = mem.split_once('→').unwrap();
        assert_eq!(la, rsp, "{l}");
        let (pa, rest) = rest.split_once(' ').unwrap();
        u64::from_str_radix(pa, 16).unwrap_or_else(|_| panic!("{l}"));
        assert!(rest.starts_with("8="), "{l}");
        assert_eq!(rest.find(']'), Some(2 + 16), "{l}");
        seen += 1;
    }
    assert!(seen > 1000, "{seen} pushes");
}

#[test]
fn faults_are_marked_without_register_changes() {
    let (text, _) = full();
    // The first instruction of hello faults on its fetch (the page is demand-loaded).
    let l = text
        .lines()
        .find(|l| l.contains(" <_start> ") && l.contains("  !#PF"))
        .expect("the fetch fault at _start");
    assert!(l.contains(" u 0000000000401000 <_start> ??  (unreadable)  !#PF err=0x14 cr2=0000000000401000 → ffffffff"), "{l}");
    assert!(
        !l.contains("rsp="),
        "a faulting instruction changes no register: {l}"
    );
    // The frame pushes of the delivery are there: SS, RSP, RFLAGS, CS, RIP, error code.
    assert_eq!(l.matches("[W ").count(), 6, "{l}");
    assert!(l.ends_with("8=0000000000000014]"), "{l}");
    // A data fault: a write to the not-yet-present data page.
    assert!(
        text.lines()
            .any(|l| parse(l).mode == "u" && l.contains("!#PF err=0x6 ")),
        "no user write fault"
    );
}

#[test]
fn syscall_changes_segments_and_swapgs_the_gs_base() {
    let (text, _) = full();
    let l = text.lines().find(|l| l.contains("  syscall  ")).unwrap();
    for f in ["rcx", "r11", "cs", "ss"] {
        assert!(field(l, f).is_some(), "no {f}= in {l}");
    }
    assert_eq!(field(l, "cs"), Some("0008"), "{l}");
    let next = text.lines().skip_while(|x| *x != l).nth(1).unwrap();
    assert!(next.contains(" k ") && next.contains("swapgs"), "{next}");
    assert!(field(next, "gs.base").is_some(), "{next}");
    assert!(field(next, "kernel_gs_base").is_some(), "{next}");
}

/// The lines without the task lines (which a filtered trace puts before its first line).
fn body(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.contains(" -- task ")).collect()
}

/// What the task lines say.
fn tasks(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.split_once(" -- task ").map(|(_, t)| t))
        .collect()
}

#[test]
fn cpl_filter_keeps_user_lines_only() {
    let (text, _) = trace_hello("cpl3", &["--trace-cpl", "3"]);
    let lines = body(&text);
    assert!(lines.len() > 100, "{} lines", lines.len());
    assert!(text.lines().all(|l| parse(l).mode == "u"));
    assert_eq!(tasks(&text), ["1 /bin/hello"]);
    assert!(text.starts_with(&format!("{} cpu0 u ", parse(lines[0]).icount)));
    let want: Vec<&str> = body(&full().0)
        .into_iter()
        .filter(|l| parse(l).mode == "u")
        .collect();
    assert_eq!(lines, want);
}

#[test]
fn limit_keeps_the_first_n_lines() {
    let (text, _) = trace_hello("limit", &["--trace-limit", "1000"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1000);
    let want: Vec<&str> = full().0.lines().take(1000).collect();
    assert_eq!(lines, want);
}

#[test]
fn start_and_stop_at_symbols() {
    let (text, _) = trace_hello(
        "startstop",
        &[
            "--trace-start",
            "__vmrt_main",
            "--trace-stop",
            "vmrt::io::_print",
        ],
    );
    let lines = body(&text);
    assert_eq!(tasks(&text), ["1 /bin/hello"]);
    assert!(lines[0].contains(" <__vmrt_main> "), "{}", lines[0]);
    let last = lines.last().unwrap();
    assert!(last.contains(" <vmrt::io::_print> "), "{last}");
    let full = body(&full().0);
    let at = full.iter().position(|l| *l == lines[0]).unwrap();
    assert_eq!(lines, &full[at..at + lines.len()]);
    assert!(lines.len() > 3 && lines.len() < 20, "{lines:?}");

    // Start at an address (as the trace prints it), stop by a count: the task line and
    // two instructions.
    let rip = lines[0].split(' ').nth(3).unwrap();
    let (short, _) = trace_hello("startaddr", &["--trace-start", rip, "--trace-limit", "3"]);
    let want: Vec<&str> = text.lines().take(3).collect();
    assert_eq!(short.lines().collect::<Vec<_>>(), want);
}

#[test]
fn range_keeps_the_lines_inside() {
    let (text, _) = trace_hello("range", &["--trace-range", "0x401000-0x401010"]);
    let lines = body(&text);
    assert!(!lines.is_empty());
    assert!(text
        .lines()
        .all(|l| (0x401000..0x401010).contains(&parse(l).rip)));
    let want: Vec<&str> = body(&full().0)
        .into_iter()
        .filter(|l| (0x401000..0x401010).contains(&parse(l).rip))
        .collect();
    assert_eq!(lines, want);
    // A symbol's extent.
    let (text, _) = trace_hello("range-sym", &["--trace-range", "kernel_main"]);
    assert!(!text.is_empty());
    assert!(text.lines().all(|l| l.contains(" <kernel_main")), "{text}");
}

#[test]
fn pid_filter_follows_one_process_through_exec() {
    // execchain forks pid 2, which execs exitcode.
    let f = TraceFile::new("pid");
    let o = vmscope(&["run", "--trace", f.path(), "--trace-pid", "2", "execchain"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8(f.read()).unwrap();
    assert_eq!(
        tasks(&text),
        ["2 /bin/execchain", "2 /bin/exitcode"],
        "task lines"
    );
    assert!(text.lines().next().unwrap().contains(" -- task 2 "));
    // User symbols come from the ELF the task runs: exitcode's main after the exec.
    let sym = |prog: &str| {
        let t = SymbolTable::from_elf(vmscope::guest::program(prog).unwrap()).unwrap();
        t.find("__vmrt_main").unwrap().addr
    };
    let main_line = format!(" u {:016x} <__vmrt_main> ", sym("exitcode"));
    let after_exec = text.split(" -- task 2 /bin/exitcode").nth(1).unwrap();
    assert!(after_exec.contains(&main_line), "no {main_line:?}");
    assert_ne!(sym("exitcode"), sym("execchain"));
    // Only pid 2: not a line from the parent's main.
    let parent_main = format!(" u {:016x} <__vmrt_main> ", sym("execchain"));
    assert!(!text.contains(&parent_main), "a line of pid 1");
    let n = text.lines().count();
    assert!(n > 1000, "{n} lines");
}

#[test]
fn syntax_choice() {
    let (att, _) = trace_hello("att", &["--syntax", "att", "--trace-limit", "50"]);
    assert!(att.contains("  mov $0x207000,%esp  rsp="), "{att}");
    let (masm, _) = trace_hello("masm", &["--syntax", "masm", "--trace-cpl", "3"]);
    assert!(
        masm.contains(" qword ptr "),
        "no qword ptr in the MASM trace"
    );
}

#[test]
fn interrupts_and_halts_have_lines() {
    let f = TraceFile::new("timer");
    let o = vmscope(&[
        "boot",
        "--cmdline",
        "selftest=timer",
        "--trace",
        f.path(),
        "--trace-start",
        "kernel::selftest::timer::periodic",
        "--trace-limit",
        "3000",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8(f.read()).unwrap();
    assert_eq!(text.lines().count(), 3000);
    let halt = text
        .lines()
        .find(|l| l.contains(" -- halted until "))
        .expect("a halt line");
    let until: u64 = halt.rsplit(' ').next().unwrap().parse().unwrap();
    // The timer interrupt wakes the CPU at that count: a boundary line, then its handler.
    let irq = text
        .lines()
        .find(|l| l.contains(" >> INT 0xec → "))
        .expect("a timer interrupt line");
    assert_eq!(parse(irq).icount, until, "{irq}");
    assert!(irq.contains("[W "), "the frame pushes: {irq}");
    let next = text.lines().skip_while(|l| *l != irq).nth(1).unwrap();
    let target = irq.split(" → ").nth(1).unwrap().split(' ').next().unwrap();
    assert_eq!(parse(next).rip, u64::from_str_radix(target, 16).unwrap());
    assert_eq!(parse(next).icount, until);
}

#[test]
fn bad_trace_options_are_errors() {
    for (args, needle) in [
        (
            &[
                "run",
                "--trace",
                "/dev/null",
                "--trace-start",
                "no_such_symbol",
                "hello",
            ][..],
            "no such symbol",
        ),
        (
            &[
                "run",
                "--trace",
                "/dev/null",
                "--trace-range",
                "0x2000-0x1000",
                "hello",
            ],
            "END must lie above START",
        ),
        (
            &["run", "--trace", "/nonexistent/dir/trace.txt", "hello"],
            "cannot create trace",
        ),
        (&["boot", "--trace", "/dev/null", "--qemu"], "--trace"),
        (&["boot", "--trace", "/dev/null", "--gdb", "0"], "--gdb"),
    ] {
        let o = vmscope(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    // Filters need --trace.
    let o = vmscope(&["run", "--trace-cpl", "3", "hello"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
