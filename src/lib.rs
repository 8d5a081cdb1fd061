//! Stowage: a multi-tenant S3 SigV4 reverse proxy.
//!
//! ```text
//! tenant SDK ──SigV4 (virtual credential)──▶ stowage :8090 ──SigV4 (backend admin key)──▶ upstream S3
//!                                               │
//!            credentials: SQLite ∪ Kubernetes (Kubernetes wins on access-key collision)
//!            admin :8080: /admin/s3-proxy, /api/v1, /metrics, /healthz, /readyz
//! ```
//!
//! The request pipeline lives in one place, [`server::stack`]: route → authenticate →
//! authorize → limit → re-sign → forward → stream → account.

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod cors;
pub mod credentials;
pub mod error;
pub mod kubernetes;
pub mod metrics;
pub mod policy;
pub mod quickstart;
pub mod quota;
pub mod ratelimit;
pub mod secret;
pub mod server;
pub mod upstream;
