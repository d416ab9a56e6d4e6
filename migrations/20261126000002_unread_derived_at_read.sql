-- A sent message writes one membership row (the sender's) instead of all of
-- them: unread counts and the conversation list's order are now derived at
-- read time from the conversation's row (see ARCHITECTURE.md, "Unread counts").
--
--   unread = CONVERSATIONS.last_message_seq
--          - CONVERSATION_PARTICIPANTS.last_read_seq
--          - CONVERSATION_PARTICIPANTS.unread_exempt
--
-- where `unread_exempt` counts the messages after the member's read mark that
-- are not unread for them (their own, and deleted ones). Existing rows get
-- their values from the counters they replace, so no rebuild is needed.

ALTER TABLE CONVERSATIONS
    ADD COLUMN last_message_seq BIGINT NOT NULL DEFAULT 0;

UPDATE CONVERSATIONS c
    SET c.last_message_seq = COALESCE((SELECT MAX(m.seq) FROM MESSAGES m WHERE m.conversation_id = c.id), 0);

ALTER TABLE CONVERSATION_PARTICIPANTS
    ADD COLUMN unread_exempt BIGINT NOT NULL DEFAULT 0;

UPDATE CONVERSATION_PARTICIPANTS cp JOIN CONVERSATIONS c ON c.id = cp.conversation_id
    SET cp.unread_exempt = c.last_message_seq - CAST(cp.last_read_seq AS SIGNED) - cp.unread_count;

-- The list is now ordered by the conversation's activity: the membership
-- index finds the user's conversations, the join gives their order. The new
-- index comes first, in a statement of its own: the old one also serves the
-- user_id foreign key, and InnoDB drops it only once another index can.
ALTER TABLE CONVERSATION_PARTICIPANTS
    ADD KEY ix_participants_user_memberships (user_id, conversation_archived, conversation_id);

ALTER TABLE CONVERSATION_PARTICIPANTS
    DROP KEY ix_participants_user_list,
    DROP COLUMN unread_count,
    DROP COLUMN last_activity_at;
