//! Standard output, written in one place. A reader that goes away early
//! (`interlock scan | head -1`) ends the output, not the program: the
//! write that meets the closed pipe (EPIPE; Rust ignores SIGPIPE) is
//! noted, later output is dropped, the command finishes what it does (the
//! demo still cleans up), and `main` exits 0 without a message, as ripgrep
//! does. `anstream::println!` would panic there instead.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Write `args` to standard output (styles stripped when it is not a
/// terminal) and flush. A closed pipe is not an error; other write errors
/// are returned.
pub fn write(args: fmt::Arguments<'_>) -> io::Result<()> {
    if closed() {
        return Ok(());
    }
    let mut out = anstream::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        r => r,
    }
}

/// Whether the reader of standard output has gone away.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// `print!` through [`write()`]; an error other than a closed pipe is
/// ignored, as a progress line's is.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = $crate::out::write(format_args!($($arg)*));
    }};
}

/// `println!` through [`write`].
macro_rules! outln {
    () => { $crate::out::out!("\n") };
    ($($arg:tt)*) => {{
        let _ = $crate::out::write(format_args!("{}\n", format_args!($($arg)*)));
    }};
}

pub(crate) use {out, outln};
