-- The archive: channels, posts (time-ordered rowid), revisions, media, metrics, FTS.

CREATE TABLE channels (
    id           INTEGER PRIMARY KEY,            -- Telegram channel id (positive, no -100 prefix)
    access_hash  INTEGER,
    username     TEXT COLLATE NOCASE,
    title        TEXT,
    mode         TEXT NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'poll')),
    last_msg_id  INTEGER NOT NULL DEFAULT 0,     -- highest message id archived
    active       INTEGER NOT NULL DEFAULT 1,
    added_at     TEXT NOT NULL,
    resolved_at  TEXT,
    last_error   TEXT
);
CREATE UNIQUE INDEX channels_username ON channels (username) WHERE username IS NOT NULL;

-- A configured reference (username or id) that could not be resolved, so it is
-- reported once and not retried on every start.
CREATE TABLE unresolved_channels (
    ref        TEXT PRIMARY KEY,
    error      TEXT NOT NULL,
    checked_at TEXT NOT NULL
);

-- id follows post time (see storage/archive.py: post_key), so newest-first over
-- any set of FTS hits is ORDER BY rowid DESC, even for posts archived late.
CREATE TABLE posts (
    id           INTEGER PRIMARY KEY,
    channel_id   INTEGER NOT NULL REFERENCES channels (id),
    msg_id       INTEGER NOT NULL,
    date         TEXT NOT NULL,                  -- ISO 8601 UTC
    edit_date    TEXT,
    text         TEXT NOT NULL DEFAULT '',
    lemmas       TEXT NOT NULL DEFAULT '',       -- normal forms of the words, for FTS
    entities     TEXT,                           -- JSON list
    grouped_id   INTEGER,                        -- album
    fwd_from     TEXT,                           -- JSON: origin of a forward
    fwd_key      TEXT,                           -- 'channel_id/msg_id' of the origin post
    reply_to     INTEGER,
    post_author  TEXT,
    views        INTEGER,
    forwards     INTEGER,
    replies      INTEGER,
    reactions    TEXT,                           -- JSON {emoji: count}
    raw          TEXT NOT NULL,                  -- JSON of the full record as received
    raw_sha256   TEXT NOT NULL,
    captured_at  TEXT NOT NULL,                  -- first time the archive saw it
    updated_at   TEXT NOT NULL,
    deleted_at   TEXT,                           -- a deletion only marks the post
    UNIQUE (channel_id, msg_id)
);
CREATE INDEX posts_album ON posts (channel_id, grouped_id) WHERE grouped_id IS NOT NULL;
CREATE INDEX posts_fwd_key ON posts (fwd_key) WHERE fwd_key IS NOT NULL;

-- Every earlier text of an edited post.
CREATE TABLE post_revisions (
    id          INTEGER PRIMARY KEY,
    post_id     INTEGER NOT NULL REFERENCES posts (id),
    text        TEXT NOT NULL,
    entities    TEXT,
    edit_date   TEXT,
    raw_sha256  TEXT NOT NULL,
    replaced_at TEXT NOT NULL
);
CREATE INDEX post_revisions_post ON post_revisions (post_id);

CREATE TABLE media (
    post_id       INTEGER NOT NULL REFERENCES posts (id),
    idx           INTEGER NOT NULL,
    kind          TEXT NOT NULL,                 -- photo, video, document, audio, voice, sticker, ...
    mime          TEXT,
    size          INTEGER,
    width         INTEGER,
    height        INTEGER,
    duration      REAL,
    file_name     TEXT,
    tg_id         INTEGER,
    access_hash   INTEGER,
    dc_id         INTEGER,
    sha256        TEXT,
    local_path    TEXT,
    downloaded_at TEXT,
    PRIMARY KEY (post_id, idx)
);

CREATE TABLE metrics (
    post_id   INTEGER NOT NULL REFERENCES posts (id),
    taken_at  TEXT NOT NULL,
    views     INTEGER,
    forwards  INTEGER,
    replies   INTEGER,
    reactions TEXT,
    PRIMARY KEY (post_id, taken_at)
);

CREATE VIRTUAL TABLE posts_fts USING fts5 (
    text, lemmas,
    content = 'posts', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0',
    prefix = '2 3 4'
);

CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN
    INSERT INTO posts_fts (rowid, text, lemmas) VALUES (new.id, new.text, new.lemmas);
END;
CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN
    INSERT INTO posts_fts (posts_fts, rowid, text, lemmas)
    VALUES ('delete', old.id, old.text, old.lemmas);
END;
CREATE TRIGGER posts_fts_update AFTER UPDATE OF text, lemmas ON posts
WHEN old.text IS NOT new.text OR old.lemmas IS NOT new.lemmas BEGIN
    INSERT INTO posts_fts (posts_fts, rowid, text, lemmas)
    VALUES ('delete', old.id, old.text, old.lemmas);
    INSERT INTO posts_fts (rowid, text, lemmas) VALUES (new.id, new.text, new.lemmas);
END;
