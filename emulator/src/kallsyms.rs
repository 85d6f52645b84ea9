//! The symbol table a stripped Linux kernel carries for itself (`/proc/kallsyms`), read from
//! the kernel image on the host, so traces of Debian's kernel are symbolized without its
//! `-dbg` package (whose System.map is the only other source: the one in /boot is a stub).
//!
//! scripts/kallsyms.c emits, in `.rodata`, for the base-relative format every x86-64 kernel
//! since 4.6 uses: `kallsyms_offsets` (one `int` per symbol), `kallsyms_relative_base`
//! (u64), `kallsyms_num_syms`, `kallsyms_names` (per symbol a length, one byte, or two with
//! the high bit set in the first, then that many token indices; the first character of the
//! expansion is the `nm` type), `kallsyms_markers` (the offset into the names of every
//! 256th symbol), optionally `kallsyms_seqs_of_names` (3 bytes a symbol), then
//! `kallsyms_token_table` (256 NUL-terminated strings) and `kallsyms_token_index` (u16
//! offsets into it). The labels are not in a stripped image, so the tables are found by
//! their shape, as vmlinux-to-elf does:
//!
//! 1. the token table: the digits '0'..'9' are tokens 0x30..0x39 of their own (symbol
//!    names use them, so the compressor never reuses their codes); each place where ten
//!    such one-character strings follow each other is tried, 48 strings are counted back to
//!    token 0, and the candidate is accepted only if the u16 array after it (8-aligned)
//!    gives exactly the offsets of its 256 strings;
//! 2. the markers: searching back from there, a u32 array starting with 0 and increasing
//!    by plausible steps, at least [`MIN_MARKERS`] long;
//! 3. the count: searching back from the markers, a u32 `n` that the markers allow (more
//!    than 256 × (markers − 1), at most 256 × markers) after which exactly `n` names
//!    parse and end where the markers begin (up to alignment padding);
//! 4. before the count: the relative base and the offsets (8-aligned). An offset `o` >= 0
//!    is an absolute address (per-CPU symbols, CONFIG_KALLSYMS_ABSOLUTE_PERCPU); a negative
//!    one is `relative_base - 1 - o`.
//!
//! The result is checked: the addresses of the symbols must be sorted, as the kernel
//! sorts them (per-CPU ones first). Anything that does not fit is an error, never a panic.

/// Number of strings in the token table.
const TOKENS: usize = 256;
/// A names table of fewer than this many markers (256 symbols each) is not a kernel's.
const MIN_MARKERS: usize = 16;
/// How far back from the token table the markers and names may start.
const SEARCH_BACK: usize = 64 << 20;
/// A marker step is the bytes of 256 names: at least one byte each, at most a few dozen.
const MAX_MARKER_STEP: u32 = 256 * 256;

/// One kallsyms entry: address, `nm` type character, name.
pub type KSym = (u64, char, String);

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(o..o.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(o..o.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(o..o.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn align8(x: usize) -> usize {
    (x + 7) & !7
}

/// The token table at `start`, if the token index after it agrees: its 256 strings and the
/// offset just past the index.
fn tokens_at(img: &[u8], start: usize) -> Option<Vec<&[u8]>> {
    let mut toks = Vec::with_capacity(TOKENS);
    let mut p = start;
    for _ in 0..TOKENS {
        let len = img.get(p..)?.iter().position(|&c| c == 0)?;
        toks.push(&img[p..p + len]);
        p += len + 1;
    }
    let index = align8(p);
    let mut off = 0usize;
    for (i, t) in toks.iter().enumerate() {
        if u16_at(img, index + 2 * i)? as usize != off {
            return None;
        }
        off += t.len() + 1;
    }
    Some(toks)
}

/// Step 1: the token table (its start and strings).
fn find_token_table(img: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
    let digits: Vec<u8> = (b'0'..=b'9').flat_map(|c| [c, 0]).collect();
    let mut from = 0;
    while let Some(k) = img[from..].windows(digits.len()).position(|w| w == digits) {
        let at = from + k;
        from = at + 1;
        // Back from token 0x30 ('0') to token 0: 48 strings, each ending in a NUL.
        let mut start = at;
        let mut ok = true;
        for _ in 0..usize::from(b'0') {
            match start
                .checked_sub(1)
                .and_then(|e| img[..e].iter().rposition(|&c| c == 0))
            {
                Some(nul) => start = nul + 1,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            if let Some(t) = tokens_at(img, start) {
                return Some((start, t));
            }
        }
    }
    None
}

/// Step 2: the markers before `before`: their start and count.
fn find_markers(img: &[u8], before: usize, min_markers: usize) -> Option<(usize, usize)> {
    let lowest = before.saturating_sub(SEARCH_BACK);
    let mut p = (before & !3).checked_sub(4)?;
    while p > lowest {
        if u32_at(img, p)? == 0 {
            let (mut q, mut prev, mut count) = (p + 4, 0u32, 1usize);
            while let Some(v) = u32_at(img, q) {
                if v <= prev || v - prev > MAX_MARKER_STEP || q >= before {
                    break;
                }
                prev = v;
                q += 4;
                count += 1;
            }
            if count >= min_markers {
                return Some((p, count));
            }
        }
        p -= 4;
    }
    None
}

/// The end of `n` names from `start`, if they all lie before `limit`.
fn names_end(img: &[u8], start: usize, n: usize, limit: usize) -> Option<usize> {
    let mut p = start;
    for _ in 0..n {
        let first = *img.get(p)? as usize;
        let len = if first & 0x80 != 0 {
            p += 2;
            (first & 0x7f) | (*img.get(p - 1)? as usize) << 7
        } else {
            p += 1;
            first
        };
        p += len;
        if p > limit {
            return None;
        }
    }
    Some(p)
}

/// Step 3: `kallsyms_num_syms` before the markers at `markers` (`count` of them): its
/// offset, the count of symbols and where the names start.
fn find_num_syms(img: &[u8], markers: usize, count: usize) -> Option<(usize, usize, usize)> {
    let (lo, hi) = ((count - 1) * 256, count * 256);
    let lowest = markers.saturating_sub(SEARCH_BACK);
    let mut p = markers.checked_sub(4)? & !3;
    while p > lowest {
        let n = u32_at(img, p)? as usize;
        if n > lo && n <= hi {
            for start in [p + 4, align8(p + 4)] {
                if let Some(end) = names_end(img, start, n, markers) {
                    if end + 8 > markers {
                        return Some((p, n, start));
                    }
                }
            }
        }
        p -= 4;
    }
    None
}

/// The kallsyms of a kernel image (a vmlinux ELF, or any image holding its `.rodata`).
pub fn from_image(img: &[u8]) -> Result<Vec<KSym>, String> {
    decode(img, MIN_MARKERS)
}

fn decode(img: &[u8], min_markers: usize) -> Result<Vec<KSym>, String> {
    let (tt, toks) = find_token_table(img).ok_or("no kallsyms token table in the image")?;
    let (markers, count) = find_markers(img, tt, min_markers).ok_or("no kallsyms markers")?;
    let (num_at, n, names) =
        find_num_syms(img, markers, count).ok_or("no kallsyms_num_syms before the markers")?;
    let base_at = num_at.checked_sub(8).ok_or("truncated kallsyms")?;
    let base = u64_at(img, base_at).ok_or("truncated kallsyms")?;
    let offsets = base_at
        .checked_sub(4 * n)
        .map(|s| s & !7)
        .ok_or("truncated kallsyms offsets")?;
    let mut out = Vec::with_capacity(n);
    let mut p = names;
    let mut prev = 0u64;
    for k in 0..n {
        let first = img[p] as usize;
        let len = if first & 0x80 != 0 {
            p += 2;
            (first & 0x7f) | (img[p - 1] as usize) << 7
        } else {
            p += 1;
            first
        };
        let mut s = Vec::new();
        for &t in &img[p..p + len] {
            s.extend_from_slice(toks[t as usize]);
        }
        p += len;
        let off = u32_at(img, offsets + 4 * k).ok_or("truncated kallsyms offsets")? as i32;
        let addr = if off >= 0 {
            off as u64
        } else {
            base.wrapping_sub(1).wrapping_sub(off as i64 as u64)
        };
        if addr < prev {
            return Err(format!(
                "kallsyms not sorted at symbol {k} ({addr:#x} after {prev:#x}): not this format"
            ));
        }
        prev = addr;
        let Some((&ty, name)) = s.split_first() else {
            continue;
        };
        out.push((addr, ty as char, String::from_utf8_lossy(name).into_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic image in the base-relative layout: 600 symbols (3 markers), tokens
    /// that are the byte values themselves except token 0, "do_".
    fn image() -> (Vec<u8>, Vec<KSym>) {
        let base = 0xffff_ffff_8100_0000u64;
        let syms: Vec<KSym> = (0..600u64)
            .map(|i| {
                let ty = if i % 3 == 0 { 't' } else { 'T' };
                (base + i * 0x40, ty, format!("do_fn{i}"))
            })
            .collect();
        let mut toks: Vec<Vec<u8>> = (0..=255u8).map(|c| vec![c]).collect();
        toks[0] = b"do_".to_vec();
        let mut img = vec![0x5au8; 64]; // something before
        while !img.len().is_multiple_of(8) {
            img.push(0);
        }
        for (a, _, _) in &syms {
            let off = -((a - base) as i64) - 1;
            img.extend_from_slice(&(off as i32).to_le_bytes());
        }
        while !img.len().is_multiple_of(8) {
            img.push(0);
        }
        img.extend_from_slice(&base.to_le_bytes());
        img.extend_from_slice(&(syms.len() as u32).to_le_bytes());
        img.extend_from_slice(&[0; 4]);
        let mut names = Vec::new();
        let mut markers = Vec::new();
        for (i, (_, ty, name)) in syms.iter().enumerate() {
            if i % 256 == 0 {
                markers.push(names.len() as u32);
            }
            let rest = name.strip_prefix("do_").unwrap();
            let mut enc = vec![*ty as u8, 0];
            enc.extend_from_slice(rest.as_bytes());
            names.push(enc.len() as u8);
            names.extend_from_slice(&enc);
        }
        img.extend_from_slice(&names);
        while !img.len().is_multiple_of(8) {
            img.push(0);
        }
        for m in &markers {
            img.extend_from_slice(&m.to_le_bytes());
        }
        while !img.len().is_multiple_of(8) {
            img.push(0);
        }
        let mut offs = Vec::new();
        let mut o = 0u16;
        for t in &toks {
            offs.push(o);
            img.extend_from_slice(t);
            img.push(0);
            o += t.len() as u16 + 1;
        }
        while !img.len().is_multiple_of(8) {
            img.push(0);
        }
        for o in offs {
            img.extend_from_slice(&o.to_le_bytes());
        }
        img.extend_from_slice(b"trailing data");
        (img, syms)
    }

    #[test]
    fn decodes_a_synthetic_table() {
        let (img, syms) = image();
        let (_, toks) = find_token_table(&img).unwrap();
        assert_eq!(toks[0], b"do_");
        // The synthetic table has 3 markers, fewer than a kernel's minimum.
        assert_eq!(decode(&img, 3).unwrap(), syms);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(from_image(b"").is_err());
        assert!(from_image(&[0u8; 4096]).is_err());
        let (img, _) = image();
        // Too few markers for a kernel: refused rather than guessed.
        assert!(from_image(&img).is_err());
        for cut in [100, img.len() / 2, img.len() - 600] {
            assert!(from_image(&img[..cut]).is_err());
        }
    }
}
