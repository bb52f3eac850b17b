//! Several instances on one PostgreSQL, no sticky sessions: an answer is
//! resumed, followed, stopped and settled from any instance. Each instance
//! has a simulator of its own; one client (one owner) talks to all of them.

use crate::{resume::resume_sweep, support::*, tools::awaiting_approval};
use bedrock_chat::{bedrock::simulator, server::Application, sse::SseEvent};
use std::time::{Duration, Instant};

fn answer_id(events: &[SseEvent]) -> String {
    json(&events[0])["answer_id"].as_str().unwrap().to_owned()
}

/// Sends `text` to the instance at `base` (into `conversation`, if any) and
/// reads the answer's first `n` events. The reader reads on, or cuts the
/// connection when dropped.
async fn first_events(
    http: &reqwest::Client,
    base: &str,
    conversation: Option<&str>,
    text: &str,
    n: usize,
) -> (EventReader, Vec<SseEvent>) {
    let response = send_as(http, base, conversation, text).await;
    assert_eq!(response.status(), 200, "send {text:?}");
    let mut reader = EventReader::new(response);
    let head = reader.read_until(|e| e.len() >= n).await.to_vec();
    (reader, head)
}

async fn follow(
    http: &reqwest::Client,
    instance: &Instance,
    answer_id: &str,
    last: u64,
) -> reqwest::Response {
    http.get(instance.url(&format!(
        "/api/generations/{answer_id}/events?last_event_id={last}"
    )))
    .send()
    .await
    .unwrap()
}

/// The 100-cut resume sweep, every reconnect sent to another instance than
/// the one writing the answer: no gap, no repeat, the exact text.
#[tokio::test]
async fn a_cut_answer_resumes_on_any_instance_without_gap_or_repeat() {
    let Some((_db, instances)) = start_instances(3, &[]).await else {
        return;
    };
    let http = new_user();
    let others = [instances[1].base.clone(), instances[2].base.clone()];
    resume_sweep(&http, &instances[0].base, &others).await;
}

/// Fifty listeners spread over three instances all assemble the same text,
/// the simulator's, ending in `done`.
#[tokio::test]
async fn fifty_listeners_on_three_instances_get_the_same_answer() {
    let Some((_db, instances)) = start_instances(3, &[]).await else {
        return;
    };
    let http = new_user();
    let prompt = "Fan out over instances [sim tokens=200 delay_ms=5]";
    let (mut writer, head) = first_events(&http, &instances[0].base, None, prompt, 1).await;
    let answer = answer_id(&head);
    let listeners = (0..50).map(|n| {
        let (http, instance, answer) = (&http, &instances[n % 3], &answer);
        async move { read_events(follow(http, instance, answer, 0).await).await }
    });
    // One claims more events than the answer will have: it gets the end
    // when the answer ends, not a wait for ever.
    let overreaching = async { read_events(follow(&http, &instances[1], &answer, 100_000).await).await };
    let (all, overreached) = futures::join!(futures::future::join_all(listeners), overreaching);
    assert!(overreached.is_empty(), "{:?}", names(&overreached));
    let expected = simulator::expected_answer(&sim_messages(&[("user", prompt)]));
    for (n, events) in all.iter().enumerate() {
        assert_eq!(answer_text(events), expected, "listener {n}");
        assert_eq!(events.last().unwrap().event, "done", "listener {n}");
    }
    assert_eq!(answer_text(writer.read_to_end().await), expected);
}

/// Stop sent to an instance that does not write the answer: the writing
/// instance drops its Bedrock stream within 500 ms, and a follower on the
/// other instance gets `done` with `stop_reason: "stopped"`.
#[tokio::test]
async fn stop_sent_to_another_instance_drops_the_bedrock_stream_at_once() {
    let Some((_db, instances)) = start_instances(2, &[]).await else {
        return;
    };
    let (owner, other) = (&instances[0], &instances[1]);
    let http = new_user();
    let (mut writer, head) = first_events(
        &http,
        &owner.base,
        None,
        "Go on and on [sim tokens=2000 delay_ms=10]",
        3,
    )
    .await;
    let answer = answer_id(&head);
    let follower = follow(&http, other, &answer, 0).await;
    assert_eq!(follower.status(), 200);

    // Someone else cannot stop it, on any instance.
    let intruder = new_user();
    let refused = intruder
        .post(other.url(&format!("/api/generations/{answer}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);

    let asked = Instant::now();
    let cancel = http
        .post(other.url(&format!("/api/generations/{answer}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    let outcome: serde_json::Value = cancel.json().await.unwrap();
    assert_eq!(outcome["cancelled"], true);
    assert!(
        owner
            .sim
            .wait_streams_dropped(1, Duration::from_millis(500))
            .await,
        "the Bedrock stream was not dropped within 500 ms of a Stop sent to another instance"
    );
    println!(
        "stop via another instance -> Bedrock stream dropped in {:?}",
        asked.elapsed()
    );

    let seen = read_events(follower).await;
    let done = seen.last().unwrap();
    assert_eq!(done.event, "done");
    assert_eq!(json(done)["stop_reason"], "stopped");
    assert_eq!(writer.read_to_end().await.last().unwrap().event, "done");

    // Once stopped, the same request says so, from any instance.
    let again: serde_json::Value = http
        .post(other.url(&format!("/api/generations/{answer}/cancel")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["cancelled"], false);
}

/// While one instance writes an answer in a conversation, another refuses a
/// new message, Retry and an edit there with 409; a new instance starting
/// meanwhile leaves the answer alone; once it ends, the other instance
/// takes the next message.
#[tokio::test]
async fn another_instance_refuses_a_second_answer_in_a_busy_conversation() {
    let Some((db, instances)) = start_instances(2, &[]).await else {
        return;
    };
    let (owner, other) = (&instances[0], &instances[1]);
    let http = new_user();
    let (mut writer, head) = first_events(
        &http,
        &owner.base,
        None,
        "A long one [sim tokens=150 delay_ms=10]",
        3,
    )
    .await;
    let start = json(&head[0]);
    let conversation = start["conversation_id"].as_str().unwrap().to_owned();
    let user_message = start["user_message_id"].as_str().unwrap().to_owned();

    let busy = send_as(&http, &other.base, Some(&conversation), "Me too").await;
    assert_eq!(busy.status(), 409);
    let body: serde_json::Value = busy.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conversation_busy");
    let retry = http
        .post(other.url(&format!("/api/conversations/{conversation}/regenerate")))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 409);
    let edit = http
        .post(other.url(&format!("/api/conversations/{conversation}/edit")))
        .json(&serde_json::json!({ "message_id": user_message, "content": "Edited" }))
        .send()
        .await
        .unwrap();
    assert_eq!(edit.status(), 409);

    // A start-up leaves answers under another instance's lease alone.
    let _late = start_instance(&db, &[]).await.expect("a third instance starts");

    let events = writer.read_to_end().await;
    assert_eq!(events.last().unwrap().event, "done");
    assert_eq!(json(events.last().unwrap())["stop_reason"], "end_turn");
    let (_, stored) = get_json_as(&http, &other.url(&format!("/api/conversations/{conversation}"))).await;
    let last = stored["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "complete", "{last}");

    let next = send_as(&http, &other.base, Some(&conversation), "Now me").await;
    assert_eq!(next.status(), 200);
    assert_eq!(read_events(next).await.last().unwrap().event, "done");
}

/// An instance renews its leases while another transaction holds one of
/// them, as a committing lane that ends that answer does: it passes over
/// that one instead of waiting for it. (Waiting, with the rest locked, it
/// deadlocked with lanes that went on to another of its leases.)
#[tokio::test]
async fn lease_renewal_passes_over_a_lease_a_transaction_holds() {
    use sqlx::Connection;
    let Some(db) = Db::postgres().await else {
        return;
    };
    let Db::Postgres { url, .. } = &db else {
        unreachable!("a PostgreSQL database")
    };
    // Renewed every 2 s: the held lease is not allowed to lapse while held.
    let lease = [("BEDROCK_CHAT_STREAMS_LEASE_SECS", "6")];
    let instance = start_instance(&db, &lease).await.expect("instance starts");
    let http = new_user();
    let long = "Long [sim tokens=1000 delay_ms=15]";
    let (_reading_held, head) = first_events(&http, &instance.base, None, long, 1).await;
    let held = answer_id(&head);
    let (_reading_other, head) = first_events(&http, &instance.base, None, long, 1).await;
    let other = answer_id(&head);

    let mut reader = sqlx::PgConnection::connect(url).await.unwrap();
    let mut expiry = async |answer: &str| -> i64 {
        sqlx::query_scalar("SELECT expires_at FROM answer_leases WHERE answer_id = $1")
            .bind(answer)
            .fetch_one(&mut reader)
            .await
            .expect("the answer is leased")
    };
    let mut holder = sqlx::PgConnection::connect(url).await.unwrap();
    let mut holding = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM answer_leases WHERE answer_id = $1 FOR UPDATE")
        .bind(&held)
        .execute(&mut *holding)
        .await
        .unwrap();
    let before = expiry(&other).await;
    let deadline = Instant::now() + Duration::from_millis(3_500);
    let renewed = loop {
        let now = expiry(&other).await;
        if now > before || Instant::now() > deadline {
            break now > before;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    holding.rollback().await.unwrap();
    assert!(renewed, "the other lease was renewed while one was held");
}

/// SIGKILL the instance writing an answer: within the lease plus 2 s another
/// instance stores it `interrupted` with the text its events held, and a
/// follower on that instance gets the end of its stream.
#[tokio::test]
async fn answers_of_a_killed_instance_are_stored_interrupted_within_the_lease() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let lease = [("BEDROCK_CHAT_STREAMS_LEASE_SECS", "2")];
    let mut doomed = ServerProcess::start(&db, &lease);
    let survivor = start_instance(&db, &lease).await.expect("instance starts");
    let http = new_user();
    let (_, head) = first_events(
        &http,
        &doomed.base,
        None,
        "Then it died [sim tokens=3000 delay_ms=10]",
        20,
    )
    .await;
    let conversation = json(&head[0])["conversation_id"].as_str().unwrap().to_owned();
    let answer = answer_id(&head);
    let mut follower = EventReader::new(follow(&http, &survivor, &answer, 0).await);
    let followed = follower.read_until(|e| e.len() >= 20).await.len();
    assert!(followed >= 20);

    doomed.kill();
    let killed = Instant::now();
    let events = tokio::time::timeout(Duration::from_secs(2 + 2 + 1), follower.read_to_end())
        .await
        .expect("the follower's stream ends within the lease plus 2 s")
        .to_vec();
    let ended = killed.elapsed();
    let end = events.last().unwrap();
    assert_eq!(end.event, "done");
    assert_eq!(json(end)["stop_reason"], "stopped");
    println!("SIGKILL -> follower's stream ended after {ended:?} (lease 2 s)");

    let (status, stored) = get_json_as(
        &http,
        &survivor.url(&format!("/api/conversations/{conversation}")),
    )
    .await;
    assert_eq!(status, 200);
    let last = stored["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "interrupted", "{last}");
    // What the follower saw is what was flushed, and that is what is kept.
    let kept = last["content"].as_str().unwrap();
    assert_eq!(kept, answer_text(&events));
    assert!(kept.len() > 20, "{kept:?}");
    let expected = simulator::expected_answer(&sim_messages(&[(
        "user",
        "Then it died [sim tokens=3000 delay_ms=10]",
    )]));
    assert!(expected.starts_with(kept));
    assert!(ended < Duration::from_secs(2 + 2), "{ended:?}");
}

/// An instance whose cookie secret differs from a running one's refuses to
/// start, and says how to set one.
#[tokio::test]
async fn an_instance_with_another_cookie_secret_refuses_to_start() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let secret = |s: &'static str| [("BEDROCK_CHAT_IDENTITY_COOKIE_SECRET", s)];
    let _first = start_instance(&db, &secret("one secret, thirty-two bytes long"))
        .await
        .expect("starts");
    let _same = start_instance(&db, &secret("one secret, thirty-two bytes long"))
        .await
        .expect("the same secret starts");
    let refused = Application::build(test_settings(&db, &secret("another secret, every bit as long")))
        .await
        .err()
        .expect("a different secret is refused");
    let message = refused.to_string();
    assert!(message.contains("different secret"), "{message}");
    assert!(
        message.contains("BEDROCK_CHAT_IDENTITY_COOKIE_SECRET"),
        "{message}"
    );
}

/// Approve and Deny sent to an instance that does not write the answer:
/// the call runs (or is declined) as if they had been sent to its writer,
/// and a second decision on either instance is refused with 409.
#[tokio::test]
async fn approve_and_deny_work_from_another_instance() {
    let approval = [("BEDROCK_CHAT_TOOLS_REQUIRES_APPROVAL", "calculator")];
    let Some((_db, instances)) = start_instances(2, &approval).await else {
        return;
    };
    let (owner, other) = (&instances[0], &instances[1]);
    let http = new_user();
    let decide = |instance: &Instance, answer: &str, call: &str, approve: bool| {
        http.post(instance.url(&format!("/api/generations/{answer}/tools/{call}")))
            .json(&serde_json::json!({ "approve": approve }))
            .send()
    };
    for approve in [true, false] {
        let (mut reader, answer, call) = awaiting_approval(&http, &owner.base).await;
        let stranger = new_user()
            .post(other.url(&format!("/api/generations/{answer}/tools/{call}")))
            .json(&serde_json::json!({ "approve": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(stranger.status(), 404);
        assert_eq!(
            decide(other, &answer, &call, approve).await.unwrap().status(),
            200
        );
        let events = reader.read_to_end().await.to_vec();
        let result = json(events.iter().find(|e| e.event == "tool_result").unwrap());
        assert_eq!(result["ok"], approve, "{result}");
        if approve {
            assert_eq!(result["content"], "6*7 = 42");
        } else {
            assert_eq!(result["content"], "The user declined to run this tool call.");
        }
        for instance in [other, owner] {
            let again = decide(instance, &answer, &call, !approve).await.unwrap();
            assert_eq!(again.status(), 409, "decided once");
        }
    }
}

/// Thirty people's answers are written on one instance at once, each
/// followed from another. The writer's batches name the answers together,
/// several to a `NOTIFY`, and each follower is woken by them: it has half
/// its answer while the answer is still being written (a follower nobody
/// wakes re-reads only every five seconds, after these answers have
/// ended), and then all of it. A batch stores each answer's frames in one
/// row, and a follower that joins partway reads on from inside a row.
#[tokio::test]
async fn answers_written_together_wake_each_of_their_followers() {
    use sqlx::Connection;
    let Some((db, instances)) = start_instances(2, &[]).await else {
        return;
    };
    let Db::Postgres { url, .. } = &db else {
        unreachable!("a PostgreSQL database")
    };
    let (owner, other) = (&instances[0], &instances[1]);
    let runs = (0..30).map(|n| async move {
        let http = new_user();
        let prompt = format!("Together {n} [sim tokens=80 delay_ms=20]");
        let (mut writer, head) = first_events(&http, &owner.base, None, &prompt, 1).await;
        let mut follower = EventReader::new(follow(&http, other, &answer_id(&head), 0).await);
        let deltas = |events: &[SseEvent]| events.iter().filter(|e| e.event == "delta").count();
        let (half_followed, written) = futures::join!(
            async {
                follower.read_until(|events| deltas(events) >= 40).await;
                Instant::now()
            },
            async {
                writer.read_to_end().await;
                Instant::now()
            }
        );
        assert!(
            half_followed < written,
            "answer {n}: the follower had half of it only after it was written"
        );
        let expected = simulator::expected_answer(&sim_messages(&[("user", &prompt)]));
        let followed = follower.read_to_end().await;
        assert_eq!(answer_text(followed), expected, "answer {n}");
        assert_eq!(followed.last().unwrap().event, "done", "answer {n}");
        // Joining after every third event: from inside a row, mostly.
        for seen in (3..followed.len() as u64).step_by(3) {
            let late = read_events(follow(&http, other, &answer_id(&head), seen).await).await;
            assert_eq!(late, followed[seen as usize..], "answer {n}, joined after {seen}");
        }
        (answer_id(&head), followed.len())
    });
    let answers = futures::future::join_all(runs).await;
    let mut reader = sqlx::PgConnection::connect(url).await.unwrap();
    for (answer, frames) in answers {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM answer_events WHERE answer_id = $1")
            .bind(&answer)
            .fetch_one(&mut reader)
            .await
            .unwrap();
        assert!(
            (rows as usize) < frames / 2,
            "{frames} frames in {rows} rows: a batch's frames of one answer share a row"
        );
    }
}

/// The writer's own listener goes; a listener on another instance keeps
/// following past the grace period: the answer is not abandoned.
#[tokio::test]
async fn a_listener_on_another_instance_keeps_an_answer_alive() {
    let grace = [("BEDROCK_CHAT_STREAMS_GRACE_PERIOD_SECS", "0.5")];
    let Some((_db, instances)) = start_instances(2, &grace).await else {
        return;
    };
    let (owner, other) = (&instances[0], &instances[1]);
    let http = new_user();
    let prompt = "Keep going [sim tokens=150 delay_ms=10]";
    let (_, head) = first_events(&http, &owner.base, None, prompt, 3).await;
    // The first listener has hung up; the follower elsewhere reads for
    // three grace periods and more.
    let events = read_events(follow(&http, other, &answer_id(&head), 0).await).await;
    let end = events.last().unwrap();
    assert_eq!(json(end)["stop_reason"], "end_turn", "{:?}", names(&events));
    let expected = simulator::expected_answer(&sim_messages(&[("user", prompt)]));
    assert_eq!(answer_text(&events), expected);
}

/// A user behind a plain round-robin load balancer over three instances,
/// every request on a new connection: a conversation, a cut and resumed
/// answer, a second tab, Stop, Retry and the list all work.
#[tokio::test]
async fn behind_a_round_robin_load_balancer_a_conversation_just_works() {
    let Some((_db, instances)) = start_instances(3, &[]).await else {
        return;
    };
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
    let balancer = round_robin(&bases).await;
    let http = user_without_connection_reuse();

    let prompt = "Through the balancer [sim tokens=300 delay_ms=5]";
    let (_, before) = first_events(&http, &balancer, None, prompt, 10).await;
    let answer = answer_id(&before);
    let conversation = json(&before[0])["conversation_id"].as_str().unwrap().to_owned();
    let last = before.last().unwrap().id.clone().unwrap();
    let resumed = http
        .get(format!(
            "{balancer}/api/generations/{answer}/events?last_event_id={last}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let second_tab = http
        .get(format!(
            "{balancer}/api/generations/{answer}/events?last_event_id=0"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(second_tab.status(), 200);
    let after = read_events(resumed).await;
    let all: Vec<SseEvent> = before.iter().chain(&after).cloned().collect();
    let expected = simulator::expected_answer(&sim_messages(&[("user", prompt)]));
    assert_eq!(answer_text(&all), expected);
    assert_eq!(answer_text(&read_events(second_tab).await), expected);

    // The next answer is stopped through the balancer, then retried.
    let (mut reader, head) = first_events(
        &http,
        &balancer,
        Some(&conversation),
        "Again [sim tokens=200 delay_ms=10]",
        3,
    )
    .await;
    let stopped = answer_id(&head);
    let cancel: serde_json::Value = http
        .post(format!("{balancer}/api/generations/{stopped}/cancel"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancel["cancelled"], true);
    let end = reader.read_to_end().await.last().unwrap().clone();
    assert_eq!(json(&end)["stop_reason"], "stopped");
    let retried = http
        .post(format!("{balancer}/api/conversations/{conversation}/regenerate"))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200);
    assert_eq!(read_events(retried).await.last().unwrap().event, "done");

    let (status, list) = get_json_as(&http, &format!("{balancer}/api/conversations")).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], conversation.as_str());
    let (_, stored) = get_json_as(&http, &format!("{balancer}/api/conversations/{conversation}")).await;
    let statuses = message_statuses(&stored);
    assert_eq!(
        statuses,
        ["complete", "complete", "complete", "stopped", "complete"]
    );
}

/// Two instances count one owner's answers being written together: a burst
/// of first messages (then of next messages) sent to both at once gets
/// exactly the cap's answers, and the rest are refused with 429. (Each instance counts the owner's
/// leases once it holds the owner's row, so the two count one after the
/// other; counting without it, both saw the same leases.)
#[tokio::test]
async fn instances_cap_one_owners_answers_at_once_together() {
    let caps = [("BEDROCK_CHAT_LIMITS_MAX_CONCURRENT_ANSWERS_PER_OWNER", "3")];
    let Some((_db, instances)) = start_instances(2, &caps).await else {
        return;
    };
    let http = new_user();
    // The owner exists before the burst (its cookie is set on both).
    let (mut first, _) = first_events(&http, &instances[0].base, None, "Hello", 1).await;
    first.read_to_end().await;

    let mut conversations = Vec::new();
    for round in 0..3 {
        let sent = (0..8).map(|n| {
            let (http, base) = (&http, &instances[n % 2].base);
            async move {
                let text = format!("Slow {round}.{n} [sim tokens=40 delay_ms=50]");
                send_as(http, base, None, &text).await
            }
        });
        let responses = futures::future::join_all(sent).await;
        let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(
            statuses.iter().filter(|&&s| s == 200).count(),
            3,
            "round {round}: {statuses:?}"
        );
        assert!(statuses.iter().all(|&s| s == 200 || s == 429), "{statuses:?}");
        // The written ones end, freeing the cap for the next round.
        for response in responses.into_iter().filter(|r| r.status() == 200) {
            let events = read_events(response).await;
            assert_eq!(events.last().unwrap().event, "done");
            conversations.push(json(&events[0])["conversation_id"].as_str().unwrap().to_owned());
        }
    }

    // The same for next messages, one in each of those conversations.
    let sent = conversations.iter().enumerate().map(|(n, conversation)| {
        let (http, base) = (&http, &instances[n % 2].base);
        async move {
            send_as(
                http,
                base,
                Some(conversation),
                "Slow again [sim tokens=40 delay_ms=50]",
            )
            .await
        }
    });
    let statuses: Vec<u16> = futures::future::join_all(sent)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 3, "{statuses:?}");
    assert!(statuses.iter().all(|&s| s == 200 || s == 429), "{statuses:?}");
}
