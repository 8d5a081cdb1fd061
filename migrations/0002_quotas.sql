-- 0002: per-bucket quota limits set with `stowage quota set`, and the persisted usage
-- the proxy enforces them against.
--
-- Append-only: once released, never edit this file.
--
-- Times in these tables are Unix MILLISECONDS (UTC), unlike 0001's seconds: a recount
-- request and the scan answering it often fall within the same second, and
-- `stowage quota recount` must tell a scan that started after its request from one
-- that started before it.
--
-- Byte and object counts are INTEGER (signed 64-bit); the store refuses values above
-- i64::MAX on write.

-- Limits from the CLI. Kubernetes limits are not stored here: they live in the Secrets
-- and shadow the whole row for the same (backend, bucket).
CREATE TABLE bucket_quotas (
    backend     TEXT NOT NULL,
    bucket      TEXT NOT NULL,
    -- NULL: no cap of that kind. At least one is set (checked by the store).
    hard_bytes  INTEGER CHECK (hard_bytes IS NULL OR hard_bytes > 0),
    soft_bytes  INTEGER CHECK (soft_bytes IS NULL OR soft_bytes > 0),
    max_objects INTEGER CHECK (max_objects IS NULL OR max_objects > 0),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (backend, bucket)
) STRICT;

-- Usage as last known by a proxy: written every few seconds and at shutdown, so a
-- restart resumes from it instead of from zero (or from "unknown", which refuses
-- writes to capped buckets until the first scan).
CREATE TABLE bucket_usage (
    backend              TEXT NOT NULL,
    bucket               TEXT NOT NULL,
    bytes                INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    objects              INTEGER NOT NULL DEFAULT 0 CHECK (objects >= 0),
    -- When the scan this usage derives from began; NULL: never scanned (a row that
    -- only carries a recount request), and then bytes/objects mean nothing.
    scanned_at           INTEGER,
    updated_at           INTEGER NOT NULL,
    -- Set by `stowage quota recount`; cleared by the scan that answers it.
    recount_requested_at INTEGER,
    PRIMARY KEY (backend, bucket)
) STRICT;
