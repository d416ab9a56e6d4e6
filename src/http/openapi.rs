//! The OpenAPI 3.1 document, generated from the handlers and types.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes;

/// Everything the API serves.
#[derive(OpenApi)]
#[openapi(
    info(title = "Chat backend", version = "1", description = "Event-sourced chat: commands append events; see API.md."),
    paths(
        routes::create_conversation, routes::rename_conversation, routes::archive_conversation, routes::unarchive_conversation,
        routes::add_participant, routes::remove_participant, routes::change_role, routes::change_own_settings,
        routes::send_message, routes::edit_message, routes::delete_message, routes::mark_read,
        routes::add_reaction, routes::remove_reaction, routes::put_user, routes::put_posting,
        routes::list_conversations, routes::get_conversation, routes::find_direct, routes::list_messages,
        routes::replay_events, routes::event_schemas, routes::websocket,
        routes::healthz, routes::readyz, routes::metrics, routes::openapi_document,
    ),
    modifiers(&BearerAuth),
    tags((name = "commands", description = "Write side: each command appends events and answers their position"),
         (name = "directory", description = "Users and postings (scope chat:admin)"),
         (name = "queries", description = "Read side: served from the read models; min_position gives read-your-writes"),
         (name = "replay", description = "The event log for analytics consumers (scope events:read)"),
         (name = "realtime", description = "WebSocket push of the events of the caller's conversations"),
         (name = "operations"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}
