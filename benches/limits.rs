//! Limits benchmark: what the limits cost per message, and the memory the
//! per-minute limiters keep per owner and per address.
//!
//! Admits messages for `OWNERS` distinct owners from `ADDRESSES` addresses
//! through the real [`Limiter`] (per-owner and per-address rate limits,
//! concurrency slots; the daily budget and new-owner checks are the one
//! store read per message, counted by the conversation page benchmark). Bounded in
//! count; prints figures, asserts nothing about time.
//!
//! Run with `./dev bench` (or `cargo bench --features ssr --bench limits`).

// The integration tests' own helpers: a bench is a crate of its own, and
// Cargo has no dev-only library target to share them through.
#[path = "../tests/api/support/mod.rs"]
mod support;

use bedrock_chat::{
    chat::generation::{Generations, Timing},
    clock::Clock,
    conversations::{store::Store, Owner},
    server::{
        identity::Requester,
        limits::{Ask, Limiter},
    },
    settings::Settings,
};
use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

const OWNERS: usize = 100_000;
const ADDRESSES: usize = 1_000;

#[tokio::main]
async fn main() {
    let env: HashMap<String, String> = [
        ("BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_ADDRESS", "1000000"),
        ("BEDROCK_CHAT_LIMITS_DAILY_TOKENS_PER_OWNER", "0"),
        ("BEDROCK_CHAT_LIMITS_NEW_OWNERS_PER_ADDRESS_PER_HOUR", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let settings = Settings::built_in_with(&env).expect("valid settings");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("b.sqlite3").display()
    ))
    .await
    .unwrap();
    let generations = Generations::new(Timing {
        grace: Duration::from_secs(30),
        first_delta_grace: Duration::from_secs(3),
        keep_alive: Duration::from_secs(15),
        write_interval: Duration::from_millis(30),
        linger: Duration::from_secs(60),
        checkpoint: Duration::from_secs(3),
        checkpoint_bytes: 8192,
    });
    let limiter = Limiter::new(&settings.limits, true, Clock::system());
    let owners: Vec<Owner> = (0..OWNERS)
        .map(|i| Owner(format!("anon:{i:08}-0000-7000-8000-000000000000")))
        .collect();
    let addresses: Vec<IpAddr> = (0..ADDRESSES)
        .map(|i| IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]))
        .collect();

    let before = support::resident_kib();
    let started = Instant::now();
    for (i, owner) in owners.iter().enumerate() {
        let requester = Requester {
            address: addresses[i % ADDRESSES],
        };
        let reservation = limiter
            .admit(&generations, &store, owner, &requester, None, Ask::Stored)
            .await
            .expect("within every limit");
        drop(reservation);
    }
    let elapsed = started.elapsed();
    let after = support::resident_kib();
    println!(
        "admit (rate limits + slots): {:.2} us per message over {OWNERS} owners",
        elapsed.as_secs_f64() * 1e6 / OWNERS as f64
    );
    println!(
        "limiter state: {} keys held, resident memory +{} KiB, about {:.0} bytes per owner",
        limiter.keys_held(),
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 * 1024.0 / OWNERS as f64
    );
}
