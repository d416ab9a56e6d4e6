-- The append-only event log: the single source of truth of the system.
-- Positions are assigned by the appender under the row lock of `event_log_head`,
-- so they are strictly increasing in commit order (see ARCHITECTURE.md).
-- `data` and `metadata` are text, not JSON: the bytes we wrote are the bytes we
-- serve, and the column behaves the same on MySQL 8 and MariaDB 10.11.
CREATE TABLE event_log (
    position        BIGINT UNSIGNED NOT NULL,
    event_id        CHAR(36) CHARACTER SET ascii NOT NULL,
    stream_type     VARCHAR(32) CHARACTER SET ascii NOT NULL,
    stream_id       VARCHAR(64) CHARACTER SET ascii NOT NULL,
    stream_version  INT UNSIGNED NOT NULL,
    event_type      VARCHAR(64) CHARACTER SET ascii NOT NULL,
    schema_version  SMALLINT UNSIGNED NOT NULL,
    data            MEDIUMTEXT NOT NULL,
    metadata        TEXT NOT NULL,
    recorded_at     DATETIME(6) NOT NULL,
    PRIMARY KEY (position),
    UNIQUE KEY uq_event_log_event_id (event_id),
    UNIQUE KEY uq_event_log_stream (stream_type, stream_id, stream_version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row: the last assigned position. Every append transaction locks it first,
-- which serialises appenders across processes and makes positions commit-ordered.
CREATE TABLE event_log_head (
    id              TINYINT UNSIGNED NOT NULL,
    last_position   BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB;

INSERT INTO event_log_head (id, last_position) VALUES (1, 0);

-- Current version of every stream, for the optimistic concurrency check.
CREATE TABLE event_streams (
    stream_type     VARCHAR(32) CHARACTER SET ascii NOT NULL,
    stream_id       VARCHAR(64) CHARACTER SET ascii NOT NULL,
    version         INT UNSIGNED NOT NULL,
    PRIMARY KEY (stream_type, stream_id)
) ENGINE = InnoDB;

-- Write-side lookups kept in the append transaction: which conversation a
-- message belongs to, and the one DIRECT conversation of a pair of users and a posting.
CREATE TABLE stream_lookups (
    lookup_kind     VARCHAR(16) CHARACTER SET ascii NOT NULL,
    lookup_key      VARCHAR(128) CHARACTER SET ascii NOT NULL,
    stream_id       VARCHAR(64) CHARACTER SET ascii NOT NULL,
    PRIMARY KEY (lookup_kind, lookup_key)
) ENGINE = InnoDB;

-- How far the outbox publisher has published the event log on NATS JetStream.
CREATE TABLE publication_cursor (
    name            VARCHAR(64) CHARACTER SET ascii NOT NULL,
    last_position   BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB;

-- Idempotency keys, per user, kept at least 24 hours. A row with a NULL
-- response is a request in progress; the response is written in the same
-- transaction as the events the request appended.
CREATE TABLE idempotency_keys (
    user_id          INT NOT NULL,
    idempotency_key  VARCHAR(255) CHARACTER SET ascii NOT NULL,
    request_hash     CHAR(64) CHARACTER SET ascii NOT NULL,
    response_status  SMALLINT UNSIGNED NULL,
    response_body    TEXT NULL,
    locked_at        DATETIME(6) NOT NULL,
    created_at       DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id, idempotency_key),
    KEY ix_idempotency_keys_created_at (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
