//! The audit log behind `GET /api/v1/audit`: the admin surface's filter translated to
//! the store's, rows returned as JSON objects.

use super::{AuditFilter, AuditLog, Outcome};
use crate::admin::audit_seam::{AuditFilter as AdminFilter, AuditQuery};

impl AuditQuery for AuditLog {
    fn query(&self, f: &AdminFilter) -> Result<Vec<serde_json::Value>, String> {
        let filter = AuditFilter {
            since: f.since,
            until: f.until,
            access_key: f.access_key.clone(),
            bucket: f.bucket.clone(),
            outcome: f.outcome.as_deref().and_then(Outcome::parse),
            limit: Some(f.limit),
        };
        let rows = AuditLog::query(self, &filter).map_err(|e| e.to_string())?;
        rows.into_iter()
            .map(|r| serde_json::to_value(r).map_err(|e| e.to_string()))
            .collect()
    }
}
