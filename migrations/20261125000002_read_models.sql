-- Read models: the tables of schema.md, materialised from the event log by the
-- projectors. Columns, keys and foreign keys as documented; timestamps carry
-- milliseconds (DATETIME(3)) so the API's RFC 3339 times keep them.
CREATE TABLE app_users (
    id          INT NOT NULL,
    first_name  VARCHAR(100) NOT NULL,
    last_name   VARCHAR(100) NOT NULL,
    email       VARCHAR(255) NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE POSTINGS (
    id      CHAR(36) NOT NULL,
    title   VARCHAR(200) NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE CONVERSATIONS (
    id               CHAR(36) NOT NULL DEFAULT (UUID()),
    type             ENUM('DIRECT', 'GROUP') NOT NULL,
    name             VARCHAR(200) NULL,
    posting_id       CHAR(36) NULL,
    created_by       INT NOT NULL,
    is_archived      BOOLEAN DEFAULT FALSE,
    last_message_at  DATETIME(3) NULL,
    created_at       DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3),
    updated_at       DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    CONSTRAINT fk_conversations_posting FOREIGN KEY (posting_id) REFERENCES POSTINGS (id),
    CONSTRAINT fk_conversations_creator FOREIGN KEY (created_by) REFERENCES app_users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE CONVERSATION_PARTICIPANTS (
    id                     CHAR(36) NOT NULL DEFAULT (UUID()),
    conversation_id        CHAR(36) NOT NULL,
    user_id                INT NOT NULL,
    role                   ENUM('OWNER', 'ADMIN', 'MEMBER') DEFAULT 'MEMBER',
    joined_at              DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3),
    last_read_message_id   CHAR(36) NULL,
    is_muted               BOOLEAN DEFAULT FALSE,
    notifications_enabled  BOOLEAN DEFAULT TRUE,
    PRIMARY KEY (id),
    UNIQUE KEY uq_participants_conversation_user (conversation_id, user_id),
    CONSTRAINT fk_participants_conversation FOREIGN KEY (conversation_id) REFERENCES CONVERSATIONS (id) ON DELETE CASCADE,
    CONSTRAINT fk_participants_user FOREIGN KEY (user_id) REFERENCES app_users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE MESSAGES (
    id               CHAR(36) NOT NULL DEFAULT (UUID()),
    conversation_id  CHAR(36) NOT NULL,
    sender_id        INT NOT NULL,
    content          TEXT NULL,
    message_type     ENUM('TEXT', 'IMAGE', 'FILE', 'SYSTEM') DEFAULT 'TEXT',
    media_url        VARCHAR(500) NULL,
    media_metadata   JSON NULL,
    reply_to_id      CHAR(36) NULL,
    is_edited        BOOLEAN DEFAULT FALSE,
    is_deleted       BOOLEAN DEFAULT FALSE,
    edited_at        DATETIME(3) NULL,
    deleted_at       DATETIME(3) NULL,
    created_at       DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    CONSTRAINT fk_messages_conversation FOREIGN KEY (conversation_id) REFERENCES CONVERSATIONS (id) ON DELETE CASCADE,
    CONSTRAINT fk_messages_sender FOREIGN KEY (sender_id) REFERENCES app_users (id),
    CONSTRAINT fk_messages_reply_to FOREIGN KEY (reply_to_id) REFERENCES MESSAGES (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE MESSAGE_REACTIONS (
    id          CHAR(36) NOT NULL DEFAULT (UUID()),
    message_id  CHAR(36) NOT NULL,
    user_id     INT NOT NULL,
    emoji       VARCHAR(50) COLLATE utf8mb4_bin NOT NULL,
    created_at  DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    UNIQUE KEY uq_reactions_message_user_emoji (message_id, user_id, emoji),
    CONSTRAINT fk_reactions_message FOREIGN KEY (message_id) REFERENCES MESSAGES (id) ON DELETE CASCADE,
    CONSTRAINT fk_reactions_user FOREIGN KEY (user_id) REFERENCES app_users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
