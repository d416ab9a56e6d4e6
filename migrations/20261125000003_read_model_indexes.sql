-- Read side: the columns and indexes the query paths need (see ARCHITECTURE.md,
-- "Tables of schema.md" and "Indexes"), and the projectors' checkpoints.

-- Total order of messages within a conversation (MessageSent.seq), even for
-- messages sent in the same millisecond; paging and unread counts use it.
ALTER TABLE MESSAGES
    ADD COLUMN seq BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER conversation_id,
    ADD UNIQUE KEY uq_messages_conversation_seq (conversation_id, seq),
    ADD KEY ix_messages_conversation_visible (conversation_id, is_deleted, seq);

-- The caller's unread count, maintained by the projector (reading it is O(1)),
-- the sequence number of their last read message, and the conversation's
-- archive flag and last activity copied onto each membership so that a
-- user's conversation list is one index range scan in display order.
ALTER TABLE CONVERSATION_PARTICIPANTS
    ADD COLUMN last_read_seq BIGINT UNSIGNED NOT NULL DEFAULT 0,
    ADD COLUMN unread_count INT NOT NULL DEFAULT 0,
    ADD COLUMN conversation_archived BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN last_activity_at DATETIME(3) NULL,
    ADD KEY ix_participants_user_list (user_id, conversation_archived, last_activity_at, conversation_id);

-- Reactions of a page of messages, in a stable order.
ALTER TABLE MESSAGE_REACTIONS
    ADD KEY ix_reactions_message_created (message_id, created_at, id);

-- DIRECT lookup by posting.
ALTER TABLE CONVERSATIONS
    ADD KEY ix_conversations_type_posting (type, posting_id);

-- Where each projector is in the event log; written in the same transaction
-- as the read-model changes of the batch.
CREATE TABLE projection_checkpoints (
    name        VARCHAR(64) CHARACTER SET ascii NOT NULL,
    position    BIGINT UNSIGNED NOT NULL,
    updated_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB;
