-- 0001: virtual credentials, their change feed, and store metadata.
--
-- Append-only: once released, never edit this file. Change the schema with a new
-- file (0002_….sql) listed after this one in src/credentials/sqlite.rs. The schema
-- version is `PRAGMA user_version` (= number of migrations applied).
--
-- Tables planned by later migrations, kept out of this one on purpose: bucket quotas
-- and usage, audit events, anonymous bucket bindings, per-bucket CORS rules. They key
-- on (backend, bucket) and do not reference `credentials`.
--
-- Times are Unix seconds (UTC).

-- Store-wide facts, e.g. the root-key check written at first start and the change-feed
-- prune watermark.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE credentials (
    access_key_id TEXT PRIMARY KEY NOT NULL,
    -- AES-256-GCM: version || nonce || ciphertext || tag; AAD binds it to access_key_id.
    secret_sealed BLOB NOT NULL,
    -- A `[[backends]] id` from the config; backends themselves are not stored here.
    backend       TEXT NOT NULL,
    -- JSON array of {"bucket", "access", "prefix"?}, validated by the store on write.
    scopes        TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    expires_at    INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX credentials_backend ON credentials (backend);

-- One row per write to `credentials`, filled by the triggers below, so every process
-- (the server, the CLI, a hand-run sqlite3) feeds running proxies the same way.
-- A poller reads `seq > last_seen` and re-reads only those rows. AUTOINCREMENT keeps
-- seq from ever being reused after pruning.
CREATE TABLE credential_changes (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    access_key_id TEXT NOT NULL,
    changed_at    INTEGER NOT NULL
);

CREATE TRIGGER credentials_after_insert AFTER INSERT ON credentials
BEGIN
    INSERT INTO credential_changes (access_key_id, changed_at)
    VALUES (NEW.access_key_id, unixepoch());
END;

CREATE TRIGGER credentials_after_update AFTER UPDATE ON credentials
BEGIN
    -- A renamed key: the old id must disappear from caches too.
    INSERT INTO credential_changes (access_key_id, changed_at)
    SELECT OLD.access_key_id, unixepoch() WHERE OLD.access_key_id <> NEW.access_key_id;
    INSERT INTO credential_changes (access_key_id, changed_at)
    VALUES (NEW.access_key_id, unixepoch());
END;

CREATE TRIGGER credentials_after_delete AFTER DELETE ON credentials
BEGIN
    INSERT INTO credential_changes (access_key_id, changed_at)
    VALUES (OLD.access_key_id, unixepoch());
END;
