//! The newc cpio format ("SVR4 portable ASCII", magic `070701`; `070702` adds a checksum),
//! as Linux's initramfs unpacker (`init/initramfs.c`) reads it.
//!
//! Each entry is a 110-byte ASCII header (the magic and 13 fields of 8 hex digits), the
//! NUL-terminated name, NUL padding to a multiple of 4 bytes, the data, and NUL padding to a
//! multiple of 4 again. Offsets are counted from the start of the buffer. The entry named
//! `TRAILER!!!` ends an archive. Like Linux, [`entries`] accepts several archives one after
//! the other, separated by NUL bytes, and NUL padding after the last one.
//!
//! Nothing here panics on bad input: every inconsistency is a [`CpioError`] naming the byte
//! offset, and iteration stops after the first error.

use core::fmt;

/// Magic of the newc format.
pub const MAGIC: &[u8; 6] = b"070701";
/// Magic of the "crc" variant: newc plus a checksum of the data.
pub const MAGIC_CRC: &[u8; 6] = b"070702";
/// Bytes in a header, magic included.
pub const HEADER_LEN: usize = 110;
/// Name of the entry that ends an archive.
pub const TRAILER: &[u8] = b"TRAILER!!!";

/// File type bits of `mode` (`S_IFMT`) and the types.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

/// One archive member. `data` borrows from the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The path as stored, without its terminating NUL (e.g. `bin/hello`).
    pub name: &'a [u8],
    pub ino: u32,
    /// File type and permission bits, as `st_mode`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    /// Device holding the file: with `ino`, identifies hard links.
    pub dev_major: u32,
    pub dev_minor: u32,
    /// The device a character or block special file stands for.
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// File contents (a symbolic link's target).
    pub data: &'a [u8],
    /// Offset of the header in the buffer, for messages.
    pub offset: usize,
}

/// What is wrong with an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpioErrorKind {
    /// The buffer ends inside a header, name, data or padding.
    Truncated,
    /// A header does not start with `070701` or `070702`.
    BadMagic,
    /// A header field is not 8 hex digits; the field's name.
    BadField(&'static str),
    /// The name is empty or not NUL-terminated within its size.
    BadName,
    /// Padding that should be NUL is not, or an archive after a trailer is misaligned.
    BadPadding,
    /// A `070702` entry's data does not sum to its checksum.
    BadChecksum,
    /// The data ends without a `TRAILER!!!` entry.
    MissingTrailer,
}

/// An error at a byte offset of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpioError {
    pub offset: usize,
    pub kind: CpioErrorKind,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            CpioErrorKind::Truncated => "archive truncated",
            CpioErrorKind::BadMagic => "bad magic (not a newc cpio header)",
            CpioErrorKind::BadField(name) => {
                return write!(f, "cpio: bad {name} field at offset {}", self.offset)
            }
            CpioErrorKind::BadName => "bad entry name",
            CpioErrorKind::BadPadding => "bad padding",
            CpioErrorKind::BadChecksum => "checksum mismatch",
            CpioErrorKind::MissingTrailer => "no TRAILER!!! entry",
        };
        write!(f, "cpio: {what} at offset {}", self.offset)
    }
}

/// Header fields after the magic, in order.
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];

/// Iterate over the entries of `data` (trailers are not yielded).
pub fn entries(data: &[u8]) -> Entries<'_> {
    Entries {
        data,
        pos: 0,
        done: false,
    }
}

/// Iterator over archive entries; see [`entries`].
pub struct Entries<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

fn parse_hex(field: &[u8]) -> Option<u32> {
    field.iter().try_fold(0u32, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        Some((acc << 4) | d)
    })
}

impl<'a> Entries<'a> {
    fn err(&mut self, offset: usize, kind: CpioErrorKind) -> Option<Result<Entry<'a>, CpioError>> {
        self.done = true;
        Some(Err(CpioError { offset, kind }))
    }

    /// The NUL bytes from `from` to `to` (exclusive); `Truncated` if the buffer ends first.
    fn check_padding(&self, from: usize, to: usize) -> Result<(), CpioError> {
        let pad = self.data.get(from..to).ok_or(CpioError {
            offset: self.data.len(),
            kind: CpioErrorKind::Truncated,
        })?;
        match pad.iter().position(|&b| b != 0) {
            Some(i) => Err(CpioError {
                offset: from + i,
                kind: CpioErrorKind::BadPadding,
            }),
            None => Ok(()),
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let start = self.pos;
            let data = self.data;
            let Some(header) = data.get(start..).and_then(|d| d.get(..HEADER_LEN)) else {
                let kind = if start == data.len() {
                    CpioErrorKind::MissingTrailer
                } else {
                    CpioErrorKind::Truncated
                };
                return self.err(data.len(), kind);
            };
            let crc = match &header[..6] {
                m if m == MAGIC => false,
                m if m == MAGIC_CRC => true,
                _ => return self.err(start, CpioErrorKind::BadMagic),
            };
            let mut f = [0u32; 13];
            for (i, name) in FIELDS.iter().enumerate() {
                let at = 6 + 8 * i;
                match parse_hex(&header[at..at + 8]) {
                    Some(v) => f[i] = v,
                    None => return self.err(start + at, CpioErrorKind::BadField(name)),
                }
            }
            let [ino, mode, uid, gid, nlink, mtime, filesize, dev_major, dev_minor, rdev_major, rdev_minor, namesize, check] =
                f;

            // Name: NUL-terminated; dracut pads it with extra NULs inside `namesize`.
            let name_start = start + HEADER_LEN;
            let Some(name_end) = name_start.checked_add(namesize as usize) else {
                return self.err(start, CpioErrorKind::Truncated);
            };
            let Some(name_field) = data.get(name_start..name_end) else {
                return self.err(data.len(), CpioErrorKind::Truncated);
            };
            let Some(nul) = name_field.iter().position(|&b| b == 0) else {
                return self.err(name_start, CpioErrorKind::BadName);
            };
            if nul == 0 || name_field[nul..].iter().any(|&b| b != 0) {
                return self.err(name_start, CpioErrorKind::BadName);
            }
            let name = &name_field[..nul];
            let Some(data_start) = align4(name_end) else {
                return self.err(name_end, CpioErrorKind::Truncated);
            };

            if name == TRAILER {
                // The trailer's own padding may be missing at the very end of the buffer.
                let pad_end = data_start.min(data.len());
                if let Err(e) = self.check_padding(name_end, pad_end) {
                    return self.err(e.offset, e.kind);
                }
                // Skip NULs; another archive may follow at a 4-byte boundary.
                let mut next = pad_end;
                while data.get(next) == Some(&0) {
                    next += 1;
                }
                if next == data.len() {
                    self.done = true;
                    return None;
                }
                if next % 4 != 0 {
                    return self.err(next, CpioErrorKind::BadPadding);
                }
                self.pos = next;
                continue;
            }

            if let Err(e) = self.check_padding(name_end, data_start) {
                return self.err(e.offset, e.kind);
            }
            let Some(data_end) = data_start.checked_add(filesize as usize) else {
                return self.err(start, CpioErrorKind::Truncated);
            };
            let Some(contents) = data.get(data_start..data_end) else {
                return self.err(data.len(), CpioErrorKind::Truncated);
            };
            let Some(next) = align4(data_end) else {
                return self.err(data_end, CpioErrorKind::Truncated);
            };
            if let Err(e) = self.check_padding(data_end, next) {
                return self.err(e.offset, e.kind);
            }
            if crc {
                let sum = contents.iter().fold(0u32, |s, &b| s.wrapping_add(b as u32));
                if sum != check {
                    return self.err(start, CpioErrorKind::BadChecksum);
                }
            }
            self.pos = next;
            return Some(Ok(Entry {
                name,
                ino,
                mode,
                uid,
                gid,
                nlink,
                mtime,
                dev_major,
                dev_minor,
                rdev_major,
                rdev_minor,
                data: contents,
                offset: start,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// A newc header for `name` with `size` bytes of data (fields otherwise small and fixed).
    fn header(magic: &[u8; 6], name: &str, mode: u32, size: usize, check: u32) -> Vec<u8> {
        let mut h = Vec::from(&magic[..]);
        let fields = [
            7,
            mode,
            1000,
            100,
            1,
            0x5f5e_1000,
            size as u32,
            3,
            4,
            5,
            6,
            name.len() as u32 + 1,
            check,
        ];
        for v in fields {
            h.extend_from_slice(std::format!("{v:08X}").as_bytes());
        }
        h.extend_from_slice(name.as_bytes());
        h.push(0);
        while !h.len().is_multiple_of(4) {
            h.push(0);
        }
        h
    }

    fn member(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
        let mut v = header(MAGIC, name, mode, data.len(), 0);
        v.extend_from_slice(data);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    fn archive(members: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        for (n, m, d) in members {
            v.extend(member(n, *m, d));
        }
        v.extend(member("TRAILER!!!", 0, b""));
        v
    }

    fn all(data: &[u8]) -> Result<Vec<Entry<'_>>, CpioError> {
        entries(data).collect()
    }

    #[test]
    fn parses_every_field() {
        let a = archive(&[("bin", 0o40755, b""), ("bin/x", 0o100755, b"hello")]);
        let e = all(&a).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].name, b"bin/x");
        assert_eq!(e[1].data, b"hello");
        assert_eq!(
            (e[1].ino, e[1].mode, e[1].uid, e[1].gid, e[1].nlink, e[1].mtime),
            (7, 0o100755, 1000, 100, 1, 0x5f5e_1000)
        );
        assert_eq!(
            (
                e[1].dev_major,
                e[1].dev_minor,
                e[1].rdev_major,
                e[1].rdev_minor
            ),
            (3, 4, 5, 6)
        );
        assert_eq!(e[0].offset, 0);
        assert_eq!(e[1].offset, 116); // 110 + "bin\0" = 114 -> 116
    }

    #[test]
    fn empty_buffer_and_missing_trailer() {
        assert_eq!(
            all(b"").unwrap_err(),
            CpioError {
                offset: 0,
                kind: CpioErrorKind::MissingTrailer
            }
        );
        let a = member("x", 0o100644, b"abc");
        let err = all(&a).unwrap_err();
        assert_eq!(err.kind, CpioErrorKind::MissingTrailer);
        assert_eq!(err.offset, a.len());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let a = archive(&[("dir", 0o40755, b""), ("dir/file", 0o100644, b"0123456789")]);
        // The trailer's final name padding may be missing; anything shorter fails.
        let trailer_name_end = a.len() - 3; // 110 + "TRAILER!!!\0" = 121, padded to 124
        for cut in 0..a.len() {
            let r = all(&a[..cut]);
            if cut >= trailer_name_end {
                assert!(r.is_ok(), "cut at {cut}: {r:?}");
            } else {
                assert!(r.is_err(), "cut at {cut} parsed");
            }
        }
    }

    #[test]
    fn bad_magic_hex_name_and_padding() {
        // "fo\0" ends at 113: name padding 113..116, data 116..118, data padding 118..120.
        let a = archive(&[("fo", 0o100644, b"xy")]);
        let mut bad = a.clone();
        bad[5] = b'9';
        assert_eq!(all(&bad).unwrap_err().kind, CpioErrorKind::BadMagic);

        let mut bad = a.clone();
        bad[6 + 8 + 3] = b'g'; // mode
        assert_eq!(
            all(&bad).unwrap_err(),
            CpioError {
                offset: 14,
                kind: CpioErrorKind::BadField("mode")
            }
        );

        let mut bad = a.clone();
        bad[HEADER_LEN + 2] = b'!'; // the name's NUL
        assert_eq!(all(&bad).unwrap_err().kind, CpioErrorKind::BadName);

        let mut bad = a.clone();
        bad[114] = 1;
        assert_eq!(
            all(&bad).unwrap_err(),
            CpioError {
                offset: 114,
                kind: CpioErrorKind::BadPadding
            }
        );

        let mut bad = a.clone();
        bad[119] = 1;
        assert_eq!(
            all(&bad).unwrap_err(),
            CpioError {
                offset: 119,
                kind: CpioErrorKind::BadPadding
            }
        );

        // namesize 0: an empty name.
        let mut bad = a.clone();
        bad[94..102].copy_from_slice(b"00000000");
        assert_eq!(all(&bad).unwrap_err().kind, CpioErrorKind::BadName);
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let mut a = archive(&[("f", 0o100644, b"xy")]);
        a[54..62].copy_from_slice(b"FFFFFFFF"); // filesize
        assert_eq!(all(&a).unwrap_err().kind, CpioErrorKind::Truncated);
        let mut a = archive(&[("f", 0o100644, b"xy")]);
        a[94..102].copy_from_slice(b"FFFFFFFF"); // namesize
        assert_eq!(all(&a).unwrap_err().kind, CpioErrorKind::Truncated);
    }

    #[test]
    fn crc_variant_checks_the_sum() {
        let data = b"abc";
        let sum = (b'a' + b'b') as u32 + b'c' as u32;
        for (check, ok) in [(sum, true), (sum + 1, false)] {
            let mut a = header(MAGIC_CRC, "f", 0o100644, 3, check);
            a.extend_from_slice(data);
            a.push(0);
            a.extend(member("TRAILER!!!", 0, b""));
            assert_eq!(all(&a).is_ok(), ok);
        }
    }

    #[test]
    fn padded_names_concatenated_archives_and_trailing_nuls() {
        // A name field padded with extra NULs (dracut), then a second archive after NULs.
        let mut a = header(MAGIC, "f", 0o100644, 0, 0);
        a[94..102].copy_from_slice(b"00000010"); // 16 bytes: "f" and 15 NULs
        a.truncate(HEADER_LEN);
        a.extend_from_slice(&[b'f', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // + pad to 128
        a.extend(member("TRAILER!!!", 0, b""));
        a.extend_from_slice(&[0; 512]);
        a.extend(archive(&[("g", 0o100644, b"second")]));
        a.extend_from_slice(&[0; 3]);
        let e = all(&a).unwrap();
        assert_eq!(
            e.iter().map(|e| e.name).collect::<Vec<_>>(),
            [&b"f"[..], b"g"]
        );
        assert_eq!(e[1].data, b"second");

        // Garbage after a trailer is an error, and so is a misaligned second archive.
        let mut b = archive(&[]);
        b.extend_from_slice(b"junk");
        assert_eq!(all(&b).unwrap_err().kind, CpioErrorKind::Truncated);
        b.extend_from_slice(&[b'j'; HEADER_LEN]);
        assert_eq!(all(&b).unwrap_err().kind, CpioErrorKind::BadMagic);
        let mut c = archive(&[]);
        c.push(0);
        c.extend(archive(&[]));
        assert_eq!(all(&c).unwrap_err().kind, CpioErrorKind::BadPadding);
    }

    #[test]
    fn reads_what_the_cpio_crate_writes() {
        use std::io::Write;
        let mut out = Vec::new();
        for (i, (name, mode, data)) in [("d", 0o40700u32, &b""[..]), ("d/f", 0o100600, b"12345")]
            .iter()
            .enumerate()
        {
            let mut w = ::cpio::newc::Builder::new(name)
                .ino(i as u32 + 1)
                .mode(*mode)
                .uid(1)
                .gid(2)
                .mtime(3)
                .write(&mut out, data.len() as u32);
            w.write_all(data).unwrap();
            w.finish().unwrap();
        }
        ::cpio::newc::trailer(&mut out).unwrap();
        let e = all(&out).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[1].name, e[1].data, e[1].mode, e[1].ino),
            (&b"d/f"[..], &b"12345"[..], 0o100600, 2)
        );
    }

    proptest! {
        /// Corrupting or cutting a valid archive anywhere gives entries or an error, never a
        /// panic, and the iterator ends after an error.
        #[test]
        fn damaged_archives_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut a = archive(&[("a", 0o40755, b""), ("a/b", 0o100644, b"data!"), ("l", 0o120777, b"a/b")]);
            for (i, b) in edits {
                let k = i.index(a.len());
                a[k] = b;
            }
            let n = cut.index(a.len() + 1);
            let mut it = entries(&a[..n]);
            let mut count = 0;
            while let Some(r) = it.next() {
                count += 1;
                if r.is_err() {
                    prop_assert!(it.next().is_none());
                    break;
                }
            }
            prop_assert!(count <= 4);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
            let mut d = data;
            if magic && d.len() >= 6 {
                d[..6].copy_from_slice(MAGIC);
            }
            for r in entries(&d) {
                let _ = r;
            }
        }
    }
}
