//! Parsers for the `/proc` text formats the tools (`free`, `ps`, `pmap`,
//! `vmstat`) read: they take the bytes of a file (see
//! [`crate::io::read_file`]) and never allocate.
//!
//! * `Key: 1234 kB` lines (`/proc/meminfo`, `/proc/PID/status`) and
//!   `key 1234` lines (`/proc/vmstat`, `/proc/stat`) with [`value`];
//! * `/proc/PID/stat` with [`PidStat::parse`];
//! * one line of `/proc/PID/maps` with [`MapsEntry::parse`].

/// Splits text into lines (without the `\n`).
pub fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

/// Whitespace-separated fields of a line.
pub fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
}

/// Parses a decimal `u64`.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &c| {
        if c.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

/// Parses a hexadecimal `u64` (no prefix).
pub fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &c| {
        let d = (c as char).to_digit(16)?;
        Some(n << 4 | u64::from(d))
    })
}

/// The number after `key` on the first line whose first field is `key` or
/// `key:`: `value(meminfo, "MemFree")` reads `MemFree:  1234 kB` (the unit
/// is not checked), `value(vmstat, "pgfault")` reads `pgfault 1234`.
pub fn value(text: &[u8], key: &str) -> Option<u64> {
    lines(text).find_map(|line| {
        let mut f = fields(line);
        let first = f.next()?;
        let name = first.strip_suffix(b":").unwrap_or(first);
        if name == key.as_bytes() {
            parse_u64(f.next()?)
        } else {
            None
        }
    })
}

/// The fields of `/proc/PID/stat` the tools use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PidStat<'a> {
    /// Process id.
    pub pid: u64,
    /// Command name (between the parentheses; may contain spaces and `)`).
    pub comm: &'a [u8],
    /// State letter (`R`, `S`, `D`, `Z`, `T`, ...).
    pub state: u8,
    /// Parent's pid.
    pub ppid: u64,
    /// Virtual memory size in bytes (field 23).
    pub vsize: u64,
    /// Resident set size in pages (field 24).
    pub rss: u64,
}

impl<'a> PidStat<'a> {
    /// Parses `pid (comm) state ppid ...`. The command name ends at the
    /// *last* `)`, since the name itself may contain one.
    pub fn parse(text: &'a [u8]) -> Option<PidStat<'a>> {
        let open = text.iter().position(|&b| b == b'(')?;
        let close = text.iter().rposition(|&b| b == b')')?;
        if close < open {
            return None;
        }
        let pid = parse_u64(fields(&text[..open]).next()?)?;
        let comm = &text[open + 1..close];
        // Fields after the name, numbered from 3 (state) as in proc(5).
        let rest: [&[u8]; 22] = {
            let mut it = fields(&text[close + 1..]);
            let mut a: [&[u8]; 22] = [&[]; 22];
            for slot in a.iter_mut() {
                *slot = it.next()?;
            }
            a
        };
        Some(PidStat {
            pid,
            comm,
            state: *rest[0].first()?,
            ppid: parse_u64(rest[1])?,
            vsize: parse_u64(rest[20])?,
            rss: parse_u64(rest[21])?,
        })
    }
}

/// One line of `/proc/PID/maps`:
/// `start-end perms offset dev inode [path]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapsEntry<'a> {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `rwxp` / `rwxs` (4 characters).
    pub perms: [u8; 4],
    /// File offset.
    pub offset: u64,
    /// Inode number (0 for anonymous memory).
    pub inode: u64,
    /// Path or pseudo-name (`[stack]`, `[heap]`, `[vdso]`...); empty for
    /// anonymous memory.
    pub path: &'a [u8],
}

impl<'a> MapsEntry<'a> {
    /// Parses one line (the path may contain spaces).
    pub fn parse(line: &'a [u8]) -> Option<MapsEntry<'a>> {
        let mut rest = line;
        let mut next = || -> Option<&'a [u8]> {
            let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
            rest = &rest[start..];
            let end = rest
                .iter()
                .position(|b| b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            let (field, tail) = rest.split_at(end);
            rest = tail;
            Some(field)
        };
        let range = next()?;
        let dash = range.iter().position(|&b| b == b'-')?;
        let perms: [u8; 4] = next()?.try_into().ok()?;
        let offset = parse_hex(next()?)?;
        let _dev = next()?;
        let inode = parse_u64(next()?)?;
        let path = match rest.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => &rest[i..],
            None => &[],
        };
        Some(MapsEntry {
            start: parse_hex(&range[..dash])?,
            end: parse_hex(&range[dash + 1..])?,
            perms,
            offset,
            inode,
            path,
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        let meminfo = b"MemTotal:       24683656 kB\nMemFree:        23365712 kB\nSwapTotal:             0 kB\n";
        assert_eq!(value(meminfo, "MemTotal"), Some(24683656));
        assert_eq!(value(meminfo, "SwapTotal"), Some(0));
        assert_eq!(value(meminfo, "Mem"), None);
        let vmstat = b"nr_free_pages 1206057\npgpgin 12\n";
        assert_eq!(value(vmstat, "pgpgin"), Some(12));
        assert_eq!(value(vmstat, "pgpgout"), None);
        assert_eq!(parse_u64(b"12x"), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
        assert_eq!(parse_hex(b"7ffd1234a000"), Some(0x7ffd_1234_a000));
    }

    #[test]
    fn pid_stat() {
        let line = b"761 (my prog) x) R 753 753 25304 0 -1 4194304 102 0 0 0 0 0 0 0 20 0 1 0 2524205 3133440 387 18446744073709551615 1 2\n";
        let s = PidStat::parse(line).expect("parse");
        assert_eq!(s.pid, 761);
        assert_eq!(s.comm, b"my prog) x");
        assert_eq!(s.state, b'R');
        assert_eq!(s.ppid, 753);
        assert_eq!(s.vsize, 3133440);
        assert_eq!(s.rss, 387);
        assert_eq!(PidStat::parse(b"1 (init) S 0"), None);
    }

    #[test]
    fn maps_lines() {
        let e = MapsEntry::parse(b"00400000-00401000 r--p 00000000 fd:01 1234   /bin/my prog")
            .expect("file");
        assert_eq!((e.start, e.end, e.size()), (0x400000, 0x401000, 0x1000));
        assert_eq!(&e.perms, b"r--p");
        assert_eq!((e.offset, e.inode), (0, 1234));
        assert_eq!(e.path, b"/bin/my prog");
        let a =
            MapsEntry::parse(b"7f0000000000-7f0000002000 rw-p 00000000 00:00 0 ").expect("anon");
        assert_eq!(a.path, b"");
        let s = MapsEntry::parse(
            b"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]",
        )
        .expect("stack");
        assert_eq!(s.path, b"[stack]");
        assert_eq!(MapsEntry::parse(b"garbage"), None);
    }

    #[test]
    fn parses_this_process() {
        let maps = crate::io::read_file(c"/proc/self/maps").expect("maps");
        assert!(lines(&maps).all(|l| MapsEntry::parse(l).is_some()));
        let stat = crate::io::read_file(c"/proc/self/stat").expect("stat");
        let s = PidStat::parse(&stat).expect("stat");
        assert_eq!(s.pid, std::process::id() as u64);
        let meminfo = crate::io::read_file(c"/proc/meminfo").expect("meminfo");
        assert!(value(&meminfo, "MemTotal").is_some_and(|t| t > 0));
    }
}
