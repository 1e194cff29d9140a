-- As storage/migrations/0006_shares.sql: several watchers sharing one archive.
-- A watcher is alive while its row has not expired; it renews the row every few
-- seconds. The channels it holds are its own until then, and free once it expires
-- or leaves. Times are Unix seconds from the watchers' (NTP-synchronized) clocks.
CREATE TABLE watchers (
    name       TEXT PRIMARY KEY,
    live_limit INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    renewed_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);

-- channel: the configured reference (a lower-case username, or an id as text)
CREATE TABLE channel_leases (
    channel TEXT PRIMARY KEY,
    watcher TEXT NOT NULL,
    mode    TEXT NOT NULL CHECK (mode IN ('live', 'poll')),
    since   DOUBLE PRECISION NOT NULL
);
CREATE INDEX channel_leases_watcher ON channel_leases (watcher);

-- Telegram gives every account its own access hash for a channel; joined: whether
-- the account is a member (so one killed while joined leaves what it no longer holds).
CREATE TABLE channel_access (
    watcher     TEXT NOT NULL,
    channel_id  BIGINT NOT NULL,
    access_hash BIGINT NOT NULL,
    joined      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (watcher, channel_id)
);
