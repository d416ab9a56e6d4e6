//! Event-sourced CQRS backend for real-time chat. See ARCHITECTURE.md for the
//! flow of a command from HTTP to the event log, NATS and the read models.

pub mod app;
pub mod config;
pub mod database_watch;
pub mod db;
pub mod domain;
pub mod event_store;
pub mod health;
pub mod http;
pub mod nats;
#[path = "../projections/mod.rs"]
pub mod projections;
pub mod publisher;
pub mod queries;
pub mod realtime;
pub mod replay;
pub mod server;
pub mod telemetry;
pub mod time;
