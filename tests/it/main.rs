//! The integration suite: one binary, one module per area.
//!
//! Storage tests run unchanged on SQLite and on PostgreSQL (a fresh database per test, on the server
//! named by `TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`). A missing
//! PostgreSQL fails the suite: it is never skipped.

mod api;
mod browser;
mod cli;
mod config;
mod crashes;
mod enforce;
mod fleet;
mod health;
mod import;
mod leases;
mod operator;
mod roles;
mod sandbox;
mod storage;
mod support;
mod vault;
mod webhooks;
