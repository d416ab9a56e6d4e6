//! The open-file limit of the benchmarks that hold 10,000 sockets (shared by
//! `bench_fanout` and `bench_socket_floor`; a child server inherits it).

use anyhow::{Context, Result};

/// Open files the bench asks for, and the least it accepts without a warning.
const WANTED_OPEN_FILES: u64 = 65_536;
const MIN_OPEN_FILES: u64 = 30_000;

/// Raises RLIMIT_NOFILE to `WANTED_OPEN_FILES` (soft and hard), or the soft
/// limit to the hard one when the hard limit cannot be raised.
pub fn raise_open_file_limit() -> Result<()> {
    let before = open_file_limit()?;
    if before.rlim_cur < WANTED_OPEN_FILES {
        let wanted = libc::rlimit { rlim_cur: WANTED_OPEN_FILES, rlim_max: before.rlim_max.max(WANTED_OPEN_FILES) };
        if let Err(error) = set_open_file_limit(&wanted) {
            println!("open-file limit: cannot raise the hard limit to {WANTED_OPEN_FILES} ({:#}); soft = hard instead", error);
            let fallback = libc::rlimit { rlim_cur: before.rlim_max, rlim_max: before.rlim_max };
            set_open_file_limit(&fallback).context("raising the soft open-file limit to the hard one")?;
        }
    }
    let after = open_file_limit()?;
    println!("open-file limit: soft {} hard {} (was soft {} hard {})", after.rlim_cur, after.rlim_max, before.rlim_cur, before.rlim_max);
    if after.rlim_cur < MIN_OPEN_FILES {
        println!("  warning: below {MIN_OPEN_FILES}; connections may fail with 'too many open files'");
    }
    Ok(())
}

fn open_file_limit() -> Result<libc::rlimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    Ok(limit)
}

fn set_open_file_limit(limit: &libc::rlimit) -> Result<()> {
    // SAFETY: setrlimit only reads the struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
    }
    Ok(())
}
