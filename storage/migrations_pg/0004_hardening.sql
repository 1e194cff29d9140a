-- As storage/migrations/0004_hardening.sql: strangers' wrong invitation codes and
-- rate-limited notes, and the view an analyst reads first.
ALTER TABLE strangers ADD COLUMN bad_codes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE strangers ADD COLUMN noted_at TEXT;

CREATE VIEW archive_posts AS
SELECT
    p.date,
    coalesce('@' || c.username, c.title, p.channel_id::text) AS channel,
    p.text,
    CASE WHEN c.username IS NOT NULL THEN 'https://t.me/' || c.username || '/' || p.msg_id
         ELSE 'https://t.me/c/' || p.channel_id || '/' || p.msg_id END AS link,
    CASE WHEN p.claim_label IN ('claim', 'denial', 'exchange')
         THEN p.claim_label || ' ' || to_char(p.claim_score, 'FM0.00') END AS claim,
    (SELECT string_agg(m.kind, ', ' ORDER BY m.idx) FROM media m WHERE m.post_id = p.id)
        AS media,
    p.deleted_at,
    p.id
FROM posts p LEFT JOIN channels c ON c.id = p.channel_id;
