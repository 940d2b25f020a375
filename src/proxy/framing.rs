//! The bytes of HTTP/1 request heads, checked before the HTTP parser sees them. hyper reads a
//! bare LF as a line end, lets `Transfer-Encoding` win over `Content-Length` and merges
//! repeated equal `Content-Length` lines; a parser in front of the proxy may read any of these
//! differently, which is how requests are smuggled. A connection that sends one is closed
//! before the request is parsed, so nothing of it is forwarded.
//!
//! [`Guard`] follows the message framing (heads, `Content-Length` and chunked bodies) only far
//! enough to know where each head starts; bodies pass unexamined. After an accepted protocol
//! upgrade, and on HTTP/2 connections, it steps aside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where in the request stream the next byte falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// A request head (collected until its empty line).
    Head,
    /// This many bytes of a `Content-Length` body.
    Body(u64),
    /// The hex size of a chunk, as read so far.
    ChunkSize(u64),
    /// A chunk extension, up to its CR; the chunk's size.
    ChunkExt(u64),
    /// The LF after a chunk-size line's CR; then this many bytes of data.
    ChunkSizeLf(u64),
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkDataCr,
    ChunkDataLf,
    /// A trailer line; `true` at its start.
    Trailer(bool),
    TrailerLf(bool),
    /// No more checks: an upgraded tunnel, HTTP/2, or a stream the HTTP parser will refuse.
    Off,
}

/// Why a stream is refused.
pub type Refusal = &'static str;

/// The framing state of one connection's request stream.
#[derive(Debug)]
pub struct Framing {
    at: At,
    head: Vec<u8>,
    /// The previous byte, for a bare LF across reads.
    prev: u8,
    /// The head just ended asked for a protocol upgrade.
    upgrade_asked: bool,
    max_head: usize,
}

impl Framing {
    pub fn new(max_head: usize) -> Framing {
        Framing {
            at: At::Head,
            head: Vec::new(),
            prev: 0,
            upgrade_asked: false,
            max_head,
        }
    }

    /// Takes the next bytes of the stream. `upgraded` says whether the proxy has switched
    /// protocols on the request that asked for it. A refusal comes with how many of `data`'s
    /// bytes precede the refused message (they belong to messages that were fine).
    pub fn feed(&mut self, data: &[u8], upgraded: bool) -> Result<(), (Refusal, usize)> {
        let mut i = 0;
        // Where in `data` the head being collected started (0 if in an earlier read).
        let mut head_at = 0;
        while i < data.len() {
            match self.at {
                At::Off => return Ok(()),
                At::Body(n) => {
                    let take = n.min((data.len() - i) as u64);
                    i += take as usize;
                    self.at = if n == take {
                        At::Head
                    } else {
                        At::Body(n - take)
                    };
                    self.prev = 0;
                }
                At::ChunkData(n) => {
                    let take = n.min((data.len() - i) as u64);
                    i += take as usize;
                    self.at = if n == take {
                        At::ChunkDataCr
                    } else {
                        At::ChunkData(n - take)
                    };
                }
                At::Head if self.head.is_empty() && self.upgrade_asked && upgraded => {
                    self.at = At::Off;
                }
                at => {
                    if at == At::Head && self.head.is_empty() {
                        head_at = i;
                    }
                    let b = data[i];
                    i += 1;
                    self.byte(b).map_err(|why| {
                        let keep = if at == At::Head || self.at == At::Head {
                            head_at
                        } else {
                            i - 1
                        };
                        (why, keep)
                    })?;
                }
            }
        }
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), Refusal> {
        if b == b'\n' && self.prev != b'\r' {
            return Err("a bare LF");
        }
        self.prev = b;
        self.at = match self.at {
            At::Head => return self.head_byte(b),
            At::ChunkSize(n) => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                    match n.checked_mul(16) {
                        Some(v) => At::ChunkSize(v + digit),
                        None => At::Off, // hyper refuses it
                    }
                }
                b';' | b' ' | b'\t' => At::ChunkExt(n),
                b'\r' => At::ChunkSizeLf(n),
                _ => At::Off,
            },
            At::ChunkExt(n) => match b {
                b'\r' => At::ChunkSizeLf(n),
                _ => At::ChunkExt(n),
            },
            At::ChunkSizeLf(n) => match (b, n) {
                (b'\n', 0) => At::Trailer(true),
                (b'\n', n) => At::ChunkData(n),
                _ => At::Off,
            },
            At::ChunkDataCr => match b {
                b'\r' => At::ChunkDataLf,
                _ => At::Off,
            },
            At::ChunkDataLf => match b {
                b'\n' => At::ChunkSize(0),
                _ => At::Off,
            },
            At::Trailer(start) => match b {
                b'\r' => At::TrailerLf(start),
                _ => At::Trailer(false),
            },
            At::TrailerLf(start) => match (b, start) {
                (b'\n', true) => {
                    self.prev = 0;
                    At::Head
                }
                (b'\n', false) => At::Trailer(true),
                _ => At::Off,
            },
            other => other,
        };
        Ok(())
    }

    fn head_byte(&mut self, b: u8) -> Result<(), Refusal> {
        // Empty lines before a request line are skipped, as HTTP parsers do.
        if self.head.is_empty() && b == b'\r' {
            return Ok(());
        }
        if self.head.is_empty() && b == b'\n' {
            self.prev = 0;
            return Ok(());
        }
        self.head.push(b);
        if self.head.starts_with(b"PRI ") {
            // The HTTP/2 connection preface.
            self.at = At::Off;
            return Ok(());
        }
        if self.head.len() > self.max_head {
            // Too large: the HTTP parser answers 431 and closes.
            self.at = At::Off;
            return Ok(());
        }
        if self.head.ends_with(b"\r\n\r\n") {
            let next = self.head_done();
            self.head.clear();
            self.prev = 0;
            self.at = next?;
        }
        Ok(())
    }

    /// A complete head: refused if its framing is ambiguous; else where its body ends.
    fn head_done(&mut self) -> Result<At, Refusal> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(&self.head), Ok(httparse::Status::Complete(_))) {
            // The HTTP parser refuses it too, and closes the connection.
            return Ok(At::Off);
        }
        let (mut lengths, mut codings, mut upgrade) = (Vec::new(), Vec::new(), false);
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                lengths.push(h.value);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                codings.push(h.value);
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        self.upgrade_asked = upgrade || req.method == Some("CONNECT");
        if !lengths.is_empty() && !codings.is_empty() {
            return Err("Transfer-Encoding and Content-Length together");
        }
        if lengths.len() > 1 {
            return Err("more than one Content-Length");
        }
        if let Some(last) = codings.last() {
            let chunked = std::str::from_utf8(last)
                .ok()
                .and_then(|v| v.rsplit(',').next());
            return Ok(
                match chunked.map(|c| c.trim().eq_ignore_ascii_case("chunked")) {
                    Some(true) => At::ChunkSize(0),
                    _ => At::Off,
                },
            );
        }
        match lengths.first() {
            None => Ok(At::Head),
            Some(v) => Ok(std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(At::Off, |n| if n == 0 { At::Head } else { At::Body(n) })),
        }
    }
}

/// A connection's byte stream with its request heads checked on the way in.
pub struct Guard<T> {
    inner: T,
    framing: Framing,
    /// Set by the handler when it switches protocols on this connection.
    upgraded: Arc<AtomicBool>,
    /// A message was refused: the stream has ended for the HTTP parser.
    refused: bool,
}

impl<T> Guard<T> {
    pub fn new(inner: T, max_head: usize, upgraded: Arc<AtomicBool>) -> Guard<T> {
        Guard {
            inner,
            framing: Framing::new(max_head),
            upgraded,
            refused: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.refused {
            // The end of the stream, as the HTTP parser sees it: the connection closes.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let upgraded = this.upgraded.load(Ordering::Acquire);
                match this.framing.feed(&buf.filled()[before..], upgraded) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err((why, keep)) => {
                        // Nothing of the refused message reaches the HTTP parser; the messages
                        // before it do, and the connection ends after them.
                        tracing::debug!("closing a connection that sent {why}");
                        buf.set_filled(before + keep);
                        this.refused = true;
                        Poll::Ready(Ok(()))
                    }
                }
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` cut at every position; all cuts must agree.
    fn check(stream: &[u8]) -> Result<(), Refusal> {
        let whole = Framing::new(65536).feed(stream, false).map_err(|e| e.0);
        for cut in 0..=stream.len() {
            let mut f = Framing::new(65536);
            let r = f
                .feed(&stream[..cut], false)
                .and_then(|()| f.feed(&stream[cut..], false))
                .map_err(|e| e.0);
            assert_eq!(r, whole, "cut at {cut}");
        }
        whole
    }

    #[test]
    fn the_messages_before_a_refused_one_are_kept() {
        let good = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nx\n";
        let mut stream = good.to_vec();
        stream.extend_from_slice(b"GET / HTTP/1.1\nHost: a\r\n\r\n");
        let r = Framing::new(65536).feed(&stream, false);
        assert_eq!(r, Err(("a bare LF", good.len())));
        // Inside a chunk-size line: up to the offending byte.
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\n";
        let r = Framing::new(65536).feed(chunked, false);
        assert_eq!(r, Err(("a bare LF", chunked.len() - 1)));
    }

    #[test]
    fn ordinary_streams_pass() {
        check(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        check(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        // A body may hold anything, bare LFs included.
        check(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\na\nb\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        check(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\na\nb\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    }

    #[test]
    fn smuggling_is_refused_wherever_it_is() {
        let next = |s: &[u8]| {
            let mut v = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na\nb".to_vec();
            v.extend_from_slice(s);
            v
        };
        for bad in [
            &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
        ] {
            assert!(check(bad).is_err(), "{}", String::from_utf8_lossy(bad));
            // The same after a request with a body, on the same connection.
            assert!(check(&next(bad)).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        // In a chunk-size line or a trailer.
        assert!(
            check(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\na\r\n")
                .is_err()
        );
        assert!(
            check(
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\n\r\n"
            )
            .is_err()
        );
    }

    #[test]
    fn upgraded_tunnels_and_http2_are_left_alone() {
        let asked =
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
        let mut f = Framing::new(65536);
        f.feed(asked, false).unwrap();
        f.feed(b"\x81\x05\nhello", true).unwrap();
        f.feed(b"anything\n", true).unwrap();
        // Refused upgrade: the next request is checked as any.
        let mut f = Framing::new(65536);
        f.feed(asked, false).unwrap();
        assert!(f.feed(b"GET / HTTP/1.1\nHost: a\r\n\r\n", false).is_err());
        check(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\n").unwrap();
    }
}
