//! The `split_writes` option (`SimConfig::split_writes`): every response leaves in two
//! writes, its head first and then its body, as some HTTP servers send them.
//!
//! Why it matters: the simulator never sets `TCP_NODELAY`, so Nagle's algorithm holds the
//! second, small write until the first is acknowledged, and a client that keeps its connection
//! alive and waits for the body delays that acknowledgement (delayed ACK, ~40 ms on Linux).
//! A client that pays this loses tens of milliseconds per order; this option lets a test or a
//! benchmark show whether dhanhook's Dhan client does (issue 15, item 5). Off by default: the
//! simulator then writes as hyper asks it to (head and body together).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose writes stop at the end of an HTTP head when `split` is on.
pub(crate) struct SplitWrites<T> {
    inner: T,
    split: bool,
}

impl<T> SplitWrites<T> {
    pub(crate) fn new(inner: T, split: bool) -> Self {
        Self { inner, split }
    }
}

/// How much of `buf` to write in this call: up to the end of an HTTP head (`\r\n\r\n`) when
/// more bytes (the body) follow it in the same buffer, else all of it.
fn head_len(buf: &[u8]) -> usize {
    match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) if p + 4 < buf.len() => p + 4,
        _ => buf.len(),
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SplitWrites<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SplitWrites<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = if this.split { head_len(buf) } else { buf.len() };
        Pin::new(&mut this.inner).poll_write(cx, &buf[..n])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.split {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        // One buffer per write (hyper queues the head and the body as separate buffers); the
        // head is still cut at its end should hyper have flattened both into one.
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        Pin::new(this).poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        !self.split && self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// Records each write call's bytes.
    #[derive(Default)]
    struct Recorder(Vec<Vec<u8>>);

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";

    #[tokio::test]
    async fn on_the_head_and_the_body_are_two_writes() {
        let mut io = SplitWrites::new(Recorder::default(), true);
        io.write_all(RESPONSE).await.unwrap();
        assert_eq!(
            io.inner.0,
            vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n".to_vec(),
                b"{}".to_vec()
            ]
        );
        // Vectored (how hyper hands over a queued head and body): one buffer per write.
        let mut io = SplitWrites::new(Recorder::default(), true);
        let (head, body) = RESPONSE.split_at(RESPONSE.len() - 2);
        let n = io
            .write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)])
            .await
            .unwrap();
        assert_eq!((n, io.inner.0.len()), (head.len(), 1));
    }

    #[tokio::test]
    async fn off_everything_is_one_write() {
        let mut io = SplitWrites::new(Recorder::default(), false);
        io.write_all(RESPONSE).await.unwrap();
        assert_eq!(io.inner.0, vec![RESPONSE.to_vec()]);
    }

    #[test]
    fn a_head_without_a_body_is_not_cut() {
        assert_eq!(head_len(b"HTTP/1.1 204 No Content\r\n\r\n"), 27);
        assert_eq!(head_len(b"{\"a\":1}"), 7);
    }
}
