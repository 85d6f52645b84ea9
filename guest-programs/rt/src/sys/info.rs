//! System information: uname, getrandom.

use super::nr::*;
use super::{check, syscall1, syscall3, SysResult};

/// Length of each `struct utsname` field, including the NUL.
pub const UTSNAME_LEN: usize = 65;

/// `struct utsname` (six NUL-terminated fields of 65 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utsname {
    /// Operating system name (`"Linux"`).
    pub sysname: [u8; UTSNAME_LEN],
    /// Host name.
    pub nodename: [u8; UTSNAME_LEN],
    /// Kernel release.
    pub release: [u8; UTSNAME_LEN],
    /// Kernel version.
    pub version: [u8; UTSNAME_LEN],
    /// Hardware name (`"x86_64"`).
    pub machine: [u8; UTSNAME_LEN],
    /// NIS domain name.
    pub domainname: [u8; UTSNAME_LEN],
}

impl Utsname {
    /// The bytes of a field up to (not including) its NUL.
    pub fn field(raw: &[u8; UTSNAME_LEN]) -> &[u8] {
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        &raw[..len]
    }
}

/// `uname(&buf)`.
pub fn uname() -> SysResult<Utsname> {
    let mut u = Utsname {
        sysname: [0; UTSNAME_LEN],
        nodename: [0; UTSNAME_LEN],
        release: [0; UTSNAME_LEN],
        version: [0; UTSNAME_LEN],
        machine: [0; UTSNAME_LEN],
        domainname: [0; UTSNAME_LEN],
    };
    // SAFETY: u is a writable struct utsname.
    check(unsafe { syscall1(SYS_uname, &mut u as *mut Utsname as usize) })?;
    Ok(u)
}

/// `getrandom` flag: do not block if the pool is not initialized.
pub const GRND_NONBLOCK: u32 = 1;
/// `getrandom` flag: use the (legacy) blocking pool.
pub const GRND_RANDOM: u32 = 2;

/// `getrandom(buf, len, flags)`: returns the number of bytes written.
pub fn getrandom(buf: &mut [u8], flags: u32) -> SysResult<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes.
    check(unsafe {
        syscall3(
            SYS_getrandom,
            buf.as_mut_ptr() as usize,
            buf.len(),
            flags as usize,
        )
    })
}
