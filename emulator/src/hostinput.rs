//! Host stdin as the guest's COM1 input (`vmscope boot` with a kernel of the user's), as
//! QEMU's `-serial mon:stdio`: on a terminal, raw mode (every key, Ctrl-C included, goes
//! to the guest) with Ctrl-A X to leave and Ctrl-A Ctrl-A to send a Ctrl-A; from a pipe
//! or a file, the bytes as they are. A reader thread fills the UART's input queue; the
//! machine moves the bytes into the receive FIFO when it services events.
//!
//! Determinism: when stdin is not used (closed, `/dev/null` or any character device
//! other than a terminal) nothing is attached and a run is as deterministic as ever. With
//! input attached, *when* bytes arrive relative to the guest's instructions depends on
//! the host (typing speed, pipe timing): such a run is not reproducible.

use crate::devices::uart16550::{flush_consoles, SerialInput};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set when the reader thread saw the end of stdin.
static INPUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether host input has ended (nothing more will arrive).
pub fn input_closed() -> bool {
    INPUT_CLOSED.load(Ordering::Acquire)
}

/// QEMU's escape key: Ctrl-A.
const ESCAPE: u8 = 0x01;
/// After the escape: leave.
const QUIT: [u8; 2] = [b'x', b'X'];

/// The terminal settings to restore on exit.
static SAVED_TERMIOS: Mutex<Option<libc::termios>> = Mutex::new(None);

/// What stdin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinKind {
    Terminal,
    /// A pipe, FIFO, socket or regular file.
    Stream,
    /// Closed, /dev/null or another device: no input.
    None,
}

/// Classify file descriptor 0.
pub fn stdin_kind() -> StdinKind {
    // SAFETY: fstat and isatty only read the descriptor's state into `st`.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(0, &mut st) != 0 {
            return StdinKind::None;
        }
        if libc::isatty(0) == 1 {
            return StdinKind::Terminal;
        }
        match st.st_mode & libc::S_IFMT {
            libc::S_IFIFO | libc::S_IFREG | libc::S_IFSOCK => StdinKind::Stream,
            _ => StdinKind::None,
        }
    }
}

/// Put the terminal in raw mode (remembering how it was).
fn enter_raw_mode() {
    // SAFETY: termios calls on descriptor 0 with a properly sized, initialised struct.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return;
        }
        if let Ok(mut saved) = SAVED_TERMIOS.lock() {
            *saved = Some(t);
        }
        let mut raw = t;
        libc::cfmakeraw(&mut raw);
        // Keep output post-processing: the emulator's own messages use plain newlines.
        raw.c_oflag = t.c_oflag;
        libc::tcsetattr(0, libc::TCSANOW, &raw);
    }
}

/// Restore the terminal if raw mode was entered (safe to call more than once).
pub fn restore_terminal() {
    if let Ok(mut saved) = SAVED_TERMIOS.lock() {
        if let Some(t) = saved.take() {
            // SAFETY: restores settings read by tcgetattr on the same descriptor.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

/// Attach stdin to `input` if it is a terminal or a stream; returns whether it was.
pub fn attach(input: SerialInput) -> bool {
    let kind = stdin_kind();
    if kind == StdinKind::None {
        return false;
    }
    if kind == StdinKind::Terminal {
        enter_raw_mode();
    }
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || reader(input, kind == StdinKind::Terminal));
    spawned.is_ok()
}

fn reader(input: SerialInput, terminal: bool) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 256];
    let mut escaped = false;
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => {
                INPUT_CLOSED.store(true, Ordering::Release);
                return;
            }
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n);
        for &b in &buf[..n] {
            if !terminal {
                out.push(b);
            } else if escaped {
                escaped = false;
                if QUIT.contains(&b) {
                    restore_terminal();
                    flush_consoles();
                    eprintln!("\nvmscope: terminated (Ctrl-A X)");
                    std::process::exit(0);
                }
                if b == ESCAPE {
                    out.push(ESCAPE);
                }
            } else if b == ESCAPE {
                escaped = true;
            } else {
                out.push(b);
            }
        }
        if let Ok(mut q) = input.lock() {
            q.extend(out);
        }
    }
}
