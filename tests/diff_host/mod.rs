//! Differential test of the emulator's CPU against the host CPU.
//!
//! For every user-level integer instruction form (see `catalogue::CLASSES`), draw operands and
//! input state, run the instruction natively on the host and on `vmscope::cpu::Cpu`, and
//! compare registers, flags, RIP, memory and exceptions (`check.rs` says what is masked
//! and why). Deterministic for a given seed; every case can be replayed on its own.
//!
//! Environment:
//! - `VMSCOPE_DIFF_CASES=N`: number of cases (the test's default otherwise),
//! - `VMSCOPE_DIFF_SEED=S`: seed (decimal or 0x-hex),
//! - `VMSCOPE_DIFF_CASE=K`: run only case K of that seed (to debug a mismatch),
//! - `VMSCOPE_DIFF_BYTES="f3 e0 dd"`: with `VMSCOPE_DIFF_CASE`, run these bytes on that
//!   case's inputs instead (to experiment with a variant),
//! - `VMSCOPE_DIFF_CLASS=text`: only classes whose name contains `text`,
//! - `VMSCOPE_DIFF_TRACE=1`: print every case before it runs (if the harness crashes),
//! - `VMSCOPE_DIFF_UNDEFINED=1`: also report how often the emulator's undefined flags
//!   happen to equal the host's, per mnemonic and flag (never a failure),
//! - `VMSCOPE_DIFF_LIST=1`: list the forms of every class,
//! - `VMSCOPE_DIFF_SHOW=N`: print the first N mismatches in full (default 10).

pub mod catalogue;
pub mod check;
pub mod emu;
pub mod gen;
pub mod layout;
pub mod native;
pub mod rng;
pub mod simd;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The input state of one case.
#[derive(Debug, Clone)]
pub struct Input {
    /// GPRs in encoding order.
    pub gpr: [u64; 16],
    pub flags: u64,
    /// The arena's contents.
    pub arena: Vec<u8>,
    /// The x87/SSE state (FXSAVE64 image).
    pub fx: Vec<u8>,
}

/// What one side (host or emulator) produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub gpr: [u64; 16],
    pub flags: u64,
    /// Where control went (the landing pad), or the faulting instruction.
    pub rip: u64,
    /// Exception vector, if the instruction faulted.
    pub fault: Option<u8>,
    /// For #PF: the faulting linear address.
    pub fault_addr: Option<u64>,
    pub arena: Vec<u8>,
    /// The x87/SSE state after the instruction (FXSAVE64 image).
    pub fx: Vec<u8>,
    /// The emulator stopped for a reason of its own (unimplemented instruction, ...).
    pub note: Option<String>,
    /// The host run went wrong in a way that is the generator's fault.
    pub harness_error: Option<String>,
}

/// Run parameters.
#[derive(Debug, Clone)]
pub struct Config {
    pub cases: u64,
    pub seed: u64,
    pub only_case: Option<u64>,
    pub class_filter: Option<String>,
    pub show: usize,
    /// Also tally, per mnemonic, how often the emulator's values of the undefined flags
    /// agree with the host's (informational: they are never a mismatch).
    pub undefined_report: bool,
    /// Print each case before running it (to find a case that crashes the harness).
    pub trace: bool,
    /// With `only_case`: run these instruction bytes instead of the generated ones.
    pub bytes: Option<Vec<u8>>,
}

/// The seed of the default run.
pub const DEFAULT_SEED: u64 = 0x5eed_0002;
/// A form the generator fails to fill in this many times in a row is reported.
const MAX_GENERATE_ATTEMPTS: u32 = 200;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().replace('_', "");
    let parsed = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

impl Config {
    pub fn from_env(default_cases: u64) -> Config {
        Config {
            cases: env_u64("VMSCOPE_DIFF_CASES").unwrap_or(default_cases),
            seed: env_u64("VMSCOPE_DIFF_SEED").unwrap_or(DEFAULT_SEED),
            only_case: env_u64("VMSCOPE_DIFF_CASE"),
            class_filter: std::env::var("VMSCOPE_DIFF_CLASS").ok(),
            show: env_u64("VMSCOPE_DIFF_SHOW").unwrap_or(10) as usize,
            trace: std::env::var_os("VMSCOPE_DIFF_TRACE").is_some(),
            undefined_report: std::env::var_os("VMSCOPE_DIFF_UNDEFINED").is_some(),
            bytes: std::env::var("VMSCOPE_DIFF_BYTES").ok().map(|h| {
                h.split_whitespace()
                    .map(|b| u8::from_str_radix(b, 16).expect("VMSCOPE_DIFF_BYTES: hex bytes"))
                    .collect()
            }),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct ClassStats {
    pub cases: u64,
    /// Cases where the host raised an exception (#DE, #UD, #GP) that was compared.
    pub faults: u64,
    pub mismatches: u64,
    pub codes_seen: BTreeSet<String>,
    pub codes_total: usize,
}

#[derive(Debug, Default)]
pub struct Report {
    pub classes: Vec<(&'static str, ClassStats)>,
    pub cases: u64,
    pub mismatches: u64,
    pub harness_errors: u64,
    /// Draws the generator threw away (a form that did not encode as drawn, ...).
    pub rejected: u64,
    pub reject_reasons: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// Full descriptions of the first mismatches and harness errors.
    pub details: Vec<String>,
    /// mnemonic -> (cases with an undefined flag, per flag: cases where host and
    /// emulator differ in it).
    pub undefined: BTreeMap<String, (u64, BTreeMap<&'static str, u64>)>,
}

impl Report {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:<42} {:>9} {:>7} {:>6} {:>10}\n",
            "class", "cases", "faults", "forms", "mismatches"
        );
        let mut forms = 0;
        let mut forms_seen = 0;
        for (name, c) in &self.classes {
            forms += c.codes_total;
            forms_seen += c.codes_seen.len();
            s += &format!(
                "{name:<42} {:>9} {:>7} {:>6} {:>10}\n",
                c.cases,
                c.faults,
                format!("{}/{}", c.codes_seen.len(), c.codes_total),
                c.mismatches
            );
        }
        s += &format!(
            "total: {} cases, {forms_seen}/{forms} forms, {} mismatches, {} harness errors, \
             {} rejected draws, {:.1} s ({:.0} cases/s)\n",
            self.cases,
            self.mismatches,
            self.harness_errors,
            self.rejected,
            self.elapsed.as_secs_f64(),
            self.cases as f64 / self.elapsed.as_secs_f64().max(1e-9)
        );
        if !self.undefined.is_empty() {
            s += "undefined flags: cases where the emulator's value differs from the host's\n";
            for (m, (n, per_flag)) in &self.undefined {
                let flags: Vec<String> = per_flag
                    .iter()
                    .map(|(f, k)| format!("{f} {:.0}%", 100.0 * *k as f64 / *n as f64))
                    .collect();
                s += &format!("  {m:<10} {n:>8} cases: {}\n", flags.join(", "));
            }
        }
        if !self.reject_reasons.is_empty() {
            let mut r: Vec<_> = self.reject_reasons.iter().collect();
            r.sort_by(|a, b| b.1.cmp(a.1));
            s += "most frequent rejections:\n";
            for (why, n) in r.iter().take(5) {
                s += &format!("  {n:>8}  {why}\n");
            }
        }
        s
    }
}

/// One host environment per process at a time (fixed mappings, signal handlers).
static HOST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Run the differential test.
pub fn run(cfg: &Config) -> Report {
    let _guard = HOST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cat = catalogue::Catalogue::build();
    let selected: Vec<usize> = (0..cat.classes.len())
        .filter(|&c| {
            !cat.classes[c].1.is_empty()
                && cfg
                    .class_filter
                    .as_ref()
                    .is_none_or(|f| cat.classes[c].0.contains(f.as_str()))
        })
        .collect();
    assert!(!selected.is_empty(), "no instruction class selected");
    let mut report = Report {
        classes: cat
            .classes
            .iter()
            .map(|(n, codes)| {
                (
                    *n,
                    ClassStats {
                        codes_total: codes.len(),
                        ..Default::default()
                    },
                )
            })
            .collect(),
        ..Default::default()
    };
    if std::env::var_os("VMSCOPE_DIFF_LIST").is_some() {
        for (name, codes) in &cat.classes {
            println!("{name}: {codes:?}");
        }
    }
    let mut host = native::Native::new().unwrap_or_else(|e| panic!("host set-up: {e}"));
    let mut emu = emu::Emu::new(host.selectors, &native::code_template());
    let start = Instant::now();
    let range = match cfg.only_case {
        Some(k) => k..k + 1,
        None => 0..cfg.cases,
    };
    for index in range {
        let mut rng = rng::Rng::for_case(cfg.seed, index);
        let class = selected[rng.below(selected.len() as u64) as usize];
        let codes = &cat.classes[class].1;
        let mut code = codes[rng.below(codes.len() as u64) as usize];
        let mut attempts = 0;
        let case = loop {
            match gen::generate(&mut rng, code) {
                Ok(c) => break c,
                Err(why) => {
                    report.rejected += 1;
                    *report.reject_reasons.entry(why.clone()).or_default() += 1;
                    attempts += 1;
                    if attempts == MAX_GENERATE_ATTEMPTS {
                        report.harness_errors += 1;
                        report.details.push(format!(
                            "harness: cannot generate {code:?} (last reason: {why})"
                        ));
                        code = codes[rng.below(codes.len() as u64) as usize];
                        attempts = 0;
                    }
                }
            }
        };
        let case = match (&cfg.bytes, cfg.only_case) {
            (Some(b), Some(_)) => gen::with_bytes(case, b),
            _ => case,
        };
        if cfg.trace {
            eprintln!(
                "case {index}: {} {:02x?} rsp={:#x}",
                check::instr_text(&case.instr),
                case.bytes,
                case.input.gpr[4]
            );
        }
        let mut h = host.run(&case.patch, &case.input);
        let e = emu.run(&case.patch, &case.input);
        if h.fault == Some(check::PF) && !case.may_page_fault && h.harness_error.is_none() {
            h.harness_error = Some(format!(
                "host page fault at {:#x}: the generator left the arena",
                h.fault_addr.unwrap_or(0)
            ));
        }
        let mask = check::undefined(&case);
        let stats = &mut report.classes[class].1;
        stats.cases += 1;
        stats.codes_seen.insert(format!("{:?}", case.code));
        report.cases += 1;
        if h.fault.is_some() && h.harness_error.is_none() {
            stats.faults += 1;
        }
        let name = cat.classes[class].0;
        let title = format!(
            "case {index} (VMSCOPE_DIFF_SEED={:#x} VMSCOPE_DIFF_CASE={index}) class {name}",
            cfg.seed
        );
        if let Some(err) = &h.harness_error {
            report.harness_errors += 1;
            if report.details.len() < cfg.show {
                report.details.push(format!(
                    "HARNESS ERROR: {err}\n{}",
                    check::describe(&case, &title, &h, &e, &mask, &[])
                ));
            }
            continue;
        }
        let diffs = check::compare(&h, &e, &mask);
        if cfg.undefined_report && h.fault.is_none() && mask.flags != 0 {
            let entry = report
                .undefined
                .entry(format!("{:?}", case.instr.mnemonic()))
                .or_default();
            entry.0 += 1;
            let differ = (h.flags ^ e.flags) & mask.flags;
            for (bit, name) in check::STATUS_NAMES {
                if mask.flags & bit != 0 {
                    *entry.1.entry(name).or_default() += (differ & bit != 0) as u64;
                }
            }
        }
        if cfg.only_case.is_some() && diffs.is_empty() {
            // A replayed case is always shown.
            report.details.push(format!(
                "AGREE {}",
                check::describe(&case, &title, &h, &e, &mask, &diffs)
            ));
        }
        if !diffs.is_empty() {
            stats.mismatches += 1;
            report.mismatches += 1;
            if report.details.len() < cfg.show {
                report.details.push(format!(
                    "MISMATCH {}",
                    check::describe(&case, &title, &h, &e, &mask, &diffs)
                ));
            }
        }
    }
    report.elapsed = start.elapsed();
    report
}
