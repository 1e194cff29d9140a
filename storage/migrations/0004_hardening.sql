-- Strangers: wrong invitation codes are counted, and replies and log lines about a
-- stranger are rate-limited (noted_at: the last time one was sent or logged).
ALTER TABLE strangers ADD COLUMN bad_codes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE strangers ADD COLUMN noted_at TEXT;

-- What an analyst reads first when browsing the archive: one row per post, newest
-- first by id (which follows post time); every other field is on the post's row.
CREATE VIEW archive_posts AS
SELECT
    p.date,
    coalesce('@' || c.username, c.title, p.channel_id) AS channel,
    p.text,
    CASE WHEN c.username IS NOT NULL THEN 'https://t.me/' || c.username || '/' || p.msg_id
         ELSE 'https://t.me/c/' || p.channel_id || '/' || p.msg_id END AS link,
    CASE WHEN p.claim_label IN ('claim', 'denial', 'exchange')
         THEN p.claim_label || ' ' || printf('%.2f', p.claim_score) END AS claim,
    (SELECT group_concat(m.kind, ', ') FROM media m WHERE m.post_id = p.id) AS media,
    p.deleted_at,
    p.id
FROM posts p LEFT JOIN channels c ON c.id = p.channel_id;
