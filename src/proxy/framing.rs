//! The bytes of HTTP/1 request heads, checked before the HTTP parser sees them. hyper reads a
//! bare LF as a line end, lets `Transfer-Encoding` win over `Content-Length` and merges
//! repeated equal `Content-Length` lines; a parser in front of the proxy may read any of these
//! differently, which is how requests are smuggled. A head that has one of these, or that the
//! parser would refuse, is replaced by a stand-in request that carries only the reason
//! ([`REFUSED`]): the handler answers it 400 with `Connection: close` and records it, the requests
//! before it on the connection are answered as usual, and nothing after it is read.
//!
//! [`Guard`] follows the message framing (heads, `Content-Length` and chunked bodies) only far
//! enough to know where each head starts; bodies pass unexamined. A head reaches the parser only
//! once it is complete and checked. After an accepted protocol upgrade, and on HTTP/2
//! connections, it steps aside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
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

/// Why a request head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BareLf,
    LengthAndChunked,
    RepeatedLength,
    /// A head the HTTP parser cannot read, such as one with an obs-fold line.
    Malformed,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::BareLf,
        Refusal::LengthAndChunked,
        Refusal::RepeatedLength,
        Refusal::Malformed,
    ];

    /// Its name in the stand-in request.
    fn code(self) -> &'static str {
        match self {
            Refusal::BareLf => "bare-lf",
            Refusal::LengthAndChunked => "content-length-and-transfer-encoding",
            Refusal::RepeatedLength => "repeated-content-length",
            Refusal::Malformed => "malformed",
        }
    }

    /// The answer's text.
    pub fn answer(self) -> &'static str {
        match self {
            Refusal::BareLf => "400 Bad Request: a line of the request head ends in a bare LF\n",
            Refusal::LengthAndChunked => {
                "400 Bad Request: the request has both Content-Length and Transfer-Encoding\n"
            }
            Refusal::RepeatedLength => {
                "400 Bad Request: the request has more than one Content-Length\n"
            }
            Refusal::Malformed => "400 Bad Request: the request head is malformed\n",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// The header of the stand-in request that replaces a refused head; its value is the reason.
/// A client that sends it itself only gets its own request refused.
pub const REFUSED: &str = "consent-proxy-refused";

/// The reason a request is the stand-in for a refused head, or `None` for any other request.
pub fn refused(headers: &http::HeaderMap) -> Option<Refusal> {
    let v = headers.get(REFUSED)?.as_bytes();
    Some(
        Refusal::ALL
            .into_iter()
            .find(|r| r.code().as_bytes() == v)
            .unwrap_or(Refusal::Malformed),
    )
}

/// A refused message: why, how many bytes of the last read precede it (they belong to messages
/// that were fine), and whether it is a head (else a chunked body's framing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub why: Refusal,
    pub keep: usize,
    pub in_head: bool,
}

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
    /// protocols on the request that asked for it. `Ok(Some(n))`: the bytes from `data[n]` on
    /// (and any held from earlier reads, if `n` is 0) are the start of a head not yet complete.
    pub fn feed(&mut self, data: &[u8], upgraded: bool) -> Result<Option<usize>, Refused> {
        let mut i = 0;
        // Where in `data` the head being collected started (0 if in an earlier read).
        let mut head_at = 0;
        while i < data.len() {
            match self.at {
                At::Off => return Ok(None),
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
                        let in_head = at == At::Head;
                        let keep = if in_head { head_at } else { i - 1 };
                        Refused { why, keep, in_head }
                    })?;
                }
            }
        }
        Ok((self.at == At::Head && !self.head.is_empty()).then_some(head_at))
    }

    /// The head being collected (the refused one, after a refusal in a head).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    fn byte(&mut self, b: u8) -> Result<(), Refusal> {
        if b == b'\n' && self.prev != b'\r' {
            return Err(Refusal::BareLf);
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
            // A refused head stays, for its stand-in.
            self.at = self.head_done()?;
            self.head.clear();
            self.prev = 0;
        }
        Ok(())
    }

    /// A complete head: refused if its framing is ambiguous; else where its body ends.
    fn head_done(&mut self) -> Result<At, Refusal> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&self.head) {
            Ok(httparse::Status::Complete(_)) => {}
            // The HTTP parser answers 431 and closes the connection.
            Err(httparse::Error::TooManyHeaders) => return Ok(At::Off),
            _ => return Err(Refusal::Malformed),
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
            return Err(Refusal::LengthAndChunked);
        }
        if lengths.len() > 1 {
            return Err(Refusal::RepeatedLength);
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

/// What a [`Guard`] still passes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Open,
    /// A head was refused and its stand-in passed on: what the client sends is read (so that
    /// its leaving is noticed) and dropped.
    Refused,
    /// A chunked body's framing was refused: the stream has ended for the HTTP parser.
    Ended,
}

/// A connection's byte stream with its request heads checked on the way in.
pub struct Guard<T> {
    inner: T,
    framing: Framing,
    /// Set by the handler when it switches protocols on this connection.
    upgraded: Arc<AtomicBool>,
    /// Bytes read but not yet passed on: the start of a head that is not complete.
    held: Vec<u8>,
    /// Bytes to pass on that did not fit the reader's buffer, and how many of them were passed.
    out: Vec<u8>,
    out_at: usize,
    flow: Flow,
}

impl<T> Guard<T> {
    pub fn new(inner: T, max_head: usize, upgraded: Arc<AtomicBool>) -> Guard<T> {
        Guard {
            inner,
            framing: Framing::new(max_head),
            upgraded,
            held: Vec::new(),
            out: Vec::new(),
            out_at: 0,
            flow: Flow::Open,
        }
    }

    /// Passes on what is queued in `out`, as much as fits; false if nothing is queued.
    fn drain(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.out_at == self.out.len() {
            return false;
        }
        let n = buf.remaining().min(self.out.len() - self.out_at);
        buf.put_slice(&self.out[self.out_at..self.out_at + n]);
        self.out_at += n;
        if self.out_at == self.out.len() {
            self.out = Vec::new();
            self.out_at = 0;
        }
        true
    }

    /// After `buf[before..]` was read: passes on the held bytes and the new ones up to `upto`,
    /// and holds the rest.
    fn pass(&mut self, buf: &mut ReadBuf<'_>, before: usize, upto: usize) {
        let new = &buf.filled()[before..];
        if self.held.is_empty() {
            self.held.extend_from_slice(&new[upto..]);
            buf.set_filled(before + upto);
        } else if upto == 0 {
            self.held.extend_from_slice(new);
            buf.set_filled(before);
        } else {
            // The held head ended in this read: it goes first.
            self.out.append(&mut self.held);
            self.out.extend_from_slice(&new[..upto]);
            self.held.extend_from_slice(&new[upto..]);
            buf.set_filled(before);
        }
        if self.held.is_empty() && self.held.capacity() > 8192 {
            // A large head passed: its buffer is not kept for the life of the connection.
            self.held = Vec::new();
        }
    }

    /// After a refusal in the bytes `buf[before..]`: passes on the messages before the refused
    /// one, then (for a head) its stand-in.
    fn refuse(&mut self, buf: &mut ReadBuf<'_>, before: usize, refused: Refused) {
        tracing::debug!(
            "refused a request with {} (in a {})",
            refused.why,
            if refused.in_head {
                "head"
            } else {
                "chunked body"
            }
        );
        if refused.in_head && refused.keep == 0 {
            // The refused head started in an earlier read.
            self.held.clear();
            buf.set_filled(before);
        } else {
            self.pass(buf, before, refused.keep);
            self.held.clear();
        }
        if refused.in_head {
            self.out
                .extend_from_slice(&stand_in(refused.why, self.framing.head()));
            self.flow = Flow::Refused;
        } else {
            self.flow = Flow::Ended;
        }
    }
}

/// The request passed on in place of a refused head: its method, origin-form target and Host
/// where they are well-formed, no body, and the reason in [`REFUSED`].
fn stand_in(why: Refusal, head: &[u8]) -> Vec<u8> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut parts = lines.next().unwrap_or_default().split(|&b| b == b' ');
    let method = parts
        .next()
        .and_then(|m| std::str::from_utf8(m).ok())
        .filter(|m| m.len() <= 32 && crate::filter::is_token(m) && *m != "CONNECT")
        .unwrap_or("-");
    let target = parts
        .next()
        .filter(|t| {
            t.len() <= 8192 && t.starts_with(b"/") && t.iter().all(|b| (0x21..0x7f).contains(b))
        })
        .unwrap_or(b"/");
    let host = lines
        .filter_map(|l| {
            let (name, value) = l.split_at_checked(5)?;
            name.eq_ignore_ascii_case(b"host:")
                .then_some(value.trim_ascii())
        })
        .next()
        .filter(|h| crate::filter::framing::valid_host(h));
    let mut req = Vec::with_capacity(128 + target.len());
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = host {
        req.extend_from_slice(b"host: ");
        req.extend_from_slice(host);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(REFUSED.as_bytes());
    req.extend_from_slice(b": ");
    req.extend_from_slice(why.code().as_bytes());
    req.extend_from_slice(b"\r\n\r\n");
    req
}

impl<T: AsyncRead + Unpin> AsyncRead for Guard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.drain(buf) {
                return Poll::Ready(Ok(()));
            }
            match this.flow {
                Flow::Open => {}
                Flow::Ended => return Poll::Ready(Ok(())),
                Flow::Refused => return discard(Pin::new(&mut this.inner), cx),
            }
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let read = buf.filled().len() - before;
            if read == 0 {
                // The end of the stream; a head that was not complete never reaches the parser.
                return Poll::Ready(Ok(()));
            }
            let upgraded = this.upgraded.load(Ordering::Acquire);
            match this.framing.feed(&buf.filled()[before..], upgraded) {
                Ok(hold) if this.held.is_empty() && hold.is_none() => {
                    return Poll::Ready(Ok(()));
                }
                Ok(hold) => this.pass(buf, before, hold.unwrap_or(read)),
                Err(refused) => this.refuse(buf, before, refused),
            }
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            // Nothing to pass on yet (a head is not complete): read on, or queue what there is.
        }
    }
}

/// Reads and drops what the client sends after a refused head, until it closes or nothing more
/// has arrived; the connection ends with the refusal's answer.
fn discard<T: AsyncRead + Unpin>(
    mut inner: Pin<&mut T>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let mut scratch = [0u8; 4096];
    for _ in 0..16 {
        let mut sink = ReadBuf::new(&mut scratch);
        ready!(inner.as_mut().poll_read(cx, &mut sink))?;
        if sink.filled().is_empty() {
            return Poll::Ready(Ok(()));
        }
    }
    // A client that keeps sending: let other tasks run, then go on dropping.
    cx.waker().wake_by_ref();
    Poll::Pending
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
        let whole = Framing::new(65536)
            .feed(stream, false)
            .map(|_| ())
            .map_err(|e| e.why);
        for cut in 0..=stream.len() {
            let mut f = Framing::new(65536);
            let r = f
                .feed(&stream[..cut], false)
                .and_then(|_| f.feed(&stream[cut..], false))
                .map(|_| ())
                .map_err(|e| e.why);
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
        let refused = |keep, in_head| Refused {
            why: Refusal::BareLf,
            keep,
            in_head,
        };
        assert_eq!(r, Err(refused(good.len(), true)));
        // Inside a chunk-size line: up to the offending byte.
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\n";
        let r = Framing::new(65536).feed(chunked, false);
        assert_eq!(r, Err(refused(chunked.len() - 1, false)));
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

    /// A stream that arrives in the given reads.
    struct Reads(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Reads {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(mut read) = self.0.pop_front() {
                let n = read.len().min(buf.remaining());
                buf.put_slice(&read[..n]);
                if n < read.len() {
                    self.0.push_front(read.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// What the HTTP parser reads through a guard, with a buffer of `size` bytes, when the
    /// client's bytes arrive in `reads`.
    async fn parser_reads(reads: &[&[u8]], size: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let reads = Reads(
            reads
                .iter()
                .filter(|r| !r.is_empty())
                .map(|r| r.to_vec())
                .collect(),
        );
        let mut guard = Guard::new(reads, 65536, Arc::new(AtomicBool::new(false)));
        let mut out = Vec::new();
        let mut buf = vec![0; size];
        loop {
            let n = guard.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn the_parser_reads_good_streams_unchanged_however_they_arrive() {
        let stream: &[u8] = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na\nb\r\n0\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nx\nyGET /last HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..=stream.len() {
            for size in [5, 4096] {
                let got = parser_reads(&[&stream[..cut], &stream[cut..]], size).await;
                assert_eq!(got, stream, "cut at {cut}, buffer {size}");
            }
        }
    }

    #[tokio::test]
    async fn a_head_reaches_the_parser_only_when_complete() {
        let first: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let partial: &[u8] = b"GET /2 HTTP/1.1\r\nHost: a\r\n";
        assert_eq!(parser_reads(&[first, partial], 4096).await, first);
        assert_eq!(
            parser_reads(&[first, &partial[..3], &partial[3..]], 7).await,
            first
        );
    }

    #[tokio::test]
    async fn a_refused_head_is_replaced_by_its_stand_in() {
        let good: &[u8] = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
        let bad: &[u8] = b"POST /upload?x=1 HTTP/1.1\r\nHost: t:8080\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
        let stand_in: &[u8] = b"POST /upload?x=1 HTTP/1.1\r\nhost: t:8080\r\nconsent-proxy-refused: content-length-and-transfer-encoding\r\n\r\n";
        let stream = [good, bad].concat();
        let expected = [good, stand_in].concat();
        for cut in 0..=stream.len() {
            for size in [5, 4096] {
                let got = parser_reads(&[&stream[..cut], &stream[cut..]], size).await;
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&expected),
                    "cut at {cut}, buffer {size}"
                );
            }
        }
    }

    #[test]
    fn a_stand_in_keeps_only_what_is_well_formed() {
        let s = |head: &[u8]| String::from_utf8(stand_in(Refusal::BareLf, head)).unwrap();
        assert_eq!(
            s(b"G\x00T http://evil.example/ HTTP/1.1\r\nHost: a@b"),
            "- / HTTP/1.1\r\nconsent-proxy-refused: bare-lf\r\n\r\n"
        );
        assert_eq!(
            s(b"CONNECT /x HTTP/1.1\r\nX: 1\r\nhOsT:  example.com \r\nHost: b"),
            "- /x HTTP/1.1\r\nhost: example.com\r\nconsent-proxy-refused: bare-lf\r\n\r\n"
        );
        assert_eq!(
            s(b""),
            "- / HTTP/1.1\r\nconsent-proxy-refused: bare-lf\r\n\r\n"
        );
        // The handler reads the reason back.
        let mut h = http::HeaderMap::new();
        for r in Refusal::ALL {
            h.insert(REFUSED, http::HeaderValue::from_static(r.code()));
            assert_eq!(refused(&h), Some(r));
        }
        h.insert(REFUSED, http::HeaderValue::from_static("something else"));
        assert_eq!(refused(&h), Some(Refusal::Malformed));
        assert_eq!(refused(&http::HeaderMap::new()), None);
    }
}
