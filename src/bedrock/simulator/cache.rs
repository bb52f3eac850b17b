//! Bedrock's prompt cache, as the simulator plays it.
//!
//! A request marks cache points (`cachePoint` blocks) in its system prompt
//! and messages; everything before a point is a prefix that may be cached.
//! As Bedrock does, the simulator:
//! * refuses cache points for a model that does not take them, and more
//!   than [`MAX_POINTS`] in one request (400 `ValidationException`);
//! * caches only prefixes of at least [`MIN_TOKENS`] tokens (shorter ones
//!   are ignored, not refused), for [`TTL`] after their last use;
//! * reports the longest prefix found in the cache as read, and what the
//!   last point adds beyond it as written; input tokens are the rest.
//!
//! Tokens are words here, as everywhere in the simulator. The minimum is
//! one figure for every model (Bedrock's are 1,024 to 4,096 by model).

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
    time::{Duration, Instant},
};

pub const MAX_POINTS: usize = 4;
pub const MIN_TOKENS: i32 = 1024;
pub const TTL: Duration = Duration::from_secs(300);
/// Prefixes remembered at most (oldest forgotten first).
const CAPACITY: usize = 4096;

/// Model families that take cache points, as parts of model ids.
const CACHING_MODELS: &[&str] = &[
    "anthropic.claude-3-5-haiku",
    "anthropic.claude-3-7-sonnet",
    "anthropic.claude-sonnet-4",
    "anthropic.claude-opus-4",
    "anthropic.claude-haiku-4-5",
    "amazon.nova",
];

/// A cache point of a request: the prefix before it, as a hash, and its
/// length in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePoint {
    pub prefix: u64,
    pub tokens: i32,
}

/// Builds a request's cache points while its parts are read in order.
#[derive(Default)]
pub struct Prefix {
    hasher: DefaultHasher,
    tokens: i32,
    pub points: Vec<CachePoint>,
}

impl Prefix {
    pub fn new(model_id: &str) -> Self {
        let mut prefix = Self::default();
        model_id.hash(&mut prefix.hasher);
        prefix
    }

    /// A part of the request (a system block, a message's text).
    pub fn add(&mut self, part: &str) {
        part.hash(&mut self.hasher);
        self.tokens = self
            .tokens
            .saturating_add(part.split_whitespace().count().min(i32::MAX as usize) as i32);
    }

    /// A cache point after what was added so far.
    pub fn point(&mut self) {
        self.points.push(CachePoint {
            prefix: self.hasher.finish(),
            tokens: self.tokens,
        });
    }
}

/// Why Bedrock refuses a request's cache points, if it does.
pub fn refusal(model_id: &str, points: &[CachePoint]) -> Option<String> {
    if points.is_empty() {
        return None;
    }
    if !CACHING_MODELS.iter().any(|family| model_id.contains(family)) {
        return Some(format!(
            "The model {model_id} does not support prompt caching. Remove the cachePoint blocks from the request."
        ));
    }
    (points.len() > MAX_POINTS).then(|| {
        format!(
            "A request may have at most {MAX_POINTS} cache points; this one has {}.",
            points.len()
        )
    })
}

/// What the cache held of a request: tokens read and written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUse {
    pub read: i32,
    pub written: i32,
}

/// The prefixes cached, and when each was last used.
#[derive(Default)]
pub struct PromptCache {
    prefixes: Mutex<HashMap<u64, Instant>>,
}

impl PromptCache {
    /// Reads what it holds of `points` and caches the rest.
    pub fn serve(&self, points: &[CachePoint]) -> CacheUse {
        let now = Instant::now();
        let mut prefixes = self.prefixes.lock().unwrap_or_else(|p| p.into_inner());
        prefixes.retain(|_, used| now.duration_since(*used) < TTL);
        let eligible: Vec<&CachePoint> = points.iter().filter(|p| p.tokens >= MIN_TOKENS).collect();
        let read = eligible
            .iter()
            .filter(|p| prefixes.contains_key(&p.prefix))
            .map(|p| p.tokens)
            .max()
            .unwrap_or(0);
        let longest = eligible.iter().map(|p| p.tokens).max().unwrap_or(0);
        for point in eligible {
            if prefixes.len() >= CAPACITY && !prefixes.contains_key(&point.prefix) {
                if let Some(oldest) = prefixes.iter().min_by_key(|(_, used)| **used).map(|(k, _)| *k) {
                    prefixes.remove(&oldest);
                }
            }
            prefixes.insert(point.prefix, now);
        }
        CacheUse {
            read,
            written: longest - read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize) -> String {
        vec!["w"; n].join(" ")
    }

    #[test]
    fn a_prefix_is_written_once_then_read_and_a_longer_one_adds_what_is_new() {
        let cache = PromptCache::default();
        let mut first = Prefix::new("m");
        first.add(&words(1500));
        first.point();
        assert_eq!(
            cache.serve(&first.points),
            CacheUse {
                read: 0,
                written: 1500
            }
        );
        assert_eq!(
            cache.serve(&first.points),
            CacheUse {
                read: 1500,
                written: 0
            }
        );

        let mut longer = Prefix::new("m");
        longer.add(&words(1500));
        longer.point();
        longer.add(&words(300));
        longer.point();
        assert_eq!(
            cache.serve(&longer.points),
            CacheUse {
                read: 1500,
                written: 300
            }
        );

        // Another model's prefix is not this one's.
        let mut other = Prefix::new("n");
        other.add(&words(1500));
        other.point();
        assert_eq!(
            cache.serve(&other.points),
            CacheUse {
                read: 0,
                written: 1500
            }
        );
    }

    #[test]
    fn short_prefixes_are_not_cached_and_unsupported_models_are_refused() {
        let cache = PromptCache::default();
        let mut short = Prefix::new("us.anthropic.claude-3-5-haiku-20241022-v1:0");
        short.add(&words(100));
        short.point();
        assert_eq!(cache.serve(&short.points), CacheUse::default());
        assert_eq!(
            refusal("us.anthropic.claude-3-5-haiku-20241022-v1:0", &short.points),
            None
        );
        assert!(refusal("meta.llama3-70b-instruct-v1:0", &short.points)
            .unwrap()
            .contains("does not support prompt caching"));
        let five = vec![short.points[0]; 5];
        assert!(refusal("amazon.nova-lite-v1:0", &five)
            .unwrap()
            .contains("at most 4"));
    }
}
