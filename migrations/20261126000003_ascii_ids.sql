-- Ids of the read models (UUIDs, always ASCII) are stored as ASCII with its
-- simple collation instead of utf8mb4_unicode_ci. Every key lookup, join and
-- foreign-key check compares ids; under the Unicode collation each compare
-- walks the UCA weight tables (a CPU profile of the write path at full load
-- put about a fifth of MariaDB's time there), under ASCII it is a byte-wise
-- table lookup. Values, lengths and columns are unchanged, and ids are always
-- written lowercase by the projectors, so no comparison changes its answer.
--
-- A foreign key needs both its columns in the same character set, so the
-- keys between these columns are dropped, the columns converted, and the
-- keys added again under their own names (the same on MySQL 8 and MariaDB).
-- The event log's tables are ASCII already.

ALTER TABLE MESSAGE_REACTIONS DROP FOREIGN KEY fk_reactions_message;
ALTER TABLE MESSAGES DROP FOREIGN KEY fk_messages_conversation, DROP FOREIGN KEY fk_messages_reply_to;
ALTER TABLE CONVERSATION_PARTICIPANTS DROP FOREIGN KEY fk_participants_conversation;
ALTER TABLE CONVERSATIONS DROP FOREIGN KEY fk_conversations_posting;

ALTER TABLE POSTINGS
    MODIFY id CHAR(36) CHARACTER SET ascii NOT NULL;

ALTER TABLE CONVERSATIONS
    MODIFY id CHAR(36) CHARACTER SET ascii NOT NULL DEFAULT (UUID()),
    MODIFY posting_id CHAR(36) CHARACTER SET ascii NULL;

ALTER TABLE CONVERSATION_PARTICIPANTS
    MODIFY id CHAR(36) CHARACTER SET ascii NOT NULL DEFAULT (UUID()),
    MODIFY conversation_id CHAR(36) CHARACTER SET ascii NOT NULL,
    MODIFY last_read_message_id CHAR(36) CHARACTER SET ascii NULL;

ALTER TABLE MESSAGES
    MODIFY id CHAR(36) CHARACTER SET ascii NOT NULL DEFAULT (UUID()),
    MODIFY conversation_id CHAR(36) CHARACTER SET ascii NOT NULL,
    MODIFY reply_to_id CHAR(36) CHARACTER SET ascii NULL;

ALTER TABLE MESSAGE_REACTIONS
    MODIFY id CHAR(36) CHARACTER SET ascii NOT NULL DEFAULT (UUID()),
    MODIFY message_id CHAR(36) CHARACTER SET ascii NOT NULL;

ALTER TABLE CONVERSATIONS
    ADD CONSTRAINT fk_conversations_posting FOREIGN KEY (posting_id) REFERENCES POSTINGS (id);
ALTER TABLE CONVERSATION_PARTICIPANTS
    ADD CONSTRAINT fk_participants_conversation FOREIGN KEY (conversation_id) REFERENCES CONVERSATIONS (id) ON DELETE CASCADE;
ALTER TABLE MESSAGES
    ADD CONSTRAINT fk_messages_conversation FOREIGN KEY (conversation_id) REFERENCES CONVERSATIONS (id) ON DELETE CASCADE,
    ADD CONSTRAINT fk_messages_reply_to FOREIGN KEY (reply_to_id) REFERENCES MESSAGES (id);
ALTER TABLE MESSAGE_REACTIONS
    ADD CONSTRAINT fk_reactions_message FOREIGN KEY (message_id) REFERENCES MESSAGES (id) ON DELETE CASCADE;
