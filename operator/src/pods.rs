//! Why a bridge's pods are not ready, in the runtime's own words, for the status: the kubelet
//! records only that a readiness probe failed, while the runtime's `/readyz` body says which
//! connection is down and why ("cannot connect to Kafka at …: Authentication failed …"). The
//! body never holds a secret value (the runtime's rule for every message).
//!
//! Only pods that run but are not ready are asked, each with a short timeout, all at once; a
//! pod whose container waits (an image that cannot be pulled, a crash loop) reports the
//! kubelet's reason instead.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::status::PodNotReady;

/// How long one pod may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of one answer that goes into the status.
const MAX_REASON: usize = 400;

/// Every pod of `selector` that is not ready, with why, sorted by pod name; empty when the
/// pods cannot be listed (the status then says less, nothing fails).
pub async fn not_ready(
    client: &Client,
    namespace: &str,
    selector: &str,
    port: i32,
) -> Vec<PodNotReady> {
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    let pods = match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => list.items,
        Err(e) => {
            debug!(namespace, error = %e, "cannot list the bridge's pods");
            return Vec::new();
        }
    };
    let asks = pods.iter().filter_map(|pod| {
        let name = pod.metadata.name.clone()?;
        let status = pod.status.as_ref()?;
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if ready || pod.metadata.deletion_timestamp.is_some() {
            return None;
        }
        if let Some(waiting) = waiting_reason(pod) {
            return Some(futures::future::Either::Left(async move {
                PodNotReady {
                    pod: name,
                    reason: waiting,
                }
            }));
        }
        let ip = status.pod_ip.clone()?;
        Some(futures::future::Either::Right(async move {
            let reason = match ask_readyz(&ip, port).await {
                Ok(body) => body,
                Err(e) => format!("no answer from its readiness endpoint {ip}:{port} ({e})"),
            };
            PodNotReady { pod: name, reason }
        }))
    });
    let mut reasons = join_all(asks).await;
    reasons.sort_by(|a, b| a.pod.cmp(&b.pod));
    reasons
}

/// The kubelet's reason for a container that waits instead of running, if one does.
fn waiting_reason(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|s| {
        let waiting = s.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.clone()?;
        // ContainerCreating is the normal way to start, not a problem.
        (reason != "ContainerCreating").then(|| match &waiting.message {
            Some(message) => format!("{reason}: {message}"),
            None => reason,
        })
    })
}

/// The body of `GET /readyz` at `ip:port`, trimmed, without the "not ready: " prefix.
async fn ask_readyz(ip: &str, port: i32) -> Result<String, String> {
    let port = u16::try_from(port).map_err(|_| format!("port {port} is out of range"))?;
    let exchange = async {
        let mut stream = TcpStream::connect((ip, port))
            .await
            .map_err(|e| connect_failure(&e))?;
        let request = format!("GET /readyz HTTP/1.0\r\nHost: {ip}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .take(64 * 1024)
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(ASK_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {ASK_TIMEOUT:?}"))??;
    readiness_reason(&String::from_utf8_lossy(&response))
}

/// Why a pod could not be reached, in a few words for the status line.
fn connect_failure(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::HostUnreachable | K::NetworkUnreachable => "unreachable".to_owned(),
        K::ConnectionRefused => "connection refused".to_owned(),
        K::TimedOut => "connection timed out".to_owned(),
        _ => e.to_string(),
    }
}

/// The reason in an HTTP response of `/readyz`.
fn readiness_reason(response: &str) -> Result<String, String> {
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| "an incomplete HTTP response".to_owned())?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    let body = body.trim();
    let reason = body.strip_prefix("not ready: ").unwrap_or(body);
    let reason = match reason.char_indices().nth(MAX_REASON) {
        Some((cut, _)) => format!("{}…", &reason[..cut]),
        None => reason.to_owned(),
    };
    match status {
        "503" => Ok(reason),
        // Ready by now: the kubelet has not probed again yet.
        "200" => Ok("ready now; the next probe will say so".to_owned()),
        other => Err(format!("HTTP {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_the_body_without_its_prefix() {
        let response = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\nnot ready: mqtt subscriber (cannot connect to mqtts://b:8883: UnknownIssuer)\n";
        assert_eq!(
            readiness_reason(response),
            Ok("mqtt subscriber (cannot connect to mqtts://b:8883: UnknownIssuer)".to_owned())
        );
        assert!(readiness_reason("HTTP/1.1 200 OK\r\n\r\nready\n")
            .is_ok_and(|r| r.starts_with("ready now")));
        assert_eq!(
            readiness_reason("HTTP/1.1 404 Not Found\r\n\r\n"),
            Err("HTTP 404".to_owned())
        );
        assert!(readiness_reason("garbage").is_err());
    }

    #[test]
    fn a_long_reason_is_cut() {
        let response = format!("HTTP/1.1 503 x\r\n\r\nnot ready: {}", "é".repeat(1000));
        let reason = readiness_reason(&response).unwrap_or_default();
        assert_eq!(reason.chars().count(), MAX_REASON + 1);
        assert!(reason.ends_with('…'));
    }

    #[tokio::test]
    async fn asks_a_listening_endpoint_and_reports_one_that_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = i32::from(listener.local_addr().expect("address").port());
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 256];
                let _ = socket.read(&mut request).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready: kafka producer (down)\n")
                    .await;
            }
        });
        assert_eq!(
            ask_readyz("127.0.0.1", port).await,
            Ok("kafka producer (down)".to_owned())
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let closed_port = i32::from(closed.local_addr().expect("address").port());
        drop(closed);
        assert_eq!(
            ask_readyz("127.0.0.1", closed_port).await,
            Err("connection refused".to_owned())
        );
    }

    #[test]
    fn an_unreachable_pod_is_said_in_one_word() {
        let unreachable = std::io::Error::from_raw_os_error(113); // EHOSTUNREACH
        assert_eq!(connect_failure(&unreachable), "unreachable");
        let other = std::io::Error::other("odd");
        assert_eq!(connect_failure(&other), "odd");
    }
}
