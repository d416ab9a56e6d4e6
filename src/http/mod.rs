//! The HTTP edge (axum): routes, authentication, body decoding, and the one
//! mapping of errors to problem documents.

mod auth;
mod command_bodies;
mod command_runner;
mod cors;
mod database_gate;
mod json;
mod openapi;
mod paths;
mod problem;
mod query_params;
mod rate_limit;
mod realtime_doc;
mod routes;
mod security_headers;
mod serve;
mod socket_commands;
pub mod socketio;
mod state;

pub use auth::{Caller, JwtKeys, SCOPE_ADMIN, SCOPE_EVENTS};
pub use command_bodies::{decode_command_body, CommandBody};
pub use cors::{with_cors, InvalidOrigin};
pub use json::MAX_BODY_BYTES;
pub use openapi::ApiDoc;
pub use problem::ApiError;
pub use rate_limit::CommandRateLimiter;
pub use routes::router;
pub use security_headers::SECURITY_HEADERS;
pub use serve::{serve, ConnectionSlot};
pub use socket_commands::{InProcessRouter, SOCKET_COMMANDS};
pub use state::{AppState, Services};
