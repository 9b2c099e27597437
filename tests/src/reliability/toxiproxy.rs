//! A client for toxiproxy's HTTP API: the test bed's `mqtt` and `kafka` proxies stand between
//! a bridge under test and the brokers, and are cut, delayed and throttled here.

use std::net::SocketAddr;

use crate::bridge::http_request;
use crate::env;

/// The proxy in front of Mosquitto.
pub const MQTT: &str = "mqtt";
/// The proxy in front of Kafka's PROXIED listener.
pub const KAFKA: &str = "kafka";

/// Sends one request; panics with toxiproxy's answer unless it is a 2xx.
fn request(method: &str, path: &str, body: &str) {
    let url = &env().toxiproxy_url;
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("TOXIPROXY_URL {url} is not http://<ip>:<port>: {e}"));
    let answer = http_request(addr, method, path, body);
    assert!(
        answer
            .as_ref()
            .is_some_and(|(status, _)| (200..300).contains(status)),
        "toxiproxy at {url} refused {method} {path} {body}: {answer:?}"
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

/// Closes every connection through `proxy` once the client has sent `bytes` on it: requests
/// larger than that never reach the broker, small ones (metadata) do.
pub fn add_upstream_limit(proxy: &str, bytes: u64) {
    add_toxic(
        proxy,
        "limit_data",
        "upstream",
        &format!("{{\"bytes\":{bytes}}}"),
    );
}

/// Resets toxiproxy (see [`reset`]) when dropped, also when a test fails.
pub struct ResetOnDrop;

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        reset();
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
