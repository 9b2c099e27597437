//! The network guard's rules (`net-guard`, run by `make test`): which sockets talk to an
//! address outside the test bed. Tests and everything they start may reach loopback and the
//! test bed's own networks (the real node's pod network) only; any other peer, private range
//! or public, is a violation, named with its process.
//!
//! The input is what `ss -tunpH` prints (sockets alive now, with their processes) and what
//! `ss -E -tunH` prints (sockets as they close, so a connection shorter than a sample is seen
//! too, without its process).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address range, `10.88.0.0/16` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a range (expected address/prefix)"))?;
        let network: IpAddr = ip
            .parse()
            .map_err(|e| format!("{s:?}: the address {ip:?} is not valid: {e}"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{s:?}: the prefix must be a number from 0 to {max}"))?;
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// The `n`th address of the range (IPv4), if the range has one.
    pub fn nth(&self, n: u32) -> Option<IpAddr> {
        let IpAddr::V4(network) = self.network else {
            return None;
        };
        let size = 1u64 << (32 - u32::from(self.prefix));
        (u64::from(n) < size)
            .then(|| IpAddr::from(u32::from(network).wrapping_add(n).to_be_bytes()))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u32) {
            match ip {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        if self.network.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let (net, width) = bits(self.network);
        let (addr, _) = bits(ip);
        let shift = width - u32::from(self.prefix);
        shift >= width || (net >> shift) == (addr >> shift)
    }
}

/// One socket as `ss` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub protocol: String,
    pub state: String,
    pub local: String,
    pub peer: String,
    /// `name (pid N)` of the processes holding it, when `ss -p` knew them.
    pub processes: Vec<String>,
}

impl Socket {
    /// The connection, as one key (the same socket in two samples is one connection).
    pub fn key(&self) -> String {
        format!("{} {} {}", self.protocol, self.local, self.peer)
    }

    /// The peer's address, if the socket has one (`*` and `0.0.0.0:*` have none).
    pub fn peer_ip(&self) -> Option<IpAddr> {
        let (host, _port) = self.peer.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        // An interface-scoped address: `fe80::1%eth0`, `127.0.0.53%lo`.
        let host = host.split('%').next().unwrap_or(host);
        let ip: IpAddr = host.parse().ok()?;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        (!ip.is_unspecified()).then_some(ip)
    }
}

impl fmt::Display for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = if self.processes.is_empty() {
            "process unknown (the socket had closed)".to_owned()
        } else {
            self.processes.join(", ")
        };
        write!(
            f,
            "{} {} -> {} ({}) by {by}",
            self.protocol, self.local, self.peer, self.state
        )
    }
}

/// Parses a line of `ss -tunH` (with or without `-p`); `None` for anything else.
pub fn parse(line: &str) -> Option<Socket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // Netid State Recv-Q Send-Q Local Peer [Process]
    if fields.len() < 6 || !matches!(fields[0], "tcp" | "udp") {
        return None;
    }
    let process_text = fields[6..].join(" ");
    Some(Socket {
        protocol: fields[0].to_owned(),
        state: fields[1].to_owned(),
        local: fields[4].to_owned(),
        peer: fields[5].to_owned(),
        processes: processes(&process_text),
    })
}

/// `users:(("kafka",pid=12,fd=3),("java",pid=13,fd=4))` → `["kafka (pid 12)", "java (pid 13)"]`.
fn processes(text: &str) -> Vec<String> {
    let Some(list) = text.strip_prefix("users:(") else {
        return Vec::new();
    };
    list.split("),(")
        .filter_map(|entry| {
            let entry = entry.trim_matches(|c| c == '(' || c == ')');
            let mut parts = entry.split(',');
            let name = parts.next()?.trim_matches('"');
            let pid = parts.find_map(|p| p.strip_prefix("pid="))?;
            Some(format!("{name} (pid {pid})"))
        })
        .collect()
}

/// The addresses tests may talk to.
#[derive(Debug, Clone)]
pub struct Allowed {
    ranges: Vec<Cidr>,
    /// Allowed from pods' network namespaces only: the Service (ClusterIP) range, which
    /// kube-proxy rewrites to the pod network before routing. A host process has no route
    /// there.
    pod_ranges: Vec<Cidr>,
}

impl Allowed {
    /// Loopback (IPv4 and IPv6) and `networks`, the test bed's own.
    pub fn loopback_and(networks: &[Cidr]) -> Self {
        let mut ranges = vec![
            Cidr {
                network: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            },
            Cidr {
                network: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
                prefix: 128,
            },
        ];
        ranges.extend_from_slice(networks);
        Self {
            ranges,
            pod_ranges: Vec::new(),
        }
    }

    /// These too, from pods' network namespaces.
    pub fn and_in_pods(mut self, ranges: &[Cidr]) -> Self {
        self.pod_ranges.extend_from_slice(ranges);
        self
    }

    pub fn ranges(&self) -> &[Cidr] {
        &self.ranges
    }

    pub fn pod_ranges(&self) -> &[Cidr] {
        &self.pod_ranges
    }

    /// Whether `socket`, of a host process, talks to an address outside them (a socket
    /// without a peer does not).
    pub fn violates(&self, socket: &Socket) -> bool {
        socket
            .peer_ip()
            .is_some_and(|ip| !self.ranges.iter().any(|r| r.contains(ip)))
    }

    /// As `violates`, for a socket in a pod's network namespace.
    pub fn violates_in_pod(&self, socket: &Socket) -> bool {
        self.violates(socket)
            && socket
                .peer_ip()
                .is_some_and(|ip| !self.pod_ranges.iter().any(|r| r.contains(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Allowed {
        Allowed::loopback_and(&["10.88.0.0/16".parse().expect("a range")])
            .and_in_pods(&["10.96.0.0/16".parse().expect("a range")])
    }

    fn verdict(line: &str) -> (bool, String) {
        let socket = parse(line).expect("an ss line");
        (allowed().violates(&socket), socket.to_string())
    }

    // Lines as `ss -tunpH` and `ss -E -tunH` printed them on the test bed.
    const LOOPBACK: &str = r#"tcp   ESTAB      0      0          127.0.0.1:21883      127.0.0.1:51234 users:(("mosquitto",pid=4100,fd=12))"#;
    const LOOPBACK_V6: &str = r#"tcp   ESTAB 0 0 [::ffff:127.0.0.1]:29092 [::ffff:127.0.0.1]:40012 users:(("java",pid=4200,fd=150))"#;
    const POD_NETWORK: &str =
        r#"tcp   ESTAB 0 0 10.88.0.1:21883 10.88.0.14:38110 users:(("mosquitto",pid=4100,fd=20))"#;
    const KWOK_POD: &str = r#"tcp   SYN-SENT 0 1 192.0.2.2:47310 10.244.0.7:9090 users:(("mkb-operator",pid=5321,fd=17))"#;
    const PUBLIC: &str = r#"tcp   ESTAB 0 0 192.0.2.2:41000 203.0.113.80:443 users:(("bridge-runtime",pid=6001,fd=9))"#;
    const CLOSED_DNS_QUERY: &str = "udp UNCONN 0 -1 192.0.2.2:36003 10.255.255.53:53";
    const NEVER_CONNECTED: &str = "tcp UNCONN 0 0 0.0.0.0:* 0.0.0.0:*";

    #[test]
    fn loopback_and_the_pod_network_are_allowed() {
        assert!(!verdict(LOOPBACK).0);
        assert!(!verdict(LOOPBACK_V6).0);
        assert!(!verdict(POD_NETWORK).0);
        assert!(!verdict(NEVER_CONNECTED).0);
        assert!(!verdict("tcp ESTAB 0 0 [::1]:8080 [::1]:5000").0);
    }

    #[test]
    fn a_cluster_ip_is_allowed_from_a_pod_and_flagged_from_the_host() {
        // As `ss` shows them in a pod's namespace: the peer before kube-proxy's rewrite.
        let socket = parse(
            r#"tcp ESTAB 0 0 10.88.0.5:55028 10.96.151.159:9092 users:(("mkb-operator",pid=22536,fd=11))"#,
        )
        .expect("an ss line");
        assert!(!allowed().violates_in_pod(&socket));
        assert!(allowed().violates(&socket));
        let public = parse(PUBLIC).expect("an ss line");
        assert!(allowed().violates_in_pod(&public));
    }

    #[test]
    fn a_kwok_pod_address_is_flagged_with_its_process() {
        let (flagged, text) = verdict(KWOK_POD);
        assert!(flagged);
        assert_eq!(
            text,
            "tcp 192.0.2.2:47310 -> 10.244.0.7:9090 (SYN-SENT) by mkb-operator (pid 5321)"
        );
    }

    #[test]
    fn a_public_address_is_flagged_with_its_process() {
        let (flagged, text) = verdict(PUBLIC);
        assert!(flagged);
        assert!(text.ends_with("-> 203.0.113.80:443 (ESTAB) by bridge-runtime (pid 6001)"));
    }

    #[test]
    fn a_closed_socket_is_flagged_without_a_process() {
        let (flagged, text) = verdict(CLOSED_DNS_QUERY);
        assert!(flagged);
        assert!(text.contains("-> 10.255.255.53:53"), "{text}");
        assert!(text.contains("process unknown"), "{text}");
    }

    #[test]
    fn several_processes_sharing_a_socket_are_all_named() {
        let line =
            r#"tcp ESTAB 0 0 10.88.0.1:1 8.8.8.8:53 users:(("a",pid=1,fd=3),("b",pid=2,fd=4))"#;
        let socket = parse(line).expect("parsed");
        assert_eq!(socket.processes, ["a (pid 1)", "b (pid 2)"]);
    }

    #[test]
    fn scoped_and_mapped_peers_are_read() {
        let scoped = parse("udp ESTAB 0 0 127.0.0.1%lo:5 127.0.0.53%lo:53").expect("parsed");
        assert_eq!(scoped.peer_ip(), Some(IpAddr::from([127, 0, 0, 53])));
        let link_local = parse("tcp ESTAB 0 0 [fe80::2]:5 [fe80::1%eth0]:80").expect("parsed");
        assert!(allowed().violates(&link_local));
    }

    #[test]
    fn headers_and_other_protocols_are_not_sockets() {
        assert_eq!(
            parse("Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port"),
            None
        );
        assert_eq!(parse("u_str ESTAB 0 0 * 123 * 456"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn ranges_parse_and_match() {
        let pods: Cidr = "10.88.0.0/16".parse().expect("a range");
        assert!(pods.contains(IpAddr::from([10, 88, 255, 1])));
        assert!(!pods.contains(IpAddr::from([10, 89, 0, 1])));
        let all: Cidr = "0.0.0.0/0".parse().expect("a range");
        assert!(all.contains(IpAddr::from([203, 0, 113, 80])));
        assert!(!all.contains("::1".parse().expect("v6")));
        assert!("10.88.0.0".parse::<Cidr>().is_err());
        assert!("10.88.0.0/33".parse::<Cidr>().is_err());
        assert_eq!(pods.to_string(), "10.88.0.0/16");
        assert_eq!(pods.nth(5), Some(IpAddr::from([10, 88, 0, 5])));
        assert_eq!("10.0.0.0/31".parse::<Cidr>().expect("a range").nth(2), None);
    }
}
