"""Read-only queries behind the browser's charts (run by the Datasette plugin)."""

from __future__ import annotations

# Posts and claims per day and channel over the archive's last `days` days. The newest
# post is found through the time-ordered rowid, so this stays cheap on a large archive.
DAILY = """
WITH newest AS (SELECT date FROM posts ORDER BY id DESC LIMIT 1)
SELECT substr(p.date, 1, 10) AS day,
       coalesce(c.title, c.username, CAST(c.id AS TEXT)) AS channel,
       count(*) AS posts,
       sum(p.claim_label = 'claim') AS claims
FROM posts p JOIN channels c ON c.id = p.channel_id
WHERE p.date >= datetime((SELECT date FROM newest), '-' || :days || ' days')
GROUP BY day, p.channel_id ORDER BY day
"""

DAILY_WITHOUT_CLAIMS = DAILY.replace("sum(p.claim_label = 'claim')", "0")

# The most recently active incidents, and every post of them.
INCIDENTS = """
SELECT id, title, posts, channels, started_at, last_at FROM incidents
WHERE merged_into IS NULL AND posts > 0 ORDER BY last_at DESC, id DESC LIMIT :limit
"""

INCIDENT_POSTS = """
SELECT ip.incident_id, ip.date, coalesce(p.claim_label, 'none') AS label,
       coalesce(c.title, c.username, CAST(c.id AS TEXT)) AS channel
FROM incident_posts ip JOIN posts p ON p.id = ip.post_id JOIN channels c ON c.id = p.channel_id
WHERE ip.incident_id IN (SELECT id FROM incidents WHERE merged_into IS NULL AND posts > 0
                         ORDER BY last_at DESC, id DESC LIMIT :limit)
ORDER BY ip.date
"""
