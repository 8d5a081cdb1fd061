-- 0003: the audit log. One row per write, denial and error that reached the S3
-- listener, plus a sample of successful reads (`audit.sample_success_reads`).
--
-- Append-only: once released, never edit this file.
--
-- Rows are written in batches by the proxy's audit writer (its own connection) and
-- deleted by its retention pruning (`audit.retention`). No row ever holds a secret, a
-- signature, an Authorization header or a query string: only the names below.
--
-- Times are Unix MILLISECONDS (UTC), like 0002.

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY,
    -- When the request head arrived.
    time_ms     INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    -- The verified access key id; for a failed authentication, the claimed one when it
    -- names a known credential; otherwise NULL.
    access_key  TEXT,
    -- sqlite | kubernetes | anonymous | none (nothing verified).
    source      TEXT NOT NULL,
    -- The S3 operation name (`PutObject`, `Unknown`, ...).
    operation   TEXT NOT NULL,
    bucket      TEXT,
    object_key  TEXT,
    -- HTTP status sent to the client.
    status      INTEGER NOT NULL,
    -- Request body bytes forwarded upstream, response body bytes sent to the client.
    bytes_in    INTEGER NOT NULL DEFAULT 0,
    bytes_out   INTEGER NOT NULL DEFAULT 0,
    client_ip   TEXT NOT NULL,
    -- ok | denied | client_error | server_error.
    outcome     TEXT NOT NULL,
    -- From the request head to the end of the response body.
    duration_ms INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX audit_events_time ON audit_events (time_ms);
CREATE INDEX audit_events_access_key ON audit_events (access_key, time_ms);
CREATE INDEX audit_events_bucket ON audit_events (bucket, time_ms);
