//! The original system's queries (schema.md's "Key Queries"), as written,
//! for the benchmarks that compare the read side with them on the same tables.
//! (Each benchmark uses some of them.)
#![allow(dead_code)]

/// schema.md's "Get User's Conversations", as written.
pub const CONVERSATIONS_SQL: &str = "SELECT
  c.*,
  (
    SELECT JSON_ARRAYAGG(
      JSON_OBJECT(
        'userId', cp2.user_id,
        'role', cp2.role,
        'firstName', u2.first_name,
        'lastName', u2.last_name
      )
    )
    FROM CONVERSATION_PARTICIPANTS cp2
    JOIN app_users u2 ON cp2.user_id = u2.id
    WHERE cp2.conversation_id = c.id
  ) as participants,
  (
    SELECT COUNT(*)
    FROM MESSAGES m
    WHERE m.conversation_id = c.id
      AND m.created_at > COALESCE(cp.last_read_message_id, '1970-01-01')
      AND m.sender_id != ?
  ) as unread_count
FROM CONVERSATIONS c
JOIN CONVERSATION_PARTICIPANTS cp ON c.id = cp.conversation_id
WHERE cp.user_id = ?
  AND c.is_archived = false
ORDER BY c.last_message_at DESC
LIMIT ? OFFSET ?;";

/// schema.md's "Get Messages for Conversation", as written.
pub const MESSAGES_SQL: &str = "SELECT
  m.*,
  u.first_name as sender_first_name,
  u.last_name as sender_last_name,
  (
    SELECT JSON_ARRAYAGG(
      JSON_OBJECT('id', mr.id, 'emoji', mr.emoji, 'userId', mr.user_id)
    )
    FROM MESSAGE_REACTIONS mr
    WHERE mr.message_id = m.id
  ) as reactions
FROM MESSAGES m
JOIN app_users u ON m.sender_id = u.id
WHERE m.conversation_id = ?
  AND m.is_deleted = false
ORDER BY m.created_at DESC
LIMIT ? OFFSET ?;";

/// One conversation with its members, in the shape of the list query (schema.md
/// has no query of its own for it; this is the list's, for one id).
pub const ONE_CONVERSATION_SQL: &str = "SELECT
  c.*,
  (
    SELECT JSON_ARRAYAGG(
      JSON_OBJECT('userId', cp2.user_id, 'role', cp2.role, 'firstName', u2.first_name, 'lastName', u2.last_name)
    )
    FROM CONVERSATION_PARTICIPANTS cp2
    JOIN app_users u2 ON cp2.user_id = u2.id
    WHERE cp2.conversation_id = c.id
  ) as participants
FROM CONVERSATIONS c
JOIN CONVERSATION_PARTICIPANTS cp ON c.id = cp.conversation_id
WHERE c.id = ? AND cp.user_id = ?;";

/// schema.md's "Find Direct Conversation Between Users", as written.
pub const DIRECT_SQL: &str = "SELECT c.id
FROM CONVERSATIONS c
JOIN CONVERSATION_PARTICIPANTS cp1 ON c.id = cp1.conversation_id
JOIN CONVERSATION_PARTICIPANTS cp2 ON c.id = cp2.conversation_id
WHERE c.type = 'DIRECT'
  AND c.posting_id = ?
  AND cp1.user_id = ?
  AND cp2.user_id = ?;";
