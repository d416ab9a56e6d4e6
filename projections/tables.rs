//! Names of the read-model tables: the live ones, or a rebuild's shadow copies.

/// The six read-model tables a projector writes.
#[derive(Debug, Clone)]
pub struct Tables {
    pub users: String,
    pub postings: String,
    pub conversations: String,
    pub participants: String,
    pub messages: String,
    pub reactions: String,
}

/// The live table names, in dependency order (a table's foreign keys point only to earlier ones).
pub const LIVE: [&str; 6] = ["app_users", "POSTINGS", "CONVERSATIONS", "CONVERSATION_PARTICIPANTS", "MESSAGES", "MESSAGE_REACTIONS"];

impl Tables {
    /// The tables the API serves.
    pub fn live() -> Self {
        Self::with_suffix("")
    }

    /// The same names with `suffix` appended (a rebuild's shadow tables).
    pub fn with_suffix(suffix: &str) -> Self {
        let name = |i: usize| format!("{}{suffix}", LIVE[i]);
        Self { users: name(0), postings: name(1), conversations: name(2), participants: name(3), messages: name(4), reactions: name(5) }
    }
}
