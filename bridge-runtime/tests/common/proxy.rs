//! A TCP proxy in front of an MQTT broker that tampers once with what the broker sends: the
//! broker behaviour rumqttc could not survive (issue 28), made to happen on demand.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the broker's packets, once; then it passes everything through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Holds back the first PUBACK, sends the next one before it, then resets the connection.
    SwapTwoPubAcksThenReset,
    /// Drops the first PUBREL, then resets the connection (the broker sends the PUBREL again
    /// to the resumed session).
    DropPubRelThenReset,
}

pub struct Proxy {
    pub port: u16,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Whether the tampering has happened.
    pub tampered: Arc<Mutex<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(broker_port: u16, tamper: Tamper) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let tampered = Arc::new(Mutex::new(false));
        let (count, done) = (connections.clone(), tampered.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(broker) = TcpStream::connect(("127.0.0.1", broker_port)).await else {
                    continue;
                };
                let _ = client.set_zero_linger();
                let pending = !*done.lock().expect("lock");
                let tamper = pending.then_some(tamper);
                tokio::spawn(relay(client, broker, tamper, done.clone()));
            }
        });
        Self {
            port,
            connections,
            tampered,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn has_tampered(&self) -> bool {
        *self.tampered.lock().expect("lock")
    }
}

/// Client → broker passes as it is; broker → client packet by packet, tampered with once.
async fn relay(
    client: TcpStream,
    broker: TcpStream,
    tamper: Option<Tamper>,
    done: Arc<Mutex<bool>>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut broker_read, mut broker_write) = broker.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut broker_write).await;
    });
    let mut buf = Vec::new();
    let mut held: Option<Vec<u8>> = None;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match broker_read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(len) = frame_len(&buf) {
            let packet: Vec<u8> = buf.drain(..len).collect();
            let kind = packet[0] >> 4;
            let active = tamper.is_some() && !*done.lock().expect("lock");
            match (tamper, kind) {
                (Some(Tamper::SwapTwoPubAcksThenReset), 4) if active => match held.take() {
                    None => {
                        held = Some(packet);
                        continue;
                    }
                    Some(first) => {
                        let _ = client_write.write_all(&packet).await;
                        let _ = client_write.write_all(&first).await;
                        return reset(client_write, upstream, &done).await;
                    }
                },
                (Some(Tamper::DropPubRelThenReset), 6) if active => {
                    return reset(client_write, upstream, &done).await;
                }
                _ => {
                    if client_write.write_all(&packet).await.is_err() {
                        upstream.abort();
                        return;
                    }
                }
            }
        }
    }
    upstream.abort();
}

/// Ends the connection with a reset (the client socket lingers 0 s: closing it sends RST), as a
/// network fault would.
async fn reset(
    client_write: tokio::net::tcp::OwnedWriteHalf,
    upstream: tokio::task::JoinHandle<()>,
    done: &Mutex<bool>,
) {
    *done.lock().expect("lock") = true;
    tokio::time::sleep(Duration::from_millis(50)).await;
    upstream.abort();
    let _ = upstream.await;
    drop(client_write);
}

/// The length of the first complete MQTT packet in `buf`, if there is one.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let mut remaining = 0usize;
    for (i, &byte) in buf.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let len = 2 + i + remaining;
            return (buf.len() >= len).then_some(len);
        }
    }
    None
}
