-- Alerts: detection results kept with each post, analysts and their rules, invites,
-- channels managed from the bot, and the outbox of alerts to deliver.

-- What detection said about the current text of a post (re-run by `chanwatch redetect`).
ALTER TABLE posts ADD COLUMN lang TEXT;
ALTER TABLE posts ADD COLUMN claim_label TEXT;             -- claim | denial | exchange | none
ALTER TABLE posts ADD COLUMN claim_score REAL;
ALTER TABLE posts ADD COLUMN claim_count INTEGER;          -- captives named nearest the cue
ALTER TABLE posts ADD COLUMN claim_unverified INTEGER;     -- hedged ("allegedly", "якобы")
ALTER TABLE posts ADD COLUMN claim_evidence TEXT;          -- JSON list of matched spans
ALTER TABLE posts ADD COLUMN detected_at TEXT;
CREATE INDEX posts_claim ON posts (claim_label) WHERE claim_label IS NOT NULL
    AND claim_label != 'none';

-- NULL: watched as configured (CHANWATCH_CHANNELS); 'added' / 'removed' by an admin
-- from the bot, which wins over the configuration at every start.
ALTER TABLE channels ADD COLUMN watch TEXT CHECK (watch IN ('added', 'removed'));

-- Who may use the bot and receive alerts: analysts (private chats), admins, groups.
CREATE TABLE subscribers (
    chat_id         INTEGER PRIMARY KEY,       -- user id, or the (negative) id of a group chat
    access_hash     INTEGER,                   -- the bot's access hash for the user
    kind            TEXT NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'group')),
    role            TEXT NOT NULL DEFAULT 'analyst' CHECK (role IN ('admin', 'analyst', 'group')),
    name            TEXT,
    active          INTEGER NOT NULL DEFAULT 1,
    inactive_reason TEXT,                      -- revoked | blocked the bot | ...
    tz              TEXT NOT NULL DEFAULT 'UTC',
    claims          INTEGER NOT NULL DEFAULT 1,
    claims_min      REAL NOT NULL DEFAULT 0.5,
    muted_until     TEXT,                      -- ISO UTC
    quiet_from      TEXT,                      -- 'HH:MM' in tz
    quiet_to        TEXT,
    digest_at       TEXT,                      -- 'HH:MM' in tz; NULL = alerts as they happen
    last_digest_at  TEXT,
    invited_by      INTEGER,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- One-time invitation codes made by admins (/invite).
CREATE TABLE invites (
    code        TEXT PRIMARY KEY,
    created_by  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_by     INTEGER,
    used_at     TEXT
);

-- People who wrote to the bot without being invited: refused once, remembered.
CREATE TABLE strangers (
    user_id     INTEGER PRIMARY KEY,
    name        TEXT,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    messages    INTEGER NOT NULL DEFAULT 1
);

-- Keyword rules as the analyst typed them; compiled into one matcher in memory.
CREATE TABLE rules (
    id          INTEGER PRIMARY KEY,
    chat_id     INTEGER NOT NULL REFERENCES subscribers (chat_id),
    text        TEXT NOT NULL,                 -- the rule without its channel restriction
    channel_id  INTEGER REFERENCES channels (id),
    created_at  TEXT NOT NULL
);
CREATE INDEX rules_chat ON rules (chat_id);

-- The outbox: one row per (chat, post, reason), planned in the transaction that
-- archived the post; the notifier delivers it at least once. reason is 'alert'
-- (however many rules fired), 'edited:<revision>' or 'deleted'. story is the origin
-- 'channel/msg' of the post, shared by every forwarded copy, so a post forwarded into
-- several watched channels alerts a chat once.
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    chat_id      INTEGER NOT NULL REFERENCES subscribers (chat_id),
    post_id      INTEGER NOT NULL REFERENCES posts (id),
    reason       TEXT NOT NULL,
    story        TEXT NOT NULL,
    payload      TEXT NOT NULL,                -- JSON: why it fired, delayed, edited
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                   ('pending', 'sent', 'digest', 'digested', 'muted', 'skipped', 'failed')),
    batch        INTEGER,                      -- id of the first row of the message it went in
    attempts     INTEGER NOT NULL DEFAULT 0,
    not_before   TEXT,                         -- ISO UTC: not sent earlier (albums settle, retries)
    created_at   TEXT NOT NULL,
    delivered_at TEXT,
    tg_msg_id    INTEGER,                      -- the bot's message in the chat (follow-ups reply)
    error        TEXT,
    UNIQUE (chat_id, post_id, reason)
);
CREATE UNIQUE INDEX alerts_story ON alerts (chat_id, story) WHERE reason = 'alert';
CREATE INDEX alerts_pending ON alerts (id) WHERE status = 'pending';
CREATE INDEX alerts_post ON alerts (post_id);
CREATE INDEX alerts_digest ON alerts (chat_id) WHERE status = 'digest';
