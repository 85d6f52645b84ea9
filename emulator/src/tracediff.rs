//! `vmscope trace diff A B`: align two fault traces (JSON Lines) and report the first
//! divergence with context, plus a one-line summary.
//!
//! Events are compared after normalisation ([`Normalize`]): fields named in `ignore` are
//! removed, events matching a `drop` rule are left out, and with `kernel_addresses` every
//! hex value in the kernel half of the address space becomes `"kernel"`, so that traces
//! from two builds of the kernel (whose code moved) still line up. The alignment is a
//! Myers diff over the normalised events (the `similar` crate), so an inserted or missing
//! event shows as such instead of shifting everything after it.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use similar::{capture_diff_slices, Algorithm, DiffOp};

use crate::trace::{format_event, TraceEvent};

/// The lowest kernel-half address (x86-64 canonical upper half).
pub const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// How events are normalised before comparison.
#[derive(Debug, Clone, Default)]
pub struct Normalize {
    /// Field names removed from every event (e.g. `icount`).
    pub ignore: Vec<String>,
    /// `(field, value)`: events whose field has this value (as text) are left out, e.g.
    /// `("kind", "external")` drops interrupts, `("event", "mmu")` CR3/INVLPG events.
    pub drop: Vec<(String, String)>,
    /// Replace kernel-half addresses by `"kernel"`.
    pub kernel_addresses: bool,
}

impl Normalize {
    /// The preset for golden traces: independent of instruction counts, of where kernel
    /// code and stacks lie, of when timer interrupts land, and of which physical pages the
    /// page tables got (CR3 values; the OS switch events say which address space runs).
    pub fn golden() -> Self {
        Normalize {
            ignore: vec!["icount".into()],
            drop: vec![
                ("kind".into(), "external".into()),
                ("op".into(), "cr3".into()),
                ("op".into(), "cr4".into()),
            ],
            kernel_addresses: true,
        }
    }

    /// The normalised form of one event, or `None` if a drop rule removes it.
    pub fn apply(&self, v: &Value) -> Option<Value> {
        let Value::Object(m) = v else {
            return Some(v.clone());
        };
        for (k, want) in &self.drop {
            if m.get(k).is_some_and(|x| value_text(x) == *want) {
                return None;
            }
        }
        let mut out = Map::new();
        for (k, x) in m {
            if self.ignore.iter().any(|i| i == k) {
                continue;
            }
            let x = match x {
                Value::String(s) if self.kernel_addresses && is_kernel_hex(s) => {
                    Value::String("kernel".into())
                }
                other => other.clone(),
            };
            out.insert(k.clone(), x);
        }
        Some(Value::Object(out))
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_kernel_hex(s: &str) -> bool {
    s.strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .is_some_and(|a| a >= KERNEL_HALF)
}

/// One trace, read and normalised.
pub struct Trace {
    /// (line number, normalised event, original event text for display).
    events: Vec<(usize, Value, String)>,
}

impl Trace {
    /// Parse JSON Lines; every non-empty line must be a JSON object.
    pub fn parse(text: &str, norm: &Normalize) -> Result<Trace, String> {
        let mut events = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            if !v.is_object() {
                return Err(format!("line {}: not a JSON object", n + 1));
            }
            let shown = serde_json::from_value::<TraceEvent>(v.clone())
                .map(|e| format_event(&e))
                .unwrap_or_else(|_| line.trim().to_string());
            if let Some(nv) = norm.apply(&v) {
                events.push((n + 1, nv, shown));
            }
        }
        Ok(Trace { events })
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The normalised events as canonical JSON text (serde_json sorts nothing, but both
    /// sides come from the same writer, so field order is stable).
    pub fn keys(&self) -> Vec<String> {
        self.events.iter().map(|(_, v, _)| v.to_string()).collect()
    }

    /// The normalised events as JSON Lines (what `--golden` files hold).
    pub fn to_jsonl(&self) -> String {
        let mut s = String::new();
        for (_, v, _) in &self.events {
            s += &v.to_string();
            s.push('\n');
        }
        s
    }
}

/// The result of a comparison.
pub struct Report {
    pub equal: bool,
    pub text: String,
}

/// Compare `a` with `b`, showing `context` events around the first divergence.
pub fn diff(a: &Trace, b: &Trace, names: (&str, &str), context: usize) -> Report {
    let (ka, kb) = (a.keys(), b.keys());
    let ops = capture_diff_slices(Algorithm::Myers, &ka, &kb);
    let (mut only_a, mut only_b, mut common) = (0usize, 0usize, 0usize);
    for op in &ops {
        match *op {
            DiffOp::Equal { len, .. } => common += len,
            DiffOp::Delete { old_len, .. } => only_a += old_len,
            DiffOp::Insert { new_len, .. } => only_b += new_len,
            DiffOp::Replace {
                old_len, new_len, ..
            } => {
                only_a += old_len;
                only_b += new_len;
            }
        }
    }
    let first = ops.iter().find(|op| !matches!(op, DiffOp::Equal { .. }));
    let Some(first) = first else {
        return Report {
            equal: true,
            text: format!(
                "traces are equal: {} events ({} and {} after normalisation)\n",
                a.len(),
                names.0,
                names.1
            ),
        };
    };
    let (ia, ib) = (first.old_range().start, first.new_range().start);
    let mut t = String::new();
    let line_of = |tr: &Trace, i: usize| tr.events.get(i).map_or(0, |e| e.0);
    let _ = writeln!(
        t,
        "first divergence: {}:{} / {}:{} (event {} of {}, {} of {})",
        names.0,
        line_of(a, ia),
        names.1,
        line_of(b, ib),
        ia + 1,
        a.len(),
        ib + 1,
        b.len()
    );
    for i in ia.saturating_sub(context)..ia {
        let _ = writeln!(t, "    {}", a.events[i].2);
    }
    let shown_a = first.old_range().take(context.max(1));
    let shown_b = first.new_range().take(context.max(1));
    // Both sides as compared (normalised), so that the lines can be read against each
    // other; the context around them is shown in the text format.
    for i in shown_a.clone() {
        let _ = writeln!(t, "  - {}", a.events[i].1);
    }
    for i in shown_b.clone() {
        let _ = writeln!(t, "  + {}", b.events[i].1);
    }
    if let (Some(i), Some(j)) = (shown_a.clone().next(), shown_b.clone().next()) {
        let fields = differing_fields(&a.events[i].1, &b.events[j].1);
        if !fields.is_empty() {
            let _ = writeln!(t, "    differs in: {}", fields.join(", "));
        }
    }
    let resume = first.old_range().end;
    for i in resume..(resume + context).min(a.len()) {
        let _ = writeln!(t, "    {}", a.events[i].2);
    }
    let _ = writeln!(
        t,
        "summary: traces differ: {only_a} events only in {}, {only_b} only in {}, {common} in common ({} has {}, {} has {})",
        names.0,
        names.1,
        names.0,
        a.len(),
        names.1,
        b.len()
    );
    Report {
        equal: false,
        text: t,
    }
}

/// `field: a → b` for every field whose value differs.
fn differing_fields(a: &Value, b: &Value) -> Vec<String> {
    let (Value::Object(ma), Value::Object(mb)) = (a, b) else {
        return vec![];
    };
    let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| ma.get(*k) != mb.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or("(none)".to_string(), value_text);
            format!("{k}: {} → {}", show(ma.get(k)), show(mb.get(k)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"event":"os","icount":10,"cpu":0,"pid":1,"comm":"t","what":"fault","addr":"0x1000","error_code":6,"rip":"0x401000","outcome":"demand_zero"}
{"event":"os","icount":20,"cpu":0,"pid":1,"comm":"t","what":"fault","addr":"0x2000","error_code":7,"rip":"0xffffffff80201000","outcome":"cow_copy"}
{"event":"os","icount":30,"cpu":0,"pid":1,"comm":"t","what":"exit","number":0}
"#;

    fn parse(s: &str, n: &Normalize) -> Trace {
        Trace::parse(s, n).unwrap()
    }

    #[test]
    fn equal_traces_compare_equal() {
        let n = Normalize::default();
        let r = diff(&parse(A, &n), &parse(A, &n), ("a", "b"), 3);
        assert!(r.equal, "{}", r.text);
    }

    #[test]
    fn a_changed_outcome_is_the_first_divergence() {
        let b = A.replace("cow_copy", "cow_reuse");
        let n = Normalize::default();
        let r = diff(&parse(A, &n), &parse(&b, &n), ("a", "b"), 3);
        assert!(!r.equal);
        assert!(r.text.contains("first divergence: a:2 / b:2"), "{}", r.text);
        assert!(
            r.text.contains("outcome: cow_copy → cow_reuse"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("summary: traces differ: 1 events only in a, 1 only in b, 2 in common"),
            "{}",
            r.text
        );
    }

    #[test]
    fn ignored_fields_and_kernel_addresses_do_not_count() {
        let b = A
            .replace("\"icount\":20", "\"icount\":25")
            .replace("0xffffffff80201000", "0xffffffff80209999");
        let strict = Normalize::default();
        assert!(!diff(&parse(A, &strict), &parse(&b, &strict), ("a", "b"), 1).equal);
        let lax = Normalize::golden();
        let r = diff(&parse(A, &lax), &parse(&b, &lax), ("a", "b"), 1);
        assert!(r.equal, "{}", r.text);
    }

    #[test]
    fn a_missing_event_is_aligned_not_shifted() {
        let mut lines: Vec<&str> = A.lines().collect();
        lines.remove(1);
        let b = lines.join("\n");
        let n = Normalize::default();
        let r = diff(&parse(A, &n), &parse(&b, &n), ("a", "b"), 1);
        assert!(
            r.text
                .contains("1 events only in a, 0 only in b, 2 in common"),
            "{}",
            r.text
        );
    }

    #[test]
    fn drop_rules_and_bad_input() {
        let n = Normalize {
            drop: vec![("what".into(), "exit".into())],
            ..Default::default()
        };
        assert_eq!(parse(A, &n).len(), 2);
        assert!(Trace::parse("{\"event\":", &n).is_err());
        assert!(Trace::parse("[1,2]", &n).is_err());
    }
}
