-- Media download bookkeeping. Rows with downloaded_at NULL are the download queue; a
-- file that cannot be had (post gone, too large, repeated errors) is marked with why and
-- left out of the queue instead of being retried forever.
ALTER TABLE media ADD COLUMN download_tries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE media ADD COLUMN download_error TEXT;
CREATE INDEX media_download_queue ON media (post_id)
    WHERE downloaded_at IS NULL AND download_error IS NULL;
CREATE INDEX media_tg_id ON media (tg_id) WHERE tg_id IS NOT NULL;
CREATE INDEX media_local_path ON media (local_path) WHERE local_path IS NOT NULL;
