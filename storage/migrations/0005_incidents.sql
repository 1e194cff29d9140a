-- Incidents: one story told by several channels (a claim, the answers to it, the
-- denial, more evidence), grouped as posts are archived, in the same transaction.

CREATE TABLE incidents (
    id            INTEGER PRIMARY KEY,
    title         TEXT NOT NULL,               -- place + date of the first post
    place         TEXT,
    first_post_id INTEGER NOT NULL REFERENCES posts (id),
    started_at    TEXT NOT NULL,               -- date of its earliest post (ISO UTC)
    last_at       TEXT NOT NULL,               -- date of its latest post
    posts         INTEGER NOT NULL DEFAULT 0,
    channels      INTEGER NOT NULL DEFAULT 0,
    merged_into   INTEGER REFERENCES incidents (id),  -- merged by an analyst: no posts left
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX incidents_last ON incidents (last_at) WHERE merged_into IS NULL;

-- Which incident each grouped post is in and why (ties with scores, JSON). A row with
-- incident_id NULL is a post an analyst removed: grouping leaves it alone for good.
-- No analyst's id here: `chanwatch browse` shows this table (and `incidents`).
CREATE TABLE incident_posts (
    post_id     INTEGER PRIMARY KEY REFERENCES posts (id),
    incident_id INTEGER REFERENCES incidents (id),
    date        TEXT NOT NULL,                 -- the post's date, for the time window
    features    TEXT NOT NULL,                 -- JSON: what grouping compares posts by
    score       REAL NOT NULL,
    ties        TEXT NOT NULL,                 -- JSON list of {kind, score, detail, post_id}
    corrected   INTEGER NOT NULL DEFAULT 0,    -- 1: an analyst moved it (who: incident_corrections)
    joined_at   TEXT NOT NULL
);
CREATE INDEX incident_posts_incident ON incident_posts (incident_id, date);
CREATE INDEX incident_posts_date ON incident_posts (date) WHERE incident_id IS NOT NULL;

-- Analysts' corrections, in order (merge A into B, split, remove a post).
CREATE TABLE incident_corrections (
    id          INTEGER PRIMARY KEY,
    chat_id     INTEGER NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('merge', 'split', 'remove')),
    incident_id INTEGER NOT NULL,
    other_id    INTEGER,                       -- merge: the incident merged in; split: the new one
    post_id     INTEGER,
    created_at  TEXT NOT NULL
);

-- 1: every post of an incident alerts on its own; 0: later posts reply to the first alert.
ALTER TABLE subscribers ADD COLUMN incident_every_post INTEGER NOT NULL DEFAULT 0;
