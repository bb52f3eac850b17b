//! Limits that protect the Bedrock bill, checked before a message is stored
//! and a model is called. Each refusal is 429 with a sentence and
//! `Retry-After`.
//!
//! In the order they are checked (cheapest first):
//! 1. messages per minute, per client address and per owner (GCRA, keyed,
//!    in memory: `governor`);
//! 2. one store read: whether the owner has stored anything yet, and its
//!    tokens today (UTC), summed from Bedrock's own usage as stored with
//!    each answer;
//! 3. new anonymous owners (no stored message yet, cookie or not): refused
//!    when `identity.allow_anonymous` is off, and at most
//!    `new_owners_per_address_per_hour` per client address, so dropping the
//!    cookie does not make a fresh owner with fresh limits each time;
//! 4. the daily token budget;
//! 5. answers being written at once, per owner and for the whole server
//!    (a [`Reservation`] held until the answer is stored).
//!
//! The per-minute state is one small entry per key; idle keys are dropped
//! by [`Limiter::forget_idle`], which the sweeper calls.

use super::{identity::Requester, ApiError};
use crate::errors::ErrorCode;
use crate::settings::Limits;
use crate::{
    chat::generation::{Generations, Refusal, Reservation, SlotLimits},
    clock::Clock,
    conversations::{store::Store, Owner},
};
use governor::{clock::Clock as _, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

/// Every limit, built once at start; cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    per_owner: Option<DefaultKeyedRateLimiter<String>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    new_owners: Option<DefaultKeyedRateLimiter<IpAddr>>,
    allow_anonymous: bool,
    daily_tokens: u64,
    slots: SlotLimits,
    clock: Clock,
}

/// What asks for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// A message stored in a conversation (send, retry, edit).
    Stored,
    /// The compatibility endpoint: nothing stored, no owner made.
    Compat,
}

fn keyed<K: std::hash::Hash + Eq + Clone>(quota: Option<Quota>) -> Option<DefaultKeyedRateLimiter<K>> {
    quota.map(RateLimiter::dashmap)
}

fn per_minute(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_minute)
}

impl Limiter {
    pub fn new(limits: &Limits, allow_anonymous: bool, clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                per_owner: keyed(per_minute(limits.messages_per_minute_per_owner)),
                per_address: keyed(per_minute(limits.messages_per_minute_per_address)),
                new_owners: keyed(
                    NonZeroU32::new(limits.new_owners_per_address_per_hour).map(Quota::per_hour),
                ),
                allow_anonymous,
                daily_tokens: limits.daily_tokens_per_owner,
                slots: SlotLimits {
                    per_owner: limits.max_concurrent_answers_per_owner,
                    total: limits.max_live_streams,
                },
                clock,
            }),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Admits one answer for `owner` (in `conversation`, when it exists), or
    /// says which limit refuses it. The reservation is held until the
    /// answer is stored.
    pub async fn admit(
        &self,
        generations: &Generations,
        store: &Store,
        owner: &Owner,
        requester: &Requester,
        conversation: Option<&str>,
        ask: Ask,
    ) -> Result<Reservation, ApiError> {
        let limits = &self.inner;
        if let Some(limiter) = &limits.per_address {
            limiter.check_key(&requester.address).map_err(|not_until| {
                ApiError::too_many(ErrorCode::RateLimited,
                    "Too many messages were sent from your network in the last minute. Wait a moment, then send again.",
                    wait(&not_until),
                )
            })?;
        }
        if let Some(limiter) = &limits.per_owner {
            limiter.check_key(&owner.0).map_err(|not_until| {
                ApiError::too_many(ErrorCode::RateLimited,
                    "You are sending messages faster than this server allows. Wait a moment, then send again.",
                    wait(&not_until),
                )
            })?;
        }
        let counts_new_owners = limits.new_owners.is_some() || !limits.allow_anonymous;
        if ask == Ask::Stored && (limits.daily_tokens > 0 || counts_new_owners) {
            let standing = store.owner_standing(owner.as_str(), limits.clock.today()).await?;
            if !standing.known && owner.as_str().starts_with("anon:") {
                self.admit_new_owner(requester)?;
            }
            if limits.daily_tokens > 0 && standing.tokens_today >= limits.daily_tokens {
                return Err(ApiError::too_many(
                    ErrorCode::DailyBudgetSpent,
                    format!(
                        "You have used today's {} tokens. The budget starts again at midnight UTC.",
                        limits.daily_tokens
                    ),
                    limits.clock.until_tomorrow(),
                ));
            }
        }
        generations
            .reserve(owner.as_str(), conversation, limits.slots)
            .map_err(refusal)
    }

    /// A first message of an anonymous owner.
    fn admit_new_owner(&self, requester: &Requester) -> Result<(), ApiError> {
        if !self.inner.allow_anonymous {
            return Err(ApiError::new(ErrorCode::AnonymousNotAllowed,
                "This server does not take messages from new visitors. Sign in, or ask its administrator for access.",
                false,
            ));
        }
        if let Some(limiter) = &self.inner.new_owners {
            limiter.check_key(&requester.address).map_err(|not_until| {
                ApiError::too_many(ErrorCode::TooManyNewUsers,
                    "Too many new chats were started from your network in the last hour. Keep using the same browser (with cookies on), or try again later.",
                    wait(&not_until),
                )
            })?;
        }
        Ok(())
    }

    /// Drops the per-minute state of keys that are back to a full quota.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.inner.per_owner {
            limiter.retain_recent();
        }
        // Keyed by address, both of them.
        for limiter in [&self.inner.per_address, &self.inner.new_owners]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
        }
    }

    /// How many keys the limiters hold (for figures).
    pub fn keys_held(&self) -> usize {
        let inner = &self.inner;
        inner.per_owner.as_ref().map_or(0, |l| l.len())
            + inner.per_address.as_ref().map_or(0, |l| l.len())
            + inner.new_owners.as_ref().map_or(0, |l| l.len())
    }
}

fn wait(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    not_until.wait_time_from(governor::clock::DefaultClock::default().now())
}

fn refusal(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::ConversationBusy => ApiError::new(ErrorCode::ConversationBusy,
            "An answer is still being written in this conversation. Wait for it to finish, or stop it, then send again.",
            true,
        ),
        Refusal::OwnerAtLimit(n) => ApiError::too_many(ErrorCode::TooManyAnswers,
            format!("You already have {n} answers being written. Wait for one to finish, or stop one, then send again."),
            Duration::from_secs(5),
        ),
        Refusal::ServerAtLimit(_) => ApiError::too_many(ErrorCode::ServerBusy,
            "The server is writing as many answers as it can right now. Send your message again in a moment.",
            Duration::from_secs(5),
        ),
    }
}
