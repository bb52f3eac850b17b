//! Pacing an SSE response: at most one write per interval, without
//! delaying a chunk that follows a quiet spell.
//!
//! Every write to a client's socket is a system call. Under load the
//! kernel is about 40 % of the server's CPU per event, and these writes a
//! large part of it. A model that streams tokens faster than the page draws
//! gains nothing from one write per token: the page draws an answer at most
//! every 30 ms, whatever arrived meanwhile in one update
//! (`chat::page::answer_parts`). So a chunk that comes less than `interval`
//! after the last write waits for the interval's end, and what else comes
//! meanwhile leaves with it.
//!
//! * The first chunk, and any chunk after a pause of at least `interval`,
//!   is written at once: the first token, and an event after a pause, never
//!   wait.
//! * The end of the stream writes what is held at once, so an answer's
//!   terminal event is never held.
//! * A zero interval writes every chunk as it comes.
//!
//! Not `tokio_stream`'s `chunks_timeout`: it holds the first item of every
//! batch for the whole timeout, the first token included.

use bytes::{Bytes, BytesMut};
use futures::Stream;
use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

/// When a paced stream may write next: the rule of the module doc, kept
/// by [`Paced`] and by a generation's listeners (which hold frames in the
/// answer's log rather than here).
#[derive(Debug, Clone, Copy)]
pub struct WriteClock {
    interval: Duration,
    /// The end of the interval begun by the last write; `None` before it.
    next: Option<Instant>,
}

impl WriteClock {
    pub fn new(interval: Duration) -> Self {
        Self { interval, next: None }
    }

    /// A write was made now: the next waits for the interval's end.
    pub fn wrote(&mut self) {
        self.next = Some(Instant::now() + self.interval);
    }

    /// When a chunk that comes now may be written: `None` for at once.
    pub fn held_until(&self) -> Option<Instant> {
        self.next.filter(|&at| Instant::now() < at)
    }
}

/// `chunks`, written at most once per `interval` (see the module doc).
/// What comes while a chunk is held is read at once and joined to it, so
/// a source that must be drained (a model's stream) keeps flowing.
pub fn paced<S>(chunks: S, interval: Duration) -> Paced<S>
where
    S: Stream<Item = Result<Bytes, Infallible>>,
{
    Paced {
        chunks: Box::pin(chunks),
        clock: WriteClock::new(interval),
        ended: false,
        held: BytesMut::new(),
        timer: None,
    }
}

pub struct Paced<S> {
    chunks: Pin<Box<S>>,
    clock: WriteClock,
    ended: bool,
    /// Chunks that came too soon after the last write, joined.
    held: BytesMut,
    /// Fires at the interval's end while chunks are held. Made once, then
    /// reset: only streams that are held pay for a timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Paced<S> {
    /// Hands `chunk` to the response and starts the next interval.
    fn write(&mut self, chunk: Bytes) -> Poll<Option<Result<Bytes, Infallible>>> {
        self.clock.wrote();
        Poll::Ready(Some(Ok(chunk)))
    }

    fn write_held(&mut self) -> Poll<Option<Result<Bytes, Infallible>>> {
        let chunk = self.held.split().freeze();
        self.write(chunk)
    }
}

impl<S> Stream for Paced<S>
where
    S: Stream<Item = Result<Bytes, Infallible>>,
{
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is `Unpin` (the inner stream is boxed).
        let this = self.get_mut();
        // Take what is ready, so that it leaves in the next write.
        while !this.ended {
            match this.chunks.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if this.held.is_empty() && this.clock.held_until().is_none() {
                        return this.write(chunk);
                    }
                    this.held.extend_from_slice(&chunk);
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => break,
            }
        }
        if this.held.is_empty() {
            return if this.ended {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
        if let (false, Some(at)) = (this.ended, this.clock.held_until()) {
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            ready!(timer.as_mut().poll(cx));
        }
        this.write_held()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{channel::mpsc, FutureExt, StreamExt};

    fn chunk(text: &'static str) -> Result<Bytes, Infallible> {
        Ok(Bytes::from_static(text.as_bytes()))
    }

    fn next_now(stream: &mut (impl Stream<Item = Result<Bytes, Infallible>> + Unpin)) -> Option<Bytes> {
        stream
            .next()
            .now_or_never()
            .map(|item| item.expect("not ended").expect("infallible"))
    }

    type Sender = mpsc::UnboundedSender<Result<Bytes, Infallible>>;

    /// A paced stream that has written its first chunk, "a", at once.
    fn paced_after_a_write(
        interval: Duration,
    ) -> (Sender, Paced<mpsc::UnboundedReceiver<Result<Bytes, Infallible>>>) {
        let (tx, rx) = mpsc::unbounded();
        let mut paced = paced(rx, interval);
        tx.unbounded_send(chunk("a")).unwrap();
        assert_eq!(
            next_now(&mut paced).as_deref(),
            Some(&b"a"[..]),
            "the first at once"
        );
        (tx, paced)
    }

    #[tokio::test]
    async fn chunks_within_the_interval_leave_together_when_it_ends() {
        let interval = Duration::from_secs(2);
        let (tx, mut paced) = paced_after_a_write(interval);
        let written = Instant::now();
        tx.unbounded_send(chunk("b")).unwrap();
        tx.unbounded_send(chunk("c")).unwrap();
        assert_eq!(next_now(&mut paced), None, "held within the interval");
        tx.unbounded_send(chunk("d")).unwrap();
        let joined = paced.next().await.unwrap().unwrap();
        assert_eq!(joined, "bcd", "one write for what came meanwhile");
        assert!(written.elapsed() >= interval - Duration::from_millis(5));
    }

    #[tokio::test]
    async fn a_chunk_after_a_quiet_spell_is_written_at_once() {
        let interval = Duration::from_millis(50);
        let (tx, mut paced) = paced_after_a_write(interval);
        tokio::time::sleep(interval * 2).await;
        tx.unbounded_send(chunk("b")).unwrap();
        assert_eq!(next_now(&mut paced).as_deref(), Some(&b"b"[..]));
    }

    #[tokio::test]
    async fn the_end_writes_what_is_held_at_once() {
        let (tx, mut paced) = paced_after_a_write(Duration::from_secs(60));
        tx.unbounded_send(chunk("usage")).unwrap();
        tx.unbounded_send(chunk("done")).unwrap();
        drop(tx);
        assert_eq!(next_now(&mut paced).as_deref(), Some(&b"usagedone"[..]));
        assert_eq!(paced.next().now_or_never(), Some(None), "then the end");
    }

    #[tokio::test]
    async fn a_zero_interval_writes_each_chunk_as_it_comes() {
        let (tx, rx) = mpsc::unbounded();
        let mut paced = paced(rx, Duration::ZERO);
        for text in ["a", "b", "c"] {
            tx.unbounded_send(chunk(text)).unwrap();
        }
        for text in ["a", "b", "c"] {
            assert_eq!(next_now(&mut paced).as_deref(), Some(text.as_bytes()));
        }
    }
}
