//! CPU time of a process from /proc, for the benchmarks' "CPU over the
//! phase" figures (shared by `bench_fanout` and `bench_socket_floor`).

/// utime + stime of /proc/<pid>/stat (or /proc/self/stat), in clock ticks.
pub fn cpu_ticks(stat_path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name (which may hold spaces): state is the 3rd field, utime the 14th.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second of CPU time.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks.max(1) as f64
}
