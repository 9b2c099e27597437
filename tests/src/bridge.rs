//! A `bridge-runtime` process under test: started with a configuration, probed over its HTTP
//! endpoint, killed or terminated.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::process::{test_log_dir, workspace_binary, ChildProcess};
use crate::wait_until;

/// Where [`free_port`] looks: below Linux's ephemeral range (`ip_local_port_range`,
/// 32768–60999 by default), clear of the test bed's fixed ports (20250–29120) and of
/// Kubernetes' NodePort range (30000–32767). A port the kernel handed out for `:0` is an
/// ephemeral one, and any process's next outgoing connection could take it as its local port
/// between the check and the listener's bind: Mosquitto then failed with "Address already in
/// use" and the test timed out waiting for it.
const TEST_PORTS: std::ops::Range<u16> = 12_000..20_000;

/// Ports handed out by this process, so that it never offers one twice.
static PORTS_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// A free loopback port (bound, then released for the process to take).
pub fn free_port() -> u16 {
    let span = usize::from(TEST_PORTS.end - TEST_PORTS.start);
    // Processes start at different places so that two at once rarely try the same ports.
    let start = std::process::id() as usize * 7_919;
    for _ in 0..span {
        let n = PORTS_TAKEN.fetch_add(1, Ordering::Relaxed);
        let port = TEST_PORTS.start + ((start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?}");
}

/// A plain HTTP/1.0 GET; returns the status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_request(addr, "GET", path, "")
}

/// A plain HTTP/1.0 request with a JSON `body` (none when empty); returns the status code
/// and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n").ok()?;
    if !body.is_empty() {
        write!(
            stream,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
        .ok()?;
    }
    write!(stream, "\r\n{body}").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Prometheus text, for reading counters.
pub struct MetricsText(pub String);

impl MetricsText {
    /// The value of the sample `name` whose labels include all of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
                if metric != name {
                    return None;
                }
                let all = labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
                all.then(|| value.parse().ok()).flatten()
            })
    }

    /// The sum of every sample of `name`, whatever its labels; 0 when there is none.
    pub fn sum(&self, name: &str) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let metric = series.split_once('{').map_or(series, |(m, _)| m);
                (metric == name)
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum()
    }

    /// A route's counter (`mkb_messages_<what>_total`), 0 when absent.
    pub fn route_counter(&self, what: &str, route: &str) -> u64 {
        self.value(&format!("mkb_messages_{what}_total"), &[("route", route)])
            .unwrap_or(0.0) as u64
    }
}

/// A running bridge-runtime.
pub struct Bridge {
    pub process: ChildProcess,
    pub http: SocketAddr,
    pub config: PathBuf,
}

impl Bridge {
    /// How many times the process logged its start: 1 when it ran throughout, without a
    /// restart.
    pub fn starts(&self) -> usize {
        self.process
            .log_text()
            .matches("bridge-runtime started")
            .count()
    }

    /// Starts bridge-runtime with `config` (YAML without an `http` section: one is added with
    /// a free port). `name` names the log file.
    pub fn start(name: &str, config: &str) -> Self {
        Self::start_env(name, config, &[])
    }

    /// As `start`, logging everything at trace level (to look for leaked secrets).
    pub fn start_traced(name: &str, config: &str) -> Self {
        Self::start_env(name, config, &[("RUST_LOG", "trace")])
    }

    /// As `start`, with extra environment variables.
    pub fn start_env(name: &str, config: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let http: SocketAddr = ([127, 0, 0, 1], port).into();
        let config_path = test_log_dir().join(format!("{name}.yaml"));
        let text = format!("{config}\nhttp:\n  listen: 127.0.0.1:{port}\n");
        std::fs::write(&config_path, text).expect("write the bridge configuration");
        Self::start_with(name, &config_path, http, env)
    }

    /// Starts bridge-runtime with an existing configuration file and extra environment.
    pub fn start_with(
        name: &str,
        config: &std::path::Path,
        http: SocketAddr,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(workspace_binary("bridge-runtime"));
        command
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,bridge_runtime=debug");
        for (k, v) in env {
            command.env(k, v);
        }
        let process = ChildProcess::spawn(name, command);
        Self {
            process,
            http,
            config: config.to_owned(),
        }
    }

    /// Restarts a stopped bridge with the same configuration and port.
    pub fn restart(&mut self, name: &str) {
        let again = Self::start_with(name, &self.config, self.http, &[]);
        *self = again;
    }

    /// Waits until /readyz says ready (both sides connected and subscribed).
    pub fn wait_ready(&mut self, timeout: Duration) {
        let http = self.http;
        let what = format!("bridge-runtime on {http} to be ready");
        let process = &mut self.process;
        wait_until(&what, timeout, || {
            if let Some(status) = process.exit_status() {
                crate::process::print_tail(process.log_path(), 40);
                panic!("bridge-runtime exited early: {status}");
            }
            http_get(http, "/readyz")
                .filter(|(code, _)| *code == 200)
                .map(|_| ())
        });
    }

    /// Waits until a route's counter (`mkb_messages_<what>_total`) reaches `at_least`, and
    /// returns it. Counters trail what other clients observe: `delivered` of Kafka → MQTT
    /// counts the broker's PUBACK, which can come after subscribers have the message.
    pub fn wait_counter(&self, what: &str, route: &str, at_least: u64, timeout: Duration) -> u64 {
        let description = format!("mkb_messages_{what}_total{{route={route}}} to reach {at_least}");
        wait_until(&description, timeout, || {
            let n = self.metrics().route_counter(what, route);
            (n >= at_least).then_some(n)
        })
    }

    pub fn metrics(&self) -> MetricsText {
        MetricsText(
            http_get(self.http, "/metrics")
                .map(|(_, b)| b)
                .unwrap_or_default(),
        )
    }

    /// Prints the bridge's `mkb_` samples (histogram buckets left out), for a failure.
    pub fn print_metrics(&self) {
        eprintln!(
            "---- mkb_ metrics of {} ----",
            self.process.log_path().display()
        );
        for line in self
            .metrics()
            .0
            .lines()
            .filter(|l| l.starts_with("mkb_") && !l.contains("_bucket"))
        {
            eprintln!("{line}");
        }
    }

    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.process.terminate(timeout)
    }
}

impl Drop for Bridge {
    /// When the test fails, show the bridge's counters next to its log.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        // What went wrong inside the bridge, even when the test bed's logs fill the output.
        let log = self.process.log_text();
        let problems: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        eprintln!(
            "---- last warnings and errors of {} ({} in all) ----",
            self.process.log_path().display(),
            problems.len()
        );
        for line in &problems[problems.len().saturating_sub(15)..] {
            eprintln!("{}", line.chars().take(400).collect::<String>());
        }
        if let Some(status) = self.process.exit_status() {
            eprintln!("---- the bridge had exited: {status} ----");
        } else {
            self.print_metrics();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MetricsText;

    #[test]
    fn sums_a_metric_over_its_label_sets_and_nothing_else() {
        let text = MetricsText(
            "# HELP mkb_in_flight_messages x\nmkb_in_flight_messages{route=\"a\"} 2\nmkb_in_flight_messages{route=\"b\"} 3\nmkb_in_flight_messages_other 7\n"
                .to_owned(),
        );
        assert_eq!(text.sum("mkb_in_flight_messages"), 5.0);
        assert_eq!(text.sum("mkb_absent_total"), 0.0);
    }
}
