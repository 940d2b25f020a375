//! Content codings around the HTML rewriter: streaming decoders and encoders over a body.

use super::body::{BoxError, InnerBody};
use crate::filter::body::Coding;
use async_compression::Level;
use async_compression::tokio::bufread::{
    BrotliDecoder, BrotliEncoder, DeflateDecoder, GzipDecoder, GzipEncoder, ZlibDecoder,
    ZlibEncoder, ZstdDecoder, ZstdEncoder,
};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

type BodyReader = tokio_util::io::StreamReader<
    futures_util::stream::MapErr<
        http_body_util::BodyDataStream<InnerBody>,
        fn(BoxError) -> io::Error,
    >,
    Bytes,
>;

/// Streams a body through a byte transform (a decoder or an encoder).
fn transcode(
    body: InnerBody,
    transform: impl FnOnce(BodyReader) -> Pin<Box<dyn AsyncRead + Send>>,
) -> InnerBody {
    use futures_util::TryStreamExt;
    let to_io: fn(BoxError) -> io::Error = io::Error::other;
    let reader =
        tokio_util::io::StreamReader::new(http_body_util::BodyDataStream::new(body).map_err(to_io));
    let frames = tokio_util::io::ReaderStream::new(transform(reader))
        .map_ok(Frame::data)
        .map_err(BoxError::from);
    http_body_util::StreamBody::new(frames).boxed_unsync()
}

/// Decodes a body in a content coding, streaming.
pub fn decode(body: InnerBody, coding: Coding) -> InnerBody {
    transcode(body, |r| match coding {
        Coding::Gzip => Box::pin(GzipDecoder::new(r)),
        Coding::Deflate => Box::pin(DeflateEither::new(r)),
        Coding::Br => Box::pin(BrotliDecoder::new(r)),
        Coding::Zstd => Box::pin(ZstdDecoder::new(r)),
    })
}

/// Encodes a body in a content coding, streaming.
pub fn encode(body: InnerBody, coding: Coding) -> InnerBody {
    transcode(body, |r| match coding {
        Coding::Gzip => Box::pin(GzipEncoder::new(r)),
        Coding::Deflate => Box::pin(ZlibEncoder::new(r)),
        // Brotli's highest (default) quality costs about 1 MB/s of CPU: a middle one streams.
        Coding::Br => Box::pin(BrotliEncoder::with_quality(r, Level::Precise(5))),
        Coding::Zstd => Box::pin(ZstdEncoder::new(r)),
    })
}

/// Whether a body starts with a zlib header (RFC 1950): compression method 8, a window of at
/// most 32 KiB, no preset dictionary, and check bits that make the first two bytes a multiple
/// of 31. A raw DEFLATE stream cannot start this way: its first block would be a stored block
/// with non-zero padding bits.
pub fn is_zlib_header(head: &[u8]) -> bool {
    match head {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && flg & 0x20 == 0
                && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        // An empty or one-byte body: zlib, which RFC 9110 names; it fails to decode either way.
        _ => true,
    }
}

/// `Content-Encoding: deflate` as servers send it. RFC 9110 means the zlib format, but some
/// servers send a raw DEFLATE stream, and browsers accept both; so does this, by the first two
/// bytes, which it reads (across frames if it must) and then hands on to the decoder.
enum DeflateEither {
    Sniffing(Vec<u8>, Option<BodyReader>),
    Zlib(ZlibDecoder<Sniffed>),
    Raw(DeflateDecoder<Sniffed>),
}

type Sniffed = tokio::io::Chain<io::Cursor<Vec<u8>>, BodyReader>;

impl DeflateEither {
    fn new(reader: BodyReader) -> DeflateEither {
        DeflateEither::Sniffing(Vec::with_capacity(2), Some(reader))
    }
}

impl AsyncRead for DeflateEither {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match &mut *self {
                DeflateEither::Sniffing(head, slot) => {
                    let Some(reader) = slot.as_mut() else {
                        return Poll::Ready(Err(io::Error::other(
                            "deflate decoder lost its input",
                        )));
                    };
                    let mut reader = Pin::new(reader);
                    let available = ready!(reader.as_mut().poll_fill_buf(cx))?;
                    let ended = available.is_empty();
                    let take = available.len().min(2 - head.len());
                    head.extend_from_slice(&available[..take]);
                    reader.consume(take);
                    if head.len() < 2 && !ended {
                        continue;
                    }
                    let zlib = is_zlib_header(head);
                    let head = std::mem::take(head);
                    let Some(reader) = slot.take() else {
                        return Poll::Ready(Err(io::Error::other(
                            "deflate decoder lost its input",
                        )));
                    };
                    let sniffed = tokio::io::AsyncReadExt::chain(io::Cursor::new(head), reader);
                    *self = if zlib {
                        DeflateEither::Zlib(ZlibDecoder::new(sniffed))
                    } else {
                        DeflateEither::Raw(DeflateDecoder::new(sniffed))
                    };
                }
                DeflateEither::Zlib(d) => return Pin::new(d).poll_read(cx, buf),
                DeflateEither::Raw(d) => return Pin::new(d).poll_read(cx, buf),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_compression::tokio::bufread::DeflateEncoder;
    use http_body_util::Full;
    use tokio::io::AsyncReadExt;

    fn body_in_chunks(data: &[u8], size: usize) -> InnerBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = data
            .chunks(size)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    async fn collect(body: InnerBody) -> Result<Vec<u8>, BoxError> {
        Ok(body.collect().await?.to_bytes().to_vec())
    }

    const PAGE: &[u8] =
        b"<!doctype html><script src=\"https://www.googletagmanager.com/gtag/js\"></script>";

    #[tokio::test]
    async fn deflate_is_decoded_in_zlib_and_raw_form() {
        let mut zlib = Vec::new();
        ZlibEncoder::new(PAGE).read_to_end(&mut zlib).await.unwrap();
        let mut raw = Vec::new();
        DeflateEncoder::new(PAGE)
            .read_to_end(&mut raw)
            .await
            .unwrap();
        assert!(is_zlib_header(&zlib));
        assert!(!is_zlib_header(&raw));
        for (form, data) in [("zlib", &zlib), ("raw", &raw)] {
            // Whole, and one byte per frame (the sniffer sees a single byte first).
            for size in [data.len(), 1] {
                let out = collect(decode(body_in_chunks(data, size), Coding::Deflate)).await;
                assert_eq!(out.unwrap(), PAGE, "{form} in {size}-byte frames");
            }
        }
    }

    #[tokio::test]
    async fn garbage_in_any_coding_is_an_error_not_output() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Br, Coding::Zstd] {
            let garbage = Full::new(Bytes::from_static(PAGE))
                .map_err(|never| match never {})
                .boxed_unsync();
            let out = collect(decode(garbage, coding)).await;
            assert!(out.is_err(), "{coding:?} decoded plain text: {out:?}");
        }
    }

    #[tokio::test]
    async fn every_coding_round_trips() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Br, Coding::Zstd] {
            let encoded = collect(encode(body_in_chunks(PAGE, 7), coding))
                .await
                .unwrap();
            let decoded = collect(decode(body_in_chunks(&encoded, 5), coding))
                .await
                .unwrap();
            assert_eq!(decoded, PAGE, "{coding:?}");
        }
    }
}
