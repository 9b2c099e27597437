//! CPU time and memory of a process under test, read from /proc.

use std::process::Command;
use std::sync::OnceLock;

/// User + system CPU seconds the process has used so far (0 once it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks()
}

/// CPU seconds of some processes since it was made, in total.
pub struct CpuSince {
    pids: Vec<u32>,
    start: f64,
}

impl CpuSince {
    pub fn now(pids: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            start: pids.iter().map(|&p| cpu_seconds(p)).sum(),
        }
    }

    pub fn used(&self) -> f64 {
        self.pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() - self.start
    }
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A `Vm*` line of /proc/<pid>/status in MiB: `VmRSS` now, `VmHWM` the peak.
pub fn memory_mib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_cpu_and_memory() {
        let pid = std::process::id();
        // Busy until the kernel has counted a clock tick (10 ms) of CPU, at most 5 s; the
        // black box keeps an optimised build from folding the work away.
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        while cpu_seconds(pid) == 0.0 && started.elapsed().as_secs() < 5 {
            for b in 0..1_000_000u64 {
                spin = std::hint::black_box(spin.wrapping_add(b * b));
            }
        }
        assert!(cpu_seconds(pid) > 0.0);
        assert!(memory_mib(pid, "VmHWM:") >= memory_mib(pid, "VmRSS:") * 0.5);
        assert!(memory_mib(pid, "VmRSS:") > 0.0);
        assert_eq!(cpu_seconds(u32::MAX), 0.0);
    }
}
