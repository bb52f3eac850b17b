//! Tool calls waiting for the user's Approve or Deny.
//!
//! A tool the operator marks `requires_approval` pauses its call: the answer
//! sends `tool_approval`, and the call waits here until someone who follows
//! the answer (any tab of its owner) decides, or the approval time runs out.
//! Nobody listening is handled as for any answer: after the grace period
//! the answer is stopped, and the waiting call with it.

use crate::bedrock::Approval;
use futures::{future::BoxFuture, FutureExt};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::oneshot;

/// The calls of one answer that wait for a decision.
#[derive(Clone, Default)]
pub struct Approvals {
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<bool>>>>,
}

impl Approvals {
    /// Waits for the decision on `call_id`, at most `limit`.
    pub fn wait(&self, call_id: &str, limit: Duration) -> BoxFuture<'static, Approval> {
        let (decide, decided) = oneshot::channel();
        self.waiting
            .lock()
            .expect("approvals lock")
            .insert(call_id.to_owned(), decide);
        let waiting = self.waiting.clone();
        let call_id = call_id.to_owned();
        async move {
            let outcome = match tokio::time::timeout(limit, decided).await {
                Ok(Ok(true)) => Approval::Approved,
                Ok(Ok(false)) => Approval::Denied,
                Ok(Err(_)) | Err(_) => Approval::TimedOut,
            };
            waiting.lock().expect("approvals lock").remove(&call_id);
            outcome
        }
        .boxed()
    }

    /// Decides on a waiting call; false when it is not waiting (decided
    /// already, timed out, or never asked).
    pub fn decide(&self, call_id: &str, approve: bool) -> bool {
        let sender = self.waiting.lock().expect("approvals lock").remove(call_id);
        sender.is_some_and(|sender| sender.send(approve).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_waits_for_one_decision_or_its_time() {
        let approvals = Approvals::default();
        let waiting = approvals.wait("a", Duration::from_secs(5));
        assert!(approvals.decide("a", true));
        assert!(!approvals.decide("a", false), "decided once");
        assert_eq!(waiting.await, Approval::Approved);

        let denied = approvals.wait("b", Duration::from_secs(5));
        assert!(approvals.decide("b", false));
        assert_eq!(denied.await, Approval::Denied);

        assert_eq!(
            approvals.wait("c", Duration::from_millis(10)).await,
            Approval::TimedOut
        );
        assert!(!approvals.decide("c", true), "too late");
        assert!(!approvals.decide("never", true));
    }
}
