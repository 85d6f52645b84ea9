//! `--timeline FILE.json`: the run as Chrome/Perfetto trace-event JSON, for
//! ui.perfetto.dev or chrome://tracing.
//!
//! Time is virtual: one retired instruction is one nanosecond (the LAPIC timer's rule), so
//! `ts` is `icount / 1000` microseconds. Layout:
//! - process "vmscope CPUs", one thread per CPU: a slice per stretch of time a task ran
//!   (from the guest's context-switch annotations; "kernel" before the first task, "idle"
//!   when none), interrupts and CR3 writes as instant events on it;
//! - one process per guest task (named `comm[pid]`, Perfetto pid = guest PID +
//!   [`TASK_PID_BASE`]): system calls as slices from entry to return (a blocking wait4
//!   spans the time the task slept), page faults as slices from the #PF delivery to the
//!   kernel's decision, named by the outcome (`cow_copy`, `demand_zero`...), and
//!   fork/exec/exit/signal/reclaim as instant events.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::{json, Value};

use crate::cpu::exception::vector;
use crate::trace::{TraceEvent, TraceSink};

/// Perfetto process id of the CPU tracks.
const CPU_PID: u64 = 0;
/// Guest task `p` is Perfetto process `TASK_PID_BASE + p` (so that it never collides with
/// the CPU process).
pub const TASK_PID_BASE: u64 = 1000;

/// Microseconds of virtual time at instruction count `icount`.
fn ts(icount: u64) -> f64 {
    icount as f64 / 1000.0
}

/// An open slice: its start and name.
struct Open {
    start: u64,
    name: String,
    args: Value,
}

/// Builds the trace-event list as events arrive; writes the file at [`TraceSink::finish`].
pub struct TimelineSink {
    out: Option<BufWriter<File>>,
    events: Vec<Value>,
    /// Per CPU: what is running since when.
    running: BTreeMap<u32, Open>,
    /// Per guest PID: the system call in progress.
    syscalls: BTreeMap<u32, Open>,
    /// Per CPU: a #PF delivered, waiting for the kernel's outcome (with the PID).
    faults: BTreeMap<u32, (u32, Open)>,
    /// Per guest PID: a writeback in progress (the flusher's, or a throttled writer's).
    writebacks: BTreeMap<u32, Open>,
    /// Names given to task processes so far.
    named: BTreeMap<u32, String>,
    last: u64,
}

impl TimelineSink {
    pub fn create(path: &Path) -> io::Result<Self> {
        let out = BufWriter::new(File::create(path)?);
        Ok(TimelineSink {
            out: Some(out),
            events: vec![json!({"ph": "M", "pid": CPU_PID, "name": "process_name",
                "args": {"name": "vmscope CPUs"}})],
            running: BTreeMap::new(),
            syscalls: BTreeMap::new(),
            faults: BTreeMap::new(),
            writebacks: BTreeMap::new(),
            named: BTreeMap::new(),
            last: 0,
        })
    }

    fn task_pid(pid: u32) -> u64 {
        TASK_PID_BASE + pid as u64
    }

    /// Name the process track of guest task `pid` (again when its name changes).
    fn name_task(&mut self, pid: u32, comm: &str) {
        let name = format!("{comm}[{pid}]");
        if self.named.get(&pid) == Some(&name) {
            return;
        }
        let p = Self::task_pid(pid);
        self.events
            .push(json!({"ph": "M", "pid": p, "name": "process_name",
            "args": {"name": name}}));
        self.events
            .push(json!({"ph": "M", "pid": p, "tid": p, "name": "thread_name",
            "args": {"name": "syscalls and faults"}}));
        self.named.insert(pid, name);
    }

    fn cpu_thread(&mut self, cpu: u32) {
        if !self.running.contains_key(&cpu) {
            self.events.push(
                json!({"ph": "M", "pid": CPU_PID, "tid": cpu, "name": "thread_name",
                "args": {"name": format!("cpu{cpu}")}}),
            );
            self.running.insert(
                cpu,
                Open {
                    start: 0,
                    name: "kernel".into(),
                    args: json!({}),
                },
            );
        }
    }

    fn slice(&mut self, pid: u64, tid: u64, o: Open, end: u64, cat: &str) {
        self.events
            .push(json!({"ph": "X", "pid": pid, "tid": tid, "cat": cat,
            "name": o.name, "ts": ts(o.start), "dur": ts(end.saturating_sub(o.start)),
            "args": o.args}));
    }

    fn instant(&mut self, pid: u64, tid: u64, icount: u64, cat: &str, name: String, args: Value) {
        self.events.push(
            json!({"ph": "i", "s": "t", "pid": pid, "tid": tid, "cat": cat,
            "name": name, "ts": ts(icount), "args": args}),
        );
    }

    fn on_event(&mut self, e: &TraceEvent) {
        match e {
            TraceEvent::Delivery(d) => {
                let ic = d.icount.unwrap_or(self.last);
                self.last = ic;
                self.cpu_thread(d.cpu);
                if d.vector == vector::PF && d.delivered != Some(false) {
                    if let Some(pid) = d.pid {
                        let open = Open {
                            start: ic,
                            name: "page fault".into(),
                            args: json!({"addr": d.cr2.map(|a| format!("{a:#x}")),
                                "error_code": d.error_code, "rip": format!("{:#x}", d.rip),
                                "cpl": d.cpl}),
                        };
                        if let Some((p, old)) = self.faults.insert(d.cpu, (pid, open)) {
                            // A fault the kernel said nothing about (e.g. a fault while
                            // handling one): show where it started.
                            self.instant(
                                Self::task_pid(p),
                                Self::task_pid(p),
                                old.start,
                                "fault",
                                old.name,
                                old.args,
                            );
                        }
                        return;
                    }
                }
                let name = if d.kind == "external" {
                    format!("interrupt {:#04x}", d.vector)
                } else {
                    d.name.clone()
                };
                self.instant(
                    CPU_PID,
                    d.cpu as u64,
                    ic,
                    "interrupt",
                    name,
                    json!({"rip": format!("{:#x}", d.rip), "cpl": d.cpl}),
                );
            }
            TraceEvent::Mmu(m) => {
                self.last = m.icount;
                self.cpu_thread(m.cpu);
                if m.op == "cr3" {
                    self.instant(
                        CPU_PID,
                        m.cpu as u64,
                        m.icount,
                        "mmu",
                        "cr3 write".into(),
                        json!({"cr3": format!("{:#x}", m.value)}),
                    );
                }
            }
            TraceEvent::Os(o) => {
                self.last = o.icount;
                self.cpu_thread(o.cpu);
                if o.pid != 0 && !o.comm.is_empty() {
                    self.name_task(o.pid, &o.comm);
                }
                let tp = Self::task_pid(o.pid);
                match o.what.as_str() {
                    "switch" => {
                        let next = o.other_pid.unwrap_or(0);
                        let name = if next == 0 {
                            "idle".to_string()
                        } else {
                            format!("{}[{next}]", o.comm)
                        };
                        let new = Open {
                            start: o.icount,
                            name,
                            args: json!({"pid": next}),
                        };
                        if let Some(prev) = self.running.insert(o.cpu, new) {
                            self.slice(CPU_PID, o.cpu as u64, prev, o.icount, "sched");
                        }
                    }
                    "syscall" => {
                        let open = Open {
                            start: o.icount,
                            name: o.name.clone().unwrap_or_default(),
                            args: json!({"nr": o.number}),
                        };
                        self.syscalls.insert(o.pid, open);
                    }
                    "sysret" => {
                        if let Some(mut open) = self.syscalls.remove(&o.pid) {
                            open.args["ret"] = json!(o.value);
                            self.slice(tp, tp, open, o.icount, "syscall");
                        }
                    }
                    "writeback" => match o.outcome.as_deref() {
                        Some("start") => {
                            let open = Open {
                                start: o.icount,
                                name: "writeback".into(),
                                args: json!({"dirty_pages": o.number}),
                            };
                            self.writebacks.insert(o.pid, open);
                        }
                        _ => {
                            if let Some(mut open) = self.writebacks.remove(&o.pid) {
                                open.args["written_pages"] = json!(o.number);
                                self.slice(tp, tp, open, o.icount, "writeback");
                            }
                        }
                    },
                    "fault" => {
                        let mut name = o.outcome.clone().unwrap_or_else(|| "fault".into());
                        if o.major == Some(true) {
                            name += " (major)";
                        }
                        match self.faults.remove(&o.cpu) {
                            Some((_, mut open)) => {
                                open.name = name;
                                open.args["stack_grew"] = json!(o.stack_grew.unwrap_or(false));
                                open.args["major"] = json!(o.major.unwrap_or(false));
                                self.slice(tp, tp, open, o.icount, "fault");
                            }
                            None => self.instant(
                                tp,
                                tp,
                                o.icount,
                                "fault",
                                name,
                                json!({"addr": o.addr.map(|a| format!("{a:#x}"))}),
                            ),
                        }
                    }
                    "exit" => {
                        // exit_group never returns: its slice ends here.
                        if let Some(open) = self.syscalls.remove(&o.pid) {
                            self.slice(tp, tp, open, o.icount, "syscall");
                        }
                        self.instant(
                            tp,
                            tp,
                            o.icount,
                            "process",
                            "exit".into(),
                            json!({"status": o.number}),
                        );
                    }
                    "fork" | "exec" | "signal" | "reclaim" => {
                        let args = serde_json::to_value(o).unwrap_or(Value::Null);
                        let name = match o.what.as_str() {
                            "exec" => format!("exec {}", o.path.as_deref().unwrap_or("?")),
                            "fork" => format!("fork → {}", o.other_pid.unwrap_or(0)),
                            "signal" => format!(
                                "{} ({})",
                                o.name.as_deref().unwrap_or("signal"),
                                o.outcome.as_deref().unwrap_or("?")
                            ),
                            _ => o.outcome.clone().unwrap_or_else(|| "reclaim".into()),
                        };
                        let (pid, tid) = if o.what == "reclaim" {
                            (CPU_PID, o.cpu as u64)
                        } else {
                            (tp, tp)
                        };
                        self.instant(pid, tid, o.icount, &o.what, name, args);
                    }
                    _ => {}
                }
            }
        }
    }
}

impl TraceSink for TimelineSink {
    fn event(&mut self, e: &TraceEvent) {
        self.on_event(e);
    }

    fn finish(&mut self) -> io::Result<()> {
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        // Close what is still open at the end of the run.
        let end = self.last;
        for (cpu, o) in std::mem::take(&mut self.running) {
            self.slice(CPU_PID, cpu as u64, o, end, "sched");
        }
        for (pid, o) in std::mem::take(&mut self.syscalls) {
            let tp = Self::task_pid(pid);
            self.slice(tp, tp, o, end, "syscall");
        }
        let doc = json!({"traceEvents": std::mem::take(&mut self.events),
            "displayTimeUnit": "ns",
            "otherData": {"clock": "virtual: 1 instruction = 1 ns"}});
        serde_json::to_writer(&mut out, &doc)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{FaultEvent, OsEvent};

    fn os(icount: u64, pid: u32, what: &str) -> OsEvent {
        OsEvent {
            icount,
            pid,
            comm: "t".into(),
            what: what.into(),
            ..Default::default()
        }
    }

    #[test]
    fn slices_for_runs_syscalls_and_faults() {
        let path = std::env::temp_dir().join(format!("vmscope-tl-{}.json", std::process::id()));
        let mut s = TimelineSink::create(&path).unwrap();
        s.event(&TraceEvent::Os(OsEvent {
            other_pid: Some(1),
            ..os(100, 1, "switch")
        }));
        s.event(&TraceEvent::Os(OsEvent {
            name: Some("write".into()),
            number: Some(1),
            ..os(200, 1, "syscall")
        }));
        s.event(&TraceEvent::Os(OsEvent {
            name: Some("write".into()),
            value: Some(14),
            ..os(1200, 1, "sysret")
        }));
        s.event(&TraceEvent::Delivery(FaultEvent {
            icount: Some(2000),
            cpu: 0,
            vector: 14,
            name: "#PF".into(),
            kind: "exception".into(),
            error_code: Some(6),
            cr2: Some(0x1000),
            cs: 0x33,
            rip: 0x401000,
            cpl: 3,
            rsp: 0x7fff_0000,
            delivered: Some(true),
            stack: None,
            ist: Some(0),
            pid: Some(1),
            comm: Some("t".into()),
        }));
        s.event(&TraceEvent::Os(OsEvent {
            outcome: Some("demand_zero".into()),
            ..os(3000, 1, "fault")
        }));
        s.finish().unwrap();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).ok();
        let ev = doc["traceEvents"].as_array().unwrap();
        let find = |name: &str| ev.iter().find(|e| e["name"] == name).cloned();
        let w = find("write").expect("syscall slice");
        assert_eq!(
            (w["ph"].as_str(), w["ts"].as_f64(), w["dur"].as_f64()),
            (Some("X"), Some(0.2), Some(1.0))
        );
        assert_eq!(w["pid"], TASK_PID_BASE + 1);
        let f = find("demand_zero").expect("fault slice");
        assert_eq!(
            (f["ts"].as_f64(), f["dur"].as_f64()),
            (Some(2.0), Some(1.0))
        );
        let run = find("t[1]").expect("run slice on the CPU");
        assert_eq!(
            (run["pid"].as_u64(), run["ts"].as_f64()),
            (Some(CPU_PID), Some(0.1))
        );
        assert!(ev
            .iter()
            .any(|e| e["name"] == "process_name" && e["args"]["name"] == "t[1]"));
    }
}
