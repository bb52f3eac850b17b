//! The integration tests, as one binary: each file is a module, and the AWS
//! SDK, sqlx and Leptos are linked once rather than once per file.
//!
//! Every test starts the real app (or its binary) on loopback, with a
//! simulator of its own behind the real `aws-sdk-bedrockruntime` client and
//! a database of its own (SQLite, or PostgreSQL from `TEST_POSTGRES_URL`):
//! see [`support`].
#![cfg(feature = "ssr")]

mod support;

mod chat_stream;
mod container;
mod conversations;
mod costs;
mod defences;
mod instances;
mod mcp;
mod operations;
mod resume;
mod seed_compat;
mod simulator_wire;
mod tools;
