//! Following an answer written by another instance: its frames read from
//! `answer_events`, woken by `NOTIFY`.
//!
//! * A follower marks its wake-up counter seen *before* it reads, so a
//!   batch committed after the read always wakes it; it reads `seq > last
//!   sent`, so nothing is sent twice, and batches commit in order, so
//!   nothing is skipped.
//! * Notifications are lost while the listening connection is down: when it
//!   comes back every follower is woken to re-read. A follower also re-reads
//!   every few seconds whatever happens, as a last resort.

use super::{Cluster, Followed, ANSWER_IDS_SEPARATOR, CONTROL_CHANNEL, EVENTS_CHANNEL, PG_NOW_MS};
use crate::sse;
use bytes::Bytes;
use futures::Stream;
use sqlx::{postgres::PgListener, Row};
use std::{convert::Infallible, time::Duration};
use tokio::{sync::watch, time::Instant};

/// The most frames one read returns.
const READ_LIMIT: i64 = 1000;
/// A follower re-reads this often even without a wake-up.
const POLL: Duration = Duration::from_secs(5);

/// Listens for the event and control channels for as long as the instance
/// runs, reconnecting when the connection drops.
pub(super) async fn listen(cluster: Cluster) {
    loop {
        let mut listener = match PgListener::connect_with(cluster.pool()).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for answer events; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(err) = listener.listen_all([EVENTS_CHANNEL, CONTROL_CHANNEL]).await {
            tracing::warn!(error = %err, "cannot listen for answer events; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything missed while not listening is read again.
        cluster.wake_all();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match notification.channel() {
                    EVENTS_CHANNEL => cluster.wake(notification.payload()),
                    CONTROL_CHANNEL => cluster.handle_control(notification.payload()),
                    _ => {}
                },
                // The connection was lost and is back: wake-ups were missed.
                Ok(None) => cluster.wake_all(),
                Err(err) => {
                    tracing::warn!(error = %err, "lost the answer-event listener; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }
}

impl Cluster {
    /// Wakes the followers of the answers a notification names.
    fn wake(&self, answer_ids: &str) {
        let following = self.inner.following.lock().expect("following lock");
        if following.is_empty() {
            return;
        }
        for answer_id in answer_ids.split(ANSWER_IDS_SEPARATOR) {
            if let Some(followed) = following.get(answer_id) {
                followed.wake.send_modify(|n| *n += 1);
            }
        }
    }

    fn wake_all(&self) {
        let following = self.inner.following.lock().expect("following lock");
        for followed in following.values() {
            followed.wake.send_modify(|n| *n += 1);
        }
    }

    /// The answers followed from this instance (their owners must not give
    /// them up for want of listeners).
    pub(super) fn followed_here(&self) -> Vec<String> {
        let following = self.inner.following.lock().expect("following lock");
        following.keys().cloned().collect()
    }

    /// Marks answers as followed now.
    pub(super) async fn touch_followed(&self, answer_ids: &[String]) -> Result<(), sqlx::Error> {
        if answer_ids.is_empty() {
            return Ok(());
        }
        // Passing over leases a transaction holds, as the renewal does (see
        // `upkeep::renew`): they are marked on the next tick.
        sqlx::query(&format!(
            "UPDATE answer_leases SET followed_at = {PG_NOW_MS} WHERE answer_id IN \
             (SELECT answer_id FROM answer_leases WHERE answer_id = ANY($1) FOR UPDATE SKIP LOCKED)"
        ))
        .bind(answer_ids)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    fn subscribe(&self, answer_id: &str) -> watch::Receiver<u64> {
        let mut following = self.inner.following.lock().expect("following lock");
        let followed = following.entry(answer_id.to_owned()).or_insert_with(|| Followed {
            wake: watch::Sender::new(0),
            followers: 0,
        });
        followed.followers += 1;
        followed.wake.subscribe()
    }

    fn unsubscribe(&self, answer_id: &str) {
        let mut following = self.inner.following.lock().expect("following lock");
        if let Some(followed) = following.get_mut(answer_id) {
            followed.followers -= 1;
            if followed.followers == 0 {
                following.remove(answer_id);
            }
        }
    }

    /// The frames of an answer after the first `seen`, then live ones until
    /// its last, with keep-alive comments when idle.
    pub fn follow(&self, answer_id: &str, seen: u64) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        struct Follower {
            cluster: Cluster,
            answer_id: String,
            wake: watch::Receiver<u64>,
            next: i64,
            ended: bool,
        }
        impl Drop for Follower {
            fn drop(&mut self) {
                self.cluster.unsubscribe(&self.answer_id);
            }
        }
        let follower = Follower {
            wake: self.subscribe(answer_id),
            cluster: self.clone(),
            answer_id: answer_id.to_owned(),
            next: seen as i64,
            ended: false,
        };
        {
            // Its owner learns at once that somebody follows it here.
            let cluster = self.clone();
            let ids = vec![answer_id.to_owned()];
            tokio::spawn(async move { cluster.touch_followed(&ids).await });
        }
        let keep_alive = self.timing().keep_alive;
        futures::stream::unfold(follower, move |mut follower| async move {
            if follower.ended {
                return None;
            }
            let idle_since = Instant::now();
            loop {
                // Seen before reading: a batch committed after the read wakes us.
                follower.wake.borrow_and_update();
                match follower.cluster.read(&follower.answer_id, follower.next).await {
                    Ok(Some((bytes, next, last))) => {
                        follower.next = next;
                        follower.ended = last;
                        return Some((Ok(bytes), follower));
                    }
                    Ok(None) => {}
                    // The database is away: keep the client with keep-alives.
                    Err(err) => tracing::debug!(error = %err, "cannot read answer events yet"),
                }
                let until_keep_alive = keep_alive.saturating_sub(idle_since.elapsed());
                if until_keep_alive.is_zero() {
                    return Some((Ok(Bytes::from_static(sse::encode::KEEP_ALIVE)), follower));
                }
                let wait = until_keep_alive.min(POLL);
                if let Ok(Err(_)) = tokio::time::timeout(wait, follower.wake.changed()).await {
                    // The instance is shutting down.
                    return None;
                }
            }
        })
    }

    /// The frames after `after`, joined; the id of the last of them;
    /// whether the answer's last frame was among them. A row holds several
    /// frames (see [`super::writer`]): the first row read may begin at or
    /// before `after`, and is cut there.
    async fn read(&self, answer_id: &str, after: i64) -> Result<Option<(Bytes, i64, bool)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT seq, frame, last FROM answer_events WHERE answer_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(answer_id)
        .bind(after)
        .bind(READ_LIMIT)
        .fetch_all(self.pool())
        .await?;
        let mut joined = Vec::new();
        let mut next = after;
        let mut last = false;
        'rows: for row in rows {
            let frames: String = row.try_get("frame")?;
            for frame in frames.split_inclusive("\n\n") {
                match frame_id(frame) {
                    // Already seen: the row began before `after`.
                    Some(seq) if seq <= next => continue,
                    Some(seq) if seq == next + 1 => {
                        joined.extend_from_slice(frame.as_bytes());
                        next = seq;
                    }
                    // A gap never happens while the answer's events are
                    // kept (batches commit in order): its events were
                    // deleted under us.
                    _ => {
                        last = true;
                        break 'rows;
                    }
                }
            }
            if row.try_get::<bool, _>("last")? {
                last = true;
                break;
            }
        }
        if joined.is_empty() && !last {
            // A client that claims more events than the answer ended with
            // gets the end, not a wait for events that never come.
            let ended: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM answer_events WHERE answer_id = $1 AND last AND seq <= $2)",
            )
            .bind(answer_id)
            .bind(after)
            .fetch_one(self.pool())
            .await?;
            if !ended {
                return Ok(None);
            }
            last = true;
        }
        Ok(Some((Bytes::from(joined), next, last)))
    }
}

/// The SSE id a stored frame starts with (`id: 12\n…`).
fn frame_id(frame: &str) -> Option<i64> {
    let (id, _) = frame.strip_prefix("id: ")?.split_once('\n')?;
    id.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::frame_id;

    #[test]
    fn a_stored_frame_names_its_id() {
        assert_eq!(frame_id("id: 12\nevent: delta\ndata: {}\n\n"), Some(12));
        assert_eq!(frame_id("id: 1\nevent: start\ndata: {\"id\":\"x\"}\n\n"), Some(1));
        assert_eq!(frame_id(": keep-alive\n\n"), None);
        assert_eq!(frame_id("id: twelve\nevent: delta\n\n"), None);
    }
}
