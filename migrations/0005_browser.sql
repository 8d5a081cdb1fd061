-- 0005: what browser-facing S3 needs: per-bucket CORS rules and anonymous read
-- bindings, both set with the CLI or the admin API.
--
-- Append-only: once released, never edit this file. Times are Unix milliseconds.

-- CORS rules of one bucket: a JSON array in the shape of S3's CORSConfiguration
-- (AllowedOrigins, AllowedMethods, AllowedHeaders, ExposeHeaders, MaxAgeSeconds),
-- validated by the store on write.
CREATE TABLE bucket_cors (
    backend    TEXT NOT NULL,
    bucket     TEXT NOT NULL,
    rules      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (backend, bucket)
) STRICT;

-- Buckets served without a signature (when s3_proxy.anonymous_enabled is on).
CREATE TABLE anonymous_bindings (
    backend           TEXT NOT NULL,
    bucket            TEXT NOT NULL,
    mode              TEXT NOT NULL CHECK (mode IN ('None', 'ReadOnly')),
    -- NULL: s3_proxy.unauthenticated_per_ip_rps applies.
    per_source_ip_rps REAL CHECK (per_source_ip_rps IS NULL OR per_source_ip_rps >= 0),
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (backend, bucket)
) STRICT;

-- Bumped by every write to either table, so running proxies reload only on change.
INSERT INTO meta (key, value) VALUES ('browser_version', '0');
