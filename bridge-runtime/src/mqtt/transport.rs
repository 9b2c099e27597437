//! The byte stream under a connection (TCP, or TLS over TCP) with a read buffer and a write
//! buffer. One task fills the write buffer with as many packets as are ready and drains both
//! buffers in one step that never waits on one direction alone: a broker that stops reading
//! never keeps the bridge from reading, and the reverse.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use rumqttc::tokio_rustls::client::TlsStream;
use rumqttc::tokio_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
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

/// Asks the kernel to acknowledge what was just read at once rather than delay the ACK (by
/// up to 40 ms on Linux). A broker that keeps Nagle's algorithm on (Mosquitto's default,
/// `set_tcp_nodelay false`) holds its next small packet until the previous one is
/// acknowledged; while the bridge has nothing to send (its in-flight window full, waiting for
/// those very acknowledgements), a delayed ACK made every exchange wait: 20 messages in
/// flight moved about 150 a second. Linux leaves quick-ack mode on its own, so it is asked
/// again after each read.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn acknowledge_at_once(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn acknowledge_at_once(_: &TcpStream) {}

/// The read buffer grows by this much at a time.
const READ_CHUNK: usize = 64 * 1024;

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
            read_failed: None,
        }
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
                        acknowledge_at_once(self.stream.tcp());
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
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }
}
