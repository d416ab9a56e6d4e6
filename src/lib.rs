//! Event-sourced CQRS backend for real-time chat. See ARCHITECTURE.md for the
//! flow of a command from HTTP to the event log, NATS and the read models.

pub mod domain;
