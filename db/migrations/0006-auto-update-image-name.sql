-- 0006: a rule without a fixed firmware takes the newest stored image whose
-- name matches image_name (a glob; NULL: any stored image).
ALTER TABLE auto_updates ADD COLUMN image_name TEXT;
