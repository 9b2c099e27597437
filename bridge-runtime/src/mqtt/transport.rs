//! The byte stream under a connection (TCP, or TLS over TCP) with a read buffer and a write
//! buffer. One task fills the write buffer with as many packets as are ready and drains both
//! buffers in one step that never waits on one direction alone: a broker that stops reading
//! never keeps the bridge from reading, and the reverse.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::tokio_rustls::client::TlsStream;
use rumqttc::tokio_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{sleep, Instant, Sleep};
use tokio_util::io::{poll_read_buf, poll_write_buf};

/// A connection's byte stream, and the TCP socket under it (for its socket options).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Stream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Stream for TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Asks the kernel to acknowledge what was read at once: with an ACK pending, setting the
/// option sends it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn acknowledge_at_once(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn acknowledge_at_once(_: &TcpStream) {}

/// The read buffer grows by this much at a time.
const READ_CHUNK: usize = 64 * 1024;

/// How long what was read may wait for a write to carry its ACK before it is acknowledged on
/// its own (unless [`Io::acknowledge_reads_at_once`]). A broker that keeps Nagle's algorithm
/// on (Mosquitto's default, `set_tcp_nodelay false`) holds its next small packet until the
/// previous one is acknowledged, and Linux delays an ACK by up to 40 ms: while the bridge had
/// nothing to send (its in-flight window full, waiting for those very PUBACKs), every
/// exchange waited, and 20 messages in flight moved about 150 a second. Acknowledging after
/// every read instead cost a system call and a bare ACK segment per read (Kafka → MQTT QoS 1
/// with 1,000 in flight: 0.83 of the ceiling against 1.02); with a wide window the
/// bridge's own writes carry the ACKs, and this bounds the wait when they do not.
const ACK_DELAY: Duration = Duration::from_millis(1);

/// Opens TCP (no Nagle delay: the bridge batches itself) and, with `tls`, a TLS session on it.
pub async fn dial(
    host: &str,
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
) -> io::Result<Box<dyn Stream>> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    let name = ServerName::try_from(host.to_owned()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a DNS name or IP address"),
        )
    })?;
    let stream = TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await?;
    Ok(Box::new(stream))
}

pub struct Io {
    stream: Box<dyn Stream>,
    /// Bytes read and not parsed yet.
    pub rbuf: BytesMut,
    /// Bytes to write.
    pub wbuf: BytesMut,
    /// Bytes written since the connection opened: where a packet put in `wbuf` ends is
    /// `written + wbuf.len()` at that moment.
    pub written: u64,
    flush_due: bool,
    /// Bytes were read and no segment has carried their ACK yet.
    ack_pending: bool,
    /// Acknowledge every read at once rather than within [`ACK_DELAY`].
    ack_at_once: bool,
    /// Set while `ack_pending` with nothing to write: when the read is acknowledged alone.
    ack_timer: Pin<Box<Sleep>>,
    ack_timer_armed: bool,
    /// A read error (or end of stream) met in a step that had written something: the step
    /// reports the write, the next one the error.
    read_failed: Option<io::Error>,
}

impl Io {
    pub fn new(stream: Box<dyn Stream>) -> Self {
        Self {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            written: 0,
            flush_due: false,
            ack_pending: false,
            ack_at_once: false,
            ack_timer: Box::pin(sleep(ACK_DELAY)),
            ack_timer_armed: false,
            read_failed: None,
        }
    }

    /// Acknowledges every read at once: for a narrow in-flight window, where even
    /// [`ACK_DELAY`] per round trip would bound the rate (20 in flight, refilled 10 at a
    /// time: at most about 5,000 messages a second).
    pub fn acknowledge_reads_at_once(&mut self) {
        self.ack_at_once = true;
    }

    /// Writes what waits (and flushes it), and with `read` reads what has arrived; returns
    /// once either made progress. Cancel-safe: progress is kept in the buffers. End of stream
    /// is an error: a broker closes the connection only to end it.
    pub async fn step(&mut self, read: bool) -> io::Result<()> {
        if let Some(e) = self.read_failed.take() {
            return Err(e);
        }
        poll_fn(|cx| {
            let mut progress = false;
            while !self.wbuf.is_empty() {
                match poll_write_buf(Pin::new(&mut self.stream), cx, &mut self.wbuf) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.written += n as u64;
                        self.flush_due = true;
                        self.ack_pending = false;
                        self.ack_timer_armed = false;
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            if self.wbuf.is_empty() && self.flush_due {
                match Pin::new(&mut self.stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.flush_due = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if read {
                if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                    self.rbuf.reserve(READ_CHUNK);
                }
                let failed = match poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.rbuf) {
                    Poll::Ready(Ok(0)) => Some(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the broker closed the connection",
                    )),
                    Poll::Ready(Ok(_)) => {
                        if self.ack_at_once {
                            acknowledge_at_once(self.stream.tcp());
                        } else {
                            self.ack_pending = true;
                        }
                        progress = true;
                        None
                    }
                    Poll::Ready(Err(e)) => Some(e),
                    Poll::Pending => None,
                };
                if let Some(e) = failed {
                    if !progress {
                        return Poll::Ready(Err(e));
                    }
                    self.read_failed = Some(e);
                }
            }
            if progress {
                return Poll::Ready(Ok(()));
            }
            if self.ack_pending && self.wbuf.is_empty() {
                self.acknowledge_in_time(cx);
            }
            Poll::Pending
        })
        .await
    }

    /// Waiting with nothing to write: what was read is acknowledged once [`ACK_DELAY`] has
    /// passed since the wait began, unless a write carries the ACK first.
    fn acknowledge_in_time(&mut self, cx: &mut std::task::Context<'_>) {
        if !self.ack_timer_armed {
            self.ack_timer.as_mut().reset(Instant::now() + ACK_DELAY);
            self.ack_timer_armed = true;
        }
        if self.ack_timer.as_mut().poll(cx).is_ready() {
            acknowledge_at_once(self.stream.tcp());
            self.ack_pending = false;
            self.ack_timer_armed = false;
        }
    }
}
