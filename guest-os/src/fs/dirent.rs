//! `struct linux_dirent64` records for `getdents64`.

use alloc::vec::Vec;

/// Append one record (`d_ino`, `d_off` = the next position, `d_reclen`, `d_type`, the
/// NUL-terminated name, padded to 8 bytes); false if it does not fit in `count` bytes or
/// the buffer cannot grow.
pub fn put_dirent(
    out: &mut Vec<u8>,
    count: usize,
    ino: u64,
    next: u64,
    dtype: u8,
    name: &[u8],
) -> bool {
    let reclen = (19 + name.len() + 1).next_multiple_of(8);
    if out.len() + reclen > count || out.try_reserve(reclen).is_err() {
        return false;
    }
    let start = out.len();
    out.resize(start + reclen, 0);
    out[start..start + 8].copy_from_slice(&ino.to_le_bytes());
    out[start + 8..start + 16].copy_from_slice(&next.to_le_bytes());
    out[start + 16..start + 18].copy_from_slice(&(reclen as u16).to_le_bytes());
    out[start + 18] = dtype;
    out[start + 19..start + 19 + name.len()].copy_from_slice(name);
    true
}
