//! `net-guard --allow CIDR ...`: watches the machine's TCP and UDP sockets while `make test`
//! runs and fails (exit 1) if any talked to an address outside loopback and the `--allow`ed
//! ranges, naming the process and the address. Every `--interval-ms` (default 1000) it reads
//! `ss -tunpH` in the host's network namespace and in every other one a process is in (the
//! real node's pods); between samples, `ss -E` reports every host socket as it closes, so a
//! connection shorter than a sample is seen too. Sockets that existed when it started are not
//! the run's and are left out. Runs until SIGTERM or SIGINT, then prints its verdict.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testbed::netguard::{parse, Allowed, Cidr, Socket};
use tokio::signal::unix::{signal, SignalKind};

struct Options {
    allowed: Allowed,
    interval: Duration,
    log: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut networks = Vec::new();
    let mut pod_networks = Vec::new();
    let mut interval = Duration::from_millis(1000);
    let mut log = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--allow" => networks.push(value()?.parse::<Cidr>()?),
            "--allow-in-pods" => pod_networks.push(value()?.parse::<Cidr>()?),
            "--interval-ms" => {
                let v = value()?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| format!("--interval-ms {v:?}: expected milliseconds > 0"))?;
                interval = Duration::from_millis(ms);
            }
            "--log" => log = Some(value()?),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (--allow CIDR, --allow-in-pods CIDR, --interval-ms N, --log FILE)"
                ))
            }
        }
    }
    Ok(Options {
        allowed: Allowed::loopback_and(&networks).and_in_pods(&pod_networks),
        interval,
        log,
    })
}

/// What the guard saw.
#[derive(Default)]
struct Findings {
    /// Connections that existed before the run; not the run's.
    before: HashSet<String>,
    /// Offending connections by key, as reported.
    violations: BTreeMap<String, String>,
    samples: u64,
    closed_seen: u64,
    namespaces: usize,
}

impl Findings {
    fn check(&mut self, allowed: &Allowed, socket: &Socket, place: &str, in_pod: bool) {
        let violates = if in_pod {
            allowed.violates_in_pod(socket)
        } else {
            allowed.violates(socket)
        };
        if violates && !self.before.contains(&socket.key()) {
            self.violations
                .entry(socket.key())
                .or_insert_with(|| format!("{socket} [{place}]"));
        }
    }
}

fn ss(args: &[&str], namespace_of: Option<&str>) -> Result<Vec<Socket>, String> {
    let mut command = match namespace_of {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.args(["--target", pid, "--net", "ss"]);
            c
        }
        None => Command::new("ss"),
    };
    let out = command
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ss: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ss {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(parse)
        .collect())
}

/// One process in each network namespace other than this one's, by namespace.
fn other_namespaces() -> Vec<String> {
    let own = std::fs::read_link("/proc/self/ns/net").ok();
    let mut seen = BTreeSet::new();
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(ns) = std::fs::read_link(entry.path().join("ns/net")) else {
            continue;
        };
        if Some(&ns) != own.as_ref() && seen.insert(ns) {
            pids.push(name);
        }
    }
    pids
}

fn sample(findings: &Mutex<Findings>, allowed: &Allowed) -> Result<(), String> {
    let host = ss(&["-tunpH"], None)?;
    let others = other_namespaces();
    let mut pods = Vec::new();
    for pid in &others {
        // A namespace whose last process just exited is gone: nothing to read there.
        if let Ok(sockets) = ss(&["-tunpH"], Some(pid)) {
            pods.push((pid, sockets));
        }
    }
    let mut f = findings.lock().map_err(|_| "poisoned".to_owned())?;
    f.samples += 1;
    f.namespaces = f.namespaces.max(others.len());
    for socket in &host {
        f.check(allowed, socket, "host", false);
    }
    for (pid, sockets) in &pods {
        for socket in sockets {
            f.check(
                allowed,
                socket,
                &format!("network namespace of pid {pid}"),
                true,
            );
        }
    }
    Ok(())
}

/// `ss -E`: host sockets as they close, checked as they come.
fn watch_closing(findings: Arc<Mutex<Findings>>, allowed: Allowed) -> Result<Child, String> {
    let mut child = Command::new("stdbuf")
        .args(["-oL", "ss", "-E", "-tunH"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run ss -E: {e}"))?;
    let stdout = child.stdout.take().ok_or("ss -E has no output")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(socket) = parse(&line) {
                if let Ok(mut f) = findings.lock() {
                    f.closed_seen += 1;
                    f.check(&allowed, &socket, "host, closed", false);
                }
            }
        }
    });
    Ok(child)
}

fn verdict(f: &Findings, allowed: &Allowed, elapsed: Duration) -> (bool, String) {
    let mut ranges: Vec<String> = allowed.ranges().iter().map(Cidr::to_string).collect();
    ranges.extend(
        allowed
            .pod_ranges()
            .iter()
            .map(|r| format!("{r} (from pods)")),
    );
    let watched = format!(
        "{} samples over {}s (the host and up to {} other network namespaces), {} sockets seen closing",
        f.samples,
        elapsed.as_secs(),
        f.namespaces,
        f.closed_seen
    );
    if f.violations.is_empty() {
        let text = format!(
            "net-guard: no connection left the test bed: {watched}; allowed {}",
            ranges.join(", ")
        );
        return (true, text);
    }
    let mut text = format!(
        "net-guard: {} connection(s) to addresses outside {} ({watched}):",
        f.violations.len(),
        ranges.join(", ")
    );
    for v in f.violations.values() {
        text.push_str("\n  ");
        text.push_str(v);
    }
    (false, text)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("net-guard: {e}");
            return ExitCode::from(2);
        }
    };
    let before = match ss(&["-tunaH"], None) {
        Ok(sockets) => sockets.iter().map(Socket::key).collect(),
        Err(e) => {
            eprintln!("net-guard: {e}");
            return ExitCode::from(2);
        }
    };
    let findings = Arc::new(Mutex::new(Findings {
        before,
        ..Findings::default()
    }));
    let mut closing = match watch_closing(findings.clone(), opts.allowed.clone()) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("net-guard: {e}");
            return ExitCode::from(2);
        }
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("net-guard: cannot handle signals");
        return ExitCode::from(2);
    };
    let started = Instant::now();
    let mut tick = tokio::time::interval(opts.interval);
    let mut failure = None;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                if let Err(e) = sample(&findings, &opts.allowed) {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    if failure.is_none() {
        failure = sample(&findings, &opts.allowed).err();
    }
    // Let ss -E report what closed up to now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = closing.kill();
    let _ = closing.wait();
    let Ok(f) = findings.lock() else {
        return ExitCode::from(2);
    };
    let (clean, mut text) = verdict(&f, &opts.allowed, started.elapsed());
    if let Some(e) = &failure {
        text = format!("net-guard: watching stopped early: {e}\n{text}");
    }
    eprintln!("{text}");
    if let Some(path) = &opts.log {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{text}"));
        if let Err(e) = written {
            eprintln!("net-guard: cannot write {path}: {e}");
        }
    }
    if clean && failure.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
