-- 0004: online root-key rotation (`stowage key rotate`).
--
-- Append-only: once released, never edit this file.
--
-- A rotation re-seals every secret under the new key in one transaction and keeps the
-- ciphertext it replaced here, so a proxy still running with the previous key can
-- open the rows the rotation touched (readers try `secret_sealed` first, then this).
-- The first process that opens the database with the new key sets every value back
-- to NULL: from then on the previous key opens nothing.
--
-- `meta` gains `root_key_id_prev` and `root_key_check_prev` for the same window.

ALTER TABLE credentials ADD COLUMN secret_sealed_prev BLOB;
