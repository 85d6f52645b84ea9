//! Command-line arguments, environment variables and the auxiliary vector,
//! read from the initial process stack that `_start` hands over.
//!
//! All strings point into the initial stack, which lives as long as the
//! process, hence `'static`. Arguments are bytes, not necessarily UTF-8:
//! [`Arg`] gives the bytes, an optional `&str`, and a lossy `Display`.

use core::ffi::{c_char, CStr};
use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// End of the auxiliary vector.
pub const AT_NULL: usize = 0;
/// Entry should be ignored.
pub const AT_IGNORE: usize = 1;
/// File descriptor of the program.
pub const AT_EXECFD: usize = 2;
/// Address of the program headers of the executable.
pub const AT_PHDR: usize = 3;
/// Size of one program header entry.
pub const AT_PHENT: usize = 4;
/// Number of program headers.
pub const AT_PHNUM: usize = 5;
/// System page size.
pub const AT_PAGESZ: usize = 6;
/// Base address of the interpreter (0 for static programs).
pub const AT_BASE: usize = 7;
/// Flags (unused, 0).
pub const AT_FLAGS: usize = 8;
/// Entry point of the program.
pub const AT_ENTRY: usize = 9;
/// Program is not ELF.
pub const AT_NOTELF: usize = 10;
/// Real user id.
pub const AT_UID: usize = 11;
/// Effective user id.
pub const AT_EUID: usize = 12;
/// Real group id.
pub const AT_GID: usize = 13;
/// Effective group id.
pub const AT_EGID: usize = 14;
/// Address of a string identifying the CPU (`"x86_64"`).
pub const AT_PLATFORM: usize = 15;
/// CPU capability bits (CPUID leaf 1 EDX on x86).
pub const AT_HWCAP: usize = 16;
/// Frequency at which `times()` increments.
pub const AT_CLKTCK: usize = 17;
/// Secure mode (setuid etc.).
pub const AT_SECURE: usize = 23;
/// Address of a string identifying the real platform.
pub const AT_BASE_PLATFORM: usize = 24;
/// Address of 16 random bytes.
pub const AT_RANDOM: usize = 25;
/// More CPU capability bits.
pub const AT_HWCAP2: usize = 26;
/// Address of the filename used to execute the program.
pub const AT_EXECFN: usize = 31;
/// vDSO entry point (i386 only).
pub const AT_SYSINFO: usize = 32;
/// Address of the vDSO ELF header.
pub const AT_SYSINFO_EHDR: usize = 33;
/// Minimal stack size for signal delivery.
pub const AT_MINSIGSTKSZ: usize = 51;

static ARGC: AtomicUsize = AtomicUsize::new(0);
static ARGV: AtomicPtr<*const c_char> = AtomicPtr::new(ptr::null_mut());
static ENVP: AtomicPtr<*const c_char> = AtomicPtr::new(ptr::null_mut());
static AUXV: AtomicPtr<usize> = AtomicPtr::new(ptr::null_mut());

/// Records the initial stack layout. Called once by `_start` before `main`.
///
/// # Safety
/// `sp` must point to a valid initial process stack: `argc`, `argc` argv
/// pointers and a NULL, env pointers and a NULL, then auxv pairs ending with
/// `AT_NULL`.
pub(crate) unsafe fn init(sp: *const usize) {
    let argc = *sp;
    let argv = sp.add(1) as *mut *const c_char;
    let envp = argv.add(argc + 1);
    let mut end = envp;
    while !(*end).is_null() {
        end = end.add(1);
    }
    let auxv = end.add(1) as *mut usize;
    ARGC.store(argc, Ordering::Relaxed);
    ARGV.store(argv, Ordering::Relaxed);
    ENVP.store(envp, Ordering::Relaxed);
    AUXV.store(auxv, Ordering::Relaxed);
}

/// A command-line argument or environment entry: NUL-free bytes from the
/// initial stack.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arg(&'static [u8]);

impl Arg {
    /// Reads the NUL-terminated string at `p`.
    ///
    /// # Safety
    /// `p` must point to a NUL-terminated string that lives forever.
    unsafe fn from_ptr(p: *const c_char) -> Arg {
        Arg(CStr::from_ptr(p).to_bytes())
    }

    /// The raw bytes (without the NUL).
    pub fn as_bytes(self) -> &'static [u8] {
        self.0
    }

    /// As a C string (for a path argument).
    pub fn as_cstr(self) -> &'static CStr {
        // SAFETY: the bytes came from a NUL-terminated string on the initial stack that
        // lives forever, and hold no NUL themselves.
        unsafe { CStr::from_ptr(self.0.as_ptr().cast()) }
    }

    /// The string, if it is valid UTF-8.
    pub fn to_str(self) -> Option<&'static str> {
        core::str::from_utf8(self.0).ok()
    }

    /// Splits an environment entry `KEY=VALUE` at the first `=`; an entry
    /// without `=` is all key, with an empty value.
    pub fn split_var(self) -> (Arg, Arg) {
        match self.0.iter().position(|&b| b == b'=') {
            Some(i) => (Arg(&self.0[..i]), Arg(&self.0[i + 1..])),
            None => (self, Arg(&[])),
        }
    }
}

/// Prints the bytes, replacing invalid UTF-8 sequences with U+FFFD (so valid
/// UTF-8 prints byte-exact).
impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// Iterator over a NULL-terminated array of string pointers.
#[derive(Clone)]
pub struct StrArray {
    next: *const *const c_char,
}

impl Iterator for StrArray {
    type Item = Arg;

    fn next(&mut self) -> Option<Arg> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: `next` walks an array recorded by `init`, which ends with a
        // NULL entry; we stop (and never advance) there.
        unsafe {
            let p = *self.next;
            if p.is_null() {
                self.next = ptr::null();
                return None;
            }
            self.next = self.next.add(1);
            Some(Arg::from_ptr(p))
        }
    }
}

/// Number of command-line arguments (`argc`), including the program name.
pub fn argc() -> usize {
    ARGC.load(Ordering::Relaxed)
}

/// The command-line arguments, `argv[0]` first.
pub fn args() -> StrArray {
    StrArray {
        next: ARGV.load(Ordering::Relaxed),
    }
}

/// `argv[i]`, if `i < argc`.
pub fn arg(i: usize) -> Option<Arg> {
    args().nth(i)
}

/// The raw `argv` array (NULL-terminated), e.g. to pass on to `execve`.
pub fn argv_ptr() -> *const *const c_char {
    ARGV.load(Ordering::Relaxed)
}

/// The environment entries (`KEY=VALUE`), in the order the kernel passed
/// them.
pub fn environ() -> StrArray {
    StrArray {
        next: ENVP.load(Ordering::Relaxed),
    }
}

/// The environment as `(key, value)` pairs, in order.
pub fn vars() -> impl Iterator<Item = (Arg, Arg)> {
    environ().map(Arg::split_var)
}

/// The value of the first environment variable named `key`.
pub fn var(key: &str) -> Option<Arg> {
    vars()
        .find(|(k, _)| k.as_bytes() == key.as_bytes())
        .map(|(_, v)| v)
}

/// The raw `envp` array (NULL-terminated), e.g. to pass on to `execve`.
pub fn envp_ptr() -> *const *const c_char {
    ENVP.load(Ordering::Relaxed)
}

/// Iterator over the auxiliary vector's `(type, value)` pairs (without the
/// final `AT_NULL`).
#[derive(Clone)]
pub struct Auxv {
    next: *const usize,
}

impl Iterator for Auxv {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: the vector recorded by `init` ends with an AT_NULL pair;
        // we stop there.
        unsafe {
            let ty = *self.next;
            if ty == AT_NULL {
                self.next = ptr::null();
                return None;
            }
            let val = *self.next.add(1);
            self.next = self.next.add(2);
            Some((ty, val))
        }
    }
}

/// All auxiliary vector entries, in order.
pub fn auxv_entries() -> Auxv {
    Auxv {
        next: AUXV.load(Ordering::Relaxed),
    }
}

/// The value of auxiliary vector entry `ty` (an `AT_*` constant), if present.
pub fn auxv(ty: usize) -> Option<usize> {
    auxv_entries().find(|&(t, _)| t == ty).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a fake initial stack and checks every accessor against it.
    #[test]
    fn parses_initial_stack() {
        let a0 = c"prog";
        let a1 = c"x\xffy";
        let e0 = c"A=1";
        let e1 = c"NOVALUE";
        let e2 = c"B=2=3";
        let stack: [usize; 16] = [
            2,
            a0.as_ptr() as usize,
            a1.as_ptr() as usize,
            0,
            e0.as_ptr() as usize,
            e1.as_ptr() as usize,
            e2.as_ptr() as usize,
            0,
            AT_PAGESZ,
            4096,
            AT_RANDOM,
            0x1234,
            AT_PAGESZ,
            8192,
            AT_NULL,
            0,
        ];
        // SAFETY: the fake stack and strings outlive the test (the statics
        // are only read within it).
        unsafe { init(stack.as_ptr()) };

        assert_eq!(argc(), 2);
        let args: Vec<Arg> = args().collect();
        assert_eq!(args.len(), 2);
        assert_eq!(args[0].to_str(), Some("prog"));
        assert_eq!(args[1].as_bytes(), b"x\xffy");
        assert_eq!(args[1].to_str(), None);
        assert_eq!(args[1].to_string(), "x\u{FFFD}y");
        assert_eq!(arg(2), None);

        let env: Vec<String> = environ().map(|e| e.to_string()).collect();
        assert_eq!(env, ["A=1", "NOVALUE", "B=2=3"]);
        let vars: Vec<(String, String)> = vars()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(vars[1], ("NOVALUE".into(), "".into()));
        assert_eq!(vars[2], ("B".into(), "2=3".into()));
        assert_eq!(var("B").map(|v| v.to_string()), Some("2=3".into()));
        assert_eq!(var("C"), None);

        // The first entry of a type wins; AT_NULL ends the scan.
        assert_eq!(auxv(AT_PAGESZ), Some(4096));
        assert_eq!(auxv(AT_RANDOM), Some(0x1234));
        assert_eq!(auxv(AT_ENTRY), None);
        assert_eq!(auxv_entries().count(), 3);
    }
}
