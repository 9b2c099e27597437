//! A client for toxiproxy's HTTP API: the test bed's `mqtt` and `kafka` proxies stand between
//! a bridge under test and the brokers, and are cut, delayed and throttled here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::env;

/// The proxy in front of Mosquitto.
pub const MQTT: &str = "mqtt";
/// The proxy in front of Kafka's PROXIED listener.
pub const KAFKA: &str = "kafka";

/// Sends one request; panics with toxiproxy's answer unless it is a 2xx.
fn request(method: &str, path: &str, body: &str) {
    let base = env().toxiproxy_url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&base)
        .unwrap_or_else(|e| panic!("toxiproxy at {base} is not reachable: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {base}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send a request to toxiproxy");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split_whitespace().nth(1).unwrap_or("none");
    assert!(
        status.starts_with('2'),
        "toxiproxy refused {method} {path} {body}: {response}"
    );
}

/// Every proxy enabled and without toxics.
pub fn reset() {
    request("POST", "/reset", "");
}

/// Cuts (`false`: open connections are closed, new ones refused) or restores a proxy.
pub fn set_enabled(proxy: &str, enabled: bool) {
    request(
        "POST",
        &format!("/proxies/{proxy}"),
        &format!("{{\"enabled\":{enabled}}}"),
    );
}

/// Adds `latency_ms` to everything the broker sends back through `proxy`.
pub fn add_latency(proxy: &str, latency_ms: u32) {
    add_toxic(
        proxy,
        "latency",
        "downstream",
        &format!("{{\"latency\":{latency_ms}}}"),
    );
}

/// Limits both directions of `proxy` to `kib_per_s`.
pub fn add_bandwidth(proxy: &str, kib_per_s: u32) {
    for stream in ["upstream", "downstream"] {
        add_toxic(
            proxy,
            "bandwidth",
            stream,
            &format!("{{\"rate\":{kib_per_s}}}"),
        );
    }
}

fn add_toxic(proxy: &str, kind: &str, stream: &str, attributes: &str) {
    request(
        "POST",
        &format!("/proxies/{proxy}/toxics"),
        &format!(
            "{{\"name\":\"{kind}-{stream}\",\"type\":\"{kind}\",\"stream\":\"{stream}\",\"toxicity\":1.0,\"attributes\":{attributes}}}"
        ),
    );
}
