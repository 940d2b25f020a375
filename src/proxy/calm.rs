//! The end of an HTTP/2 connection whose client cancels too many of its requests in flight
//! (see [`Resets`]): `GOAWAY` with `ENHANCE_YOUR_CALM`, then the connection closes.
//!
//! hyper offers no way to end an HTTP/2 connection with an error code, so [`CalmIo`] does it
//! underneath hyper, on the connection's bytes: it follows the frames in both directions (frame
//! headers only; payloads are skipped), remembers the highest stream the client opened, and
//! once the limit is passed writes the `GOAWAY` frame between two of hyper's frames and ends the
//! stream for hyper. If hyper is in the middle of writing a frame at that moment, the connection
//! is closed without the frame.

use super::admission::{ConnShare, Resets};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const GOAWAY: u8 = 0x7;
/// The error code for a peer that "might be generating excessive load" (RFC 9113, 7).
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// A `GOAWAY` frame: no new stream above `last_stream` will be processed, for `code`.
pub fn goaway_frame(last_stream: u32, code: u32) -> [u8; 17] {
    let mut f = [0u8; 17];
    f[2] = 8; // payload length
    f[3] = GOAWAY;
    f[9..13].copy_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    f[13..17].copy_from_slice(&code.to_be_bytes());
    f
}

/// Where frames begin and end in one direction of an HTTP/2 connection.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; 9],
    /// Bytes of the current frame header seen so far.
    have: usize,
    /// Payload bytes of the current frame still to come.
    remaining: usize,
}

impl Frames {
    /// Takes the next bytes of the stream; `on_header` sees each complete frame header.
    fn feed(&mut self, mut data: &[u8], mut on_header: impl FnMut(&[u8; 9])) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (9 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 9 {
                on_header(&self.header);
                let h = self.header;
                self.remaining =
                    usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                self.have = 0;
            }
        }
    }

    /// Between two frames.
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.remaining == 0
    }
}

/// What the connection turned out to speak, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// This many bytes of the preface matched so far.
    Unknown(usize),
    Http2,
    Other,
}

/// Where the end of a connection stands.
#[derive(Debug)]
enum Ending {
    Open,
    /// Writing the `GOAWAY` frame: these bytes, this many written.
    Writing([u8; 17], usize),
    Flushing,
    /// Ended for hyper: reads see the end of the stream, writes fail.
    Ended,
}

/// A connection's byte stream, ended with `GOAWAY ENHANCE_YOUR_CALM` when its share's
/// [`Resets`] trip.
pub struct CalmIo<T> {
    inner: T,
    share: Arc<ConnShare>,
    kind: Kind,
    reads: Frames,
    writes: Frames,
    /// The highest stream the client opened.
    last_stream: u32,
    /// hyper has written a GOAWAY of its own (a graceful close): no second one, whose last
    /// stream could be higher.
    goaway_written: bool,
    ending: Ending,
}

impl<T> CalmIo<T> {
    pub fn new(inner: T, share: Arc<ConnShare>) -> CalmIo<T> {
        CalmIo {
            inner,
            share,
            kind: Kind::Unknown(0),
            reads: Frames::default(),
            writes: Frames::default(),
            last_stream: 0,
            goaway_written: false,
            ending: Ending::Open,
        }
    }

    fn resets(&self) -> &Resets {
        &self.share.resets
    }

    /// Follows what the client sent.
    fn observe_read(&mut self, mut data: &[u8]) {
        if let Kind::Unknown(matched) = self.kind {
            let n = (PREFACE.len() - matched).min(data.len());
            self.kind = if data[..n] != PREFACE[matched..matched + n] {
                Kind::Other
            } else if matched + n == PREFACE.len() {
                Kind::Http2
            } else {
                Kind::Unknown(matched + n)
            };
            data = &data[n..];
        }
        if self.kind == Kind::Http2 {
            let last = &mut self.last_stream;
            self.reads.feed(data, |h| {
                let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                if h[3] == HEADERS && stream % 2 == 1 {
                    *last = (*last).max(stream);
                }
            });
        }
    }
}

impl<T> CalmIo<T> {
    /// Follows the first `n` bytes of `bufs`, which the server has written. The server may
    /// write its SETTINGS before the client's preface has been read.
    fn observe_write(&mut self, bufs: &[io::IoSlice<'_>], mut n: usize) {
        if self.kind == Kind::Other {
            return;
        }
        let written = &mut self.goaway_written;
        for buf in bufs {
            if n == 0 {
                break;
            }
            let take = n.min(buf.len());
            self.writes
                .feed(&buf[..take], |h| *written |= h[3] == GOAWAY);
            n -= take;
        }
    }
}

impl<T: AsyncWrite + Unpin> CalmIo<T> {
    /// Writes the `GOAWAY` frame (when hyper is between frames) and flushes it; ready when the
    /// stream has ended for hyper.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.ending {
                Ending::Open => {
                    self.ending = if self.writes.at_boundary() && !self.goaway_written {
                        Ending::Writing(goaway_frame(self.last_stream, ENHANCE_YOUR_CALM), 0)
                    } else {
                        Ending::Ended
                    };
                }
                Ending::Writing(frame, at) => {
                    let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &frame[*at..]))?;
                    *at += n;
                    if n == 0 {
                        self.ending = Ending::Ended;
                    } else if *at == frame.len() {
                        self.ending = Ending::Flushing;
                    }
                }
                Ending::Flushing => {
                    let flushed = ready!(Pin::new(&mut self.inner).poll_flush(cx));
                    self.ending = Ending::Ended;
                    flushed?;
                }
                Ending::Ended => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for CalmIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.kind == Kind::Http2 {
            if this.resets().tripped() {
                // The end of the stream, for hyper.
                return this.poll_end(cx);
            }
            this.resets().wake_on_trip(cx.waker());
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if this.kind != Kind::Other {
            this.observe_read(&buf.filled()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CalmIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !matches!(this.ending, Ending::Open) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        this.observe_write(&[io::IoSlice::new(data)], n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !matches!(this.ending, Ending::Open) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.observe_write(bufs, n);
        Poll::Ready(Ok(n))
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, 0];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_are_followed_across_any_cut() {
        let mut stream = Vec::new();
        for (kind, id, len) in [
            (4u8, 0u32, 6usize),
            (1, 1, 20),
            (0, 1, 300),
            (1, 7, 0),
            (3, 7, 4),
        ] {
            stream.extend(frame(kind, id, &vec![0xaa; len]));
        }
        for cut in 1..stream.len() {
            let mut f = Frames::default();
            let mut seen = Vec::new();
            for piece in stream.chunks(cut) {
                f.feed(piece, |h| seen.push((h[3], h[8])));
            }
            assert_eq!(
                seen,
                vec![(4, 0), (1, 1), (0, 1), (1, 7), (3, 7)],
                "cut {cut}"
            );
            assert!(f.at_boundary());
        }
        let mut f = Frames::default();
        f.feed(&stream[..12], |_| {});
        assert!(!f.at_boundary());
    }

    #[tokio::test]
    async fn a_tripped_connection_gets_goaway_with_the_last_stream_and_ends() {
        let share = Arc::new(ConnShare::new(10, 1));
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut io = CalmIo::new(server, share.clone());
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let mut sent = PREFACE.to_vec();
        sent.extend(frame(4, 0, &[]));
        sent.extend(frame(1, 1, &[0; 5]));
        sent.extend(frame(1, 9, &[0; 5]));
        sent.extend(frame(3, 9, &[0; 4]));
        client_write.write_all(&sent).await.unwrap();
        let mut got = vec![0; sent.len()];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(got, sent);
        // A frame of the server's own, then the trip.
        io.write_all(&frame(4, 0, &[0; 6])).await.unwrap();
        share.resets.count();
        share.resets.count();
        assert!(share.resets.tripped());
        let mut rest = Vec::new();
        assert_eq!(
            io.read_to_end(&mut rest).await.unwrap(),
            0,
            "the end, for hyper"
        );
        assert!(io.write_all(b"more").await.is_err());
        let mut out = vec![0; 15 + 17];
        client_read.read_exact(&mut out).await.unwrap();
        assert_eq!(&out[15..], &goaway_frame(9, ENHANCE_YOUR_CALM));
    }

    #[tokio::test]
    async fn no_second_goaway_after_the_servers_own() {
        let share = Arc::new(ConnShare::new(10, 0));
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut io = CalmIo::new(server, share.clone());
        let (mut client_read, mut client_write) = tokio::io::split(client);
        client_write.write_all(PREFACE).await.unwrap();
        client_write.write_all(&frame(1, 3, &[0; 5])).await.unwrap();
        let mut got = vec![0; PREFACE.len() + 14];
        io.read_exact(&mut got).await.unwrap();
        // A graceful GOAWAY (last stream 1), written in two slices.
        let own = goaway_frame(1, 0);
        let slices = [io::IoSlice::new(&own[..5]), io::IoSlice::new(&own[5..])];
        let mut written = 0;
        while written < own.len() {
            written +=
                std::future::poll_fn(|cx| Pin::new(&mut io).poll_write_vectored(cx, &slices[..]))
                    .await
                    .unwrap();
            assert_eq!(written, own.len(), "a duplex takes both slices at once");
        }
        share.resets.count();
        let mut rest = Vec::new();
        assert_eq!(io.read_to_end(&mut rest).await.unwrap(), 0);
        drop(io);
        let mut out = Vec::new();
        client_read.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, own, "only the server's own GOAWAY");
    }

    #[tokio::test]
    async fn http1_bytes_are_left_alone() {
        let share = Arc::new(ConnShare::new(10, 0));
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut io = CalmIo::new(server, share.clone());
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut got = [0; 18];
        io.read_exact(&mut got).await.unwrap();
        share.resets.count();
        client.write_all(b"GET /b HTTP/1.1\r\n\r\n").await.unwrap();
        let mut more = [0; 19];
        io.read_exact(&mut more).await.unwrap();
        assert_eq!(&more, b"GET /b HTTP/1.1\r\n\r\n");
    }
}
