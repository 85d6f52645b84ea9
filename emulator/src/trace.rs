//! The hardware fault trace: one event per exception or interrupt delivery attempt, written
//! as JSON Lines (`--fault-trace FILE`), and the converter that turns QEMU's `-d int` log
//! into the same events so the two machines can be compared.
//!
//! Field names are stable (documented in README.md, "Fault trace"). Addresses are hex
//! strings so that 64-bit values survive JSON readers that use doubles.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cpu::exception::{has_error_code, vector_name};
use crate::interrupts::EventSource;

/// One delivery attempt. Fields that a source cannot know (QEMU's log has no instruction
/// count, IST index or new stack pointer) are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Instructions retired before the event (the virtual clock).
    pub icount: Option<u64>,
    pub cpu: u32,
    pub vector: u8,
    /// SDM mnemonic ("#PF") or "INT".
    pub name: String,
    /// "exception", "external" (interrupt or NMI), "software" (INT n/INT3/INTO) or "icebp".
    pub kind: String,
    pub error_code: Option<u32>,
    /// The faulting linear address, for #PF only.
    #[serde(with = "hex_opt")]
    pub cr2: Option<u64>,
    /// CS selector and RIP where the event happened: the faulting instruction, the INT
    /// instruction, or (traps and interrupts) the next instruction to run.
    pub cs: u16,
    #[serde(with = "hex")]
    pub rip: u64,
    /// Privilege level and stack pointer when the event happened.
    pub cpl: u8,
    #[serde(with = "hex")]
    pub rsp: u64,
    /// Whether delivery completed (false: it faulted, and the next event is the result).
    pub delivered: Option<bool>,
    /// RSP after the frame was pushed: which stack the handler runs on.
    #[serde(with = "hex_opt")]
    pub stack: Option<u64>,
    /// IST index used by the gate (0: none).
    pub ist: Option<u8>,
}

impl FaultEvent {
    pub fn kind_name(source: EventSource) -> &'static str {
        match source {
            EventSource::Exception => "exception",
            EventSource::External => "external",
            EventSource::Software => "software",
            EventSource::Icebp => "icebp",
        }
    }

    /// The fields both vmscope and QEMU's log provide, for comparing the two.
    pub fn comparable(&self) -> (u8, Option<u32>, Option<u64>, u16, u64, u8, u64) {
        (
            self.vector,
            self.error_code,
            self.cr2,
            self.cs,
            self.rip,
            self.cpl,
            self.rsp,
        )
    }
}

/// Where the CPU sends fault events.
pub trait FaultSink: Send {
    fn event(&mut self, e: &FaultEvent);
    /// Flush; reports the first write error seen.
    fn finish(&mut self) -> io::Result<()>;
}

/// JSON Lines to a file or any other writer.
pub struct JsonlSink {
    out: Box<dyn Write + Send>,
    error: Option<io::Error>,
}

impl JsonlSink {
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self::new(Box::new(BufWriter::new(File::create(path)?))))
    }
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        JsonlSink { out, error: None }
    }
}

impl FaultSink for JsonlSink {
    fn event(&mut self, e: &FaultEvent) {
        if self.error.is_some() {
            return;
        }
        let r = serde_json::to_writer(&mut self.out, e)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        if let Err(err) = r {
            self.error = Some(err);
        }
    }
    fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

/// Collects events in memory (tests, and the linux-user runner).
#[derive(Default)]
pub struct VecSink(pub Vec<FaultEvent>);

impl FaultSink for VecSink {
    fn event(&mut self, e: &FaultEvent) {
        self.0.push(e.clone());
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Parse a JSON Lines fault trace.
pub fn read_jsonl(text: &str) -> Result<Vec<FaultEvent>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// Convert QEMU's `-d int` log into fault events. QEMU logs every delivery attempt in
/// protected/long mode as
/// `N: v=0e e=0002 i=0 cpl=3 IP=0033:0000000000401000 pc=... SP=002b:00007ffc... CR2=...`,
/// immediately preceded by `Servicing hardware INT=0xNN` for external interrupts (in real
/// mode, e.g. in the firmware, only that line appears). Other lines (register dumps,
/// `check_exception`) are skipped.
pub fn from_qemu_int_log(text: &str) -> Vec<FaultEvent> {
    let mut events = Vec::new();
    let mut external = false;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(ev) = parse_qemu_event(t, external) {
            events.push(ev);
        }
        external = t.starts_with("Servicing hardware INT=");
    }
    events
}

fn parse_qemu_event(t: &str, external: bool) -> Option<FaultEvent> {
    let (_, rest) = t.split_once(": v=")?;
    let mut fields = rest.split_whitespace();
    let vector = u8::from_str_radix(fields.next()?, 16).ok()?;
    let mut ev = FaultEvent {
        icount: None,
        cpu: 0,
        vector,
        name: vector_name(vector).to_string(),
        kind: String::new(),
        error_code: None,
        cr2: None,
        cs: 0,
        rip: 0,
        cpl: 0,
        rsp: 0,
        delivered: None,
        stack: None,
        ist: None,
    };
    let (mut code, mut is_int) = (0u32, false);
    for f in fields {
        let (k, v) = f.split_once('=')?;
        match k {
            "e" => code = u32::from_str_radix(v, 16).ok()?,
            "i" => is_int = v == "1",
            "cpl" => ev.cpl = v.parse().ok()?,
            "IP" => {
                let (cs, ip) = v.split_once(':')?;
                ev.cs = u16::from_str_radix(cs, 16).ok()?;
                ev.rip = u64::from_str_radix(ip, 16).ok()?;
            }
            "SP" => {
                let (_, sp) = v.split_once(':')?;
                ev.rsp = u64::from_str_radix(sp, 16).ok()?;
            }
            "CR2" => ev.cr2 = Some(u64::from_str_radix(v, 16).ok()?),
            _ => {}
        }
    }
    let source = if is_int {
        EventSource::Software
    } else if external || vector == crate::cpu::exception::vector::NMI {
        EventSource::External
    } else {
        EventSource::Exception
    };
    ev.kind = FaultEvent::kind_name(source).to_string();
    if source == EventSource::Exception && has_error_code(vector) {
        ev.error_code = Some(code);
    }
    if vector != crate::cpu::exception::vector::PF {
        ev.cr2 = None;
    }
    Some(ev)
}

mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
    pub fn parse(s: &str) -> Result<u64, String> {
        let digits = s
            .strip_prefix("0x")
            .ok_or_else(|| format!("expected 0x…, got {s:?}"))?;
        u64::from_str_radix(digits, 16).map_err(|e| format!("{s:?}: {e}"))
    }
}

mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&format!("{v:#x}")),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| super::hex::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_LOG: &str = "\
Servicing hardware INT=0x08
check_exception old: 0xffffffff new 0xe
     0: v=0e e=0006 i=0 cpl=3 IP=0033:0000008000000010 pc=0000008000000010 SP=002b:0000008000010fc0 CR2=0000008000012000
RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000
     1: v=80 e=0000 i=1 cpl=3 IP=0033:0000008000000020 pc=0000008000000020 SP=002b:0000008000010fc0 env->regs[R_EAX]=0000000000000000
Servicing hardware INT=0xec
     2: v=ec e=0000 i=0 cpl=0 IP=0008:ffffffff80201000 pc=ffffffff80201000 SP=0010:ffffffff80300000 env->regs[R_EAX]=0000000000000001
     3: v=08 e=0000 i=0 cpl=0 IP=0008:ffffffff80201234 pc=ffffffff80201234 SP=0010:ffffffff80300000 env->regs[R_EAX]=0000000000000001
";

    #[test]
    fn qemu_log_converts_to_events() {
        let ev = from_qemu_int_log(QEMU_LOG);
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[0].vector, 14);
        assert_eq!(ev[0].error_code, Some(6));
        assert_eq!(ev[0].cr2, Some(0x80_0001_2000));
        assert_eq!((ev[0].cs, ev[0].rip, ev[0].cpl), (0x33, 0x80_0000_0010, 3));
        assert_eq!(ev[0].rsp, 0x80_0001_0fc0);
        assert_eq!(ev[1].kind, "software");
        assert_eq!(ev[1].error_code, None);
        assert_eq!(ev[2].kind, "external");
        assert_eq!(ev[3].kind, "exception");
        assert_eq!(ev[3].error_code, Some(0));
        assert_eq!(ev[3].cr2, None);
    }

    #[test]
    fn jsonl_round_trip_keeps_64_bit_addresses() {
        let e = FaultEvent {
            icount: Some(7),
            cpu: 0,
            vector: 14,
            name: "#PF".into(),
            kind: "exception".into(),
            error_code: Some(2),
            cr2: Some(0xffff_ffff_8000_1234),
            cs: 8,
            rip: 0xffff_ffff_8020_0000,
            cpl: 0,
            rsp: 0xffff_ffff_8030_0000,
            delivered: Some(true),
            stack: Some(0xffff_ffff_8040_0000),
            ist: Some(1),
        };
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.contains("\"cr2\":\"0xffffffff80001234\""), "{line}");
        assert_eq!(read_jsonl(&line).unwrap(), vec![e]);
        assert!(read_jsonl("{\"vector\":1}").is_err());
    }
}
