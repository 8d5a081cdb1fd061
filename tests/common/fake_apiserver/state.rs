//! The fake API server's data: stored Secrets (sorted by name so pages are range
//! scans), a bounded event history keyed by resourceVersion, and the open watches.
//! Everything is mutated under one mutex so a watch's replay and its live events
//! can neither overlap nor leave a gap.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use k8s_openapi::api::core::v1::Secret;
use tokio::sync::mpsc::UnboundedSender;

use super::selector::Selector;

/// How many events the history keeps before the oldest are compacted away
/// (watches from before the compaction get the in-stream 410).
pub const HISTORY_LIMIT: usize = 250_000;

/// What a watch body receives.
#[derive(Debug)]
pub enum Msg {
    /// One newline-terminated JSON event.
    Line(Bytes),
    /// End the stream abruptly (the client sees a broken chunked body).
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

/// One change as stored in the history: the object after it (for deletes, the last
/// state) and the object before it, so each watcher can translate the change through
/// its own selector.
pub struct HistEvent {
    pub rv: u64,
    pub change: Change,
    pub obj: Arc<Secret>,
    pub prev: Option<Arc<Secret>>,
}

pub struct Sub {
    pub id: u64,
    pub selector: Selector,
    pub bookmarks: bool,
    pub tx: UnboundedSender<Msg>,
}

#[derive(Default)]
pub struct State {
    pub namespace: String,
    pub rv: u64,
    /// Watches from a resourceVersion below this are "too old" (410 Expired).
    pub compacted: u64,
    pub uid_seq: u64,
    pub sub_seq: u64,
    pub secrets: BTreeMap<String, Arc<Secret>>,
    pub history: VecDeque<HistEvent>,
    pub subs: Vec<Sub>,
    pub down: bool,
    pub list_count: usize,
    pub watch_count: usize,
    pub requests: Vec<String>,
}

impl State {
    /// Stores `secret` as the next version; returns whether it was new.
    pub fn upsert(&mut self, mut secret: Secret) -> bool {
        let name = secret.metadata.name.clone().unwrap_or_default();
        assert!(
            !name.is_empty(),
            "fake apiserver: a Secret needs metadata.name"
        );
        let prev = self.secrets.get(&name).cloned();
        self.rv += 1;
        let meta = &mut secret.metadata;
        meta.namespace = Some(self.namespace.clone());
        meta.resource_version = Some(self.rv.to_string());
        if meta.uid.is_none() {
            meta.uid = match prev.as_ref().and_then(|p| p.metadata.uid.clone()) {
                Some(uid) => Some(uid),
                None => {
                    self.uid_seq += 1;
                    Some(format!("00000000-0000-4000-8000-{:012x}", self.uid_seq))
                }
            };
        }
        let obj = Arc::new(secret);
        self.secrets.insert(name, obj.clone());
        let change = if prev.is_some() {
            Change::Modified
        } else {
            Change::Added
        };
        self.record(HistEvent {
            rv: self.rv,
            change,
            obj,
            prev,
        });
        change == Change::Added
    }

    /// Removes `name`; the DELETED event carries its last state at the new version.
    pub fn delete(&mut self, name: &str) -> bool {
        let Some(prev) = self.secrets.remove(name) else {
            return false;
        };
        self.rv += 1;
        let obj = Arc::new(with_rv(&prev, self.rv));
        self.record(HistEvent {
            rv: self.rv,
            change: Change::Deleted,
            obj,
            prev: Some(prev),
        });
        true
    }

    fn record(&mut self, ev: HistEvent) {
        self.subs.retain(|s| {
            translate(&ev, &s.selector).is_none_or(|l| s.tx.send(Msg::Line(l)).is_ok())
        });
        self.history.push_back(ev);
        while self.history.len() > HISTORY_LIMIT {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
    }

    /// Sends a BOOKMARK at the current version to every watch that asked for them.
    pub fn bookmark_all(&mut self) {
        let line = bookmark_line(self.rv);
        self.subs
            .retain(|s| !s.bookmarks || s.tx.send(Msg::Line(line.clone())).is_ok());
    }

    /// Ends watch `id` cleanly, after a BOOKMARK if it asked for them.
    pub fn finish_watch(&mut self, id: u64) {
        let rv = self.rv;
        if let Some(pos) = self.subs.iter().position(|s| s.id == id) {
            let sub = self.subs.remove(pos);
            if sub.bookmarks {
                let _ = sub.tx.send(Msg::Line(bookmark_line(rv)));
            }
        }
    }

    /// Aborts every open watch (no bookmark, broken body).
    pub fn abort_all(&mut self) {
        for sub in self.subs.drain(..) {
            let _ = sub.tx.send(Msg::Abort);
        }
    }

    /// Sends the in-stream 410 to every open watch, ends them, and marks every
    /// version before now as too old.
    pub fn expire_all(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
        for sub in self.subs.drain(..) {
            let _ = sub
                .tx
                .send(Msg::Line(expired_line("the watch was expired")));
        }
    }

    /// Opens a watch from `from` (None or 0: synthetic ADDED for the current state).
    /// Returns None after queueing the 410 when `from` is too old.
    pub fn open_watch(&mut self, from: Option<u64>, sub: Sub) -> Option<u64> {
        match from {
            Some(rv) if rv != 0 && rv < self.compacted => {
                let msg = format!("too old resource version: {rv} ({})", self.compacted);
                let _ = sub.tx.send(Msg::Line(expired_line(&msg)));
                return None;
            }
            Some(rv) if rv != 0 => {
                for ev in self.history.iter().filter(|e| e.rv > rv) {
                    if let Some(line) = translate(ev, &sub.selector) {
                        let _ = sub.tx.send(Msg::Line(line));
                    }
                }
            }
            _ => {
                for obj in self.secrets.values() {
                    if sub.selector.matches(obj.metadata.labels.as_ref()) {
                        let _ = sub.tx.send(Msg::Line(event_line("ADDED", obj)));
                    }
                }
            }
        }
        self.sub_seq += 1;
        let id = self.sub_seq;
        self.subs.push(Sub { id, ..sub });
        Some(id)
    }
}

/// What a watcher with `sel` sees for `ev`: selector transitions become ADDED or
/// DELETED, as the apiserver's watch cache does.
fn translate(ev: &HistEvent, sel: &Selector) -> Option<Bytes> {
    let now = sel.matches(ev.obj.metadata.labels.as_ref());
    let before = ev
        .prev
        .as_ref()
        .is_some_and(|p| sel.matches(p.metadata.labels.as_ref()));
    match (ev.change, before, now) {
        (Change::Added, _, true) => Some(event_line("ADDED", &ev.obj)),
        (Change::Modified, true, true) => Some(event_line("MODIFIED", &ev.obj)),
        (Change::Modified, false, true) => Some(event_line("ADDED", &ev.obj)),
        (Change::Modified, true, false) => {
            let prev = ev.prev.as_deref().map(|p| with_rv(p, ev.rv));
            prev.map(|p| event_line("DELETED", &p))
        }
        (Change::Deleted, true, _) => Some(event_line("DELETED", &ev.obj)),
        _ => None,
    }
}

fn with_rv(s: &Secret, rv: u64) -> Secret {
    let mut s = s.clone();
    s.metadata.resource_version = Some(rv.to_string());
    s
}

fn line(value: serde_json::Value) -> Bytes {
    let mut v = serde_json::to_vec(&value).expect("serialize watch event");
    v.push(b'\n');
    Bytes::from(v)
}

pub fn event_line(kind: &str, obj: &Secret) -> Bytes {
    line(serde_json::json!({ "type": kind, "object": obj }))
}

pub fn bookmark_line(rv: u64) -> Bytes {
    line(serde_json::json!({
        "type": "BOOKMARK",
        "object": { "kind": "Secret", "apiVersion": "v1",
                    "metadata": { "resourceVersion": rv.to_string() } }
    }))
}

fn expired_line(message: &str) -> Bytes {
    line(serde_json::json!({
        "type": "ERROR",
        "object": status_json(410, "Expired", message)
    }))
}

/// A `meta/v1 Status` failure object, as the apiserver returns for errors.
pub fn status_json(code: u16, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    })
}
