//! The watched object: a Secret as the apiserver sends it, deserialized into our own
//! type instead of k8s-openapi's `Secret`.
//!
//! Why not `Secret`: its `Debug` prints the data, and kube-runtime requires `Debug` on
//! watched objects; one Secret with a value that fails to decode as base64 would fail
//! the whole list page (every credential unavailable, and kube-client logs the body of a
//! list it cannot parse). Here values stay base64 text, decoded per field by
//! [`super::decode`], so a bad value only makes its own Secret invalid.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::NamespaceResourceScope;
use serde::Deserialize;
use zeroize::Zeroize;

/// One data value of a Secret, still base64-encoded as on the wire. Zeroized on drop;
/// `Debug` never shows it.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct EncodedValue(String);

impl EncodedValue {
    /// Wrap base64 text (tests build Secrets with this).
    #[must_use]
    pub fn new(base64: impl Into<String>) -> Self {
        Self(base64.into())
    }

    /// The base64 text, for decoding only.
    #[must_use]
    pub fn base64(&self) -> &str {
        &self.0
    }
}

impl Drop for EncodedValue {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for EncodedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A Secret with the fields the proxy reads: metadata (labels, annotations, name,
/// uid, resourceVersion) and `data`. Everything else (`type`, `immutable`) is ignored.
#[derive(Clone, Default, Deserialize)]
pub struct WatchedSecret {
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Data values by key; `null` and absent both mean empty.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub data: BTreeMap<String, EncodedValue>,
}

fn null_as_empty<'de, D>(d: D) -> Result<BTreeMap<String, EncodedValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<BTreeMap<String, EncodedValue>>::deserialize(d)?.unwrap_or_default())
}

impl WatchedSecret {
    /// `namespace/name`: the key under which this Secret's contributions are tracked.
    #[must_use]
    pub fn owner(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// A label's value, if set.
    #[must_use]
    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata.labels.as_ref()?.get(key).map(String::as_str)
    }

    /// An annotation's value, if set.
    #[must_use]
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }
}

/// Names and data keys only: kube-runtime requires `Debug`, and a Secret's values must
/// never reach a log.
impl fmt::Debug for WatchedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchedSecret")
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .field("resource_version", &self.metadata.resource_version)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl kube::Resource for WatchedSecret {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind((): &()) -> Cow<'_, str> {
        Cow::Borrowed("Secret")
    }

    fn group((): &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version((): &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural((): &()) -> Cow<'_, str> {
        Cow::Borrowed("secrets")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A Secret as the apiserver would send it, with `data` given as plain text.
#[cfg(test)]
pub(crate) fn fixture(name: &str, role: &str, data: &[(&str, &str)]) -> WatchedSecret {
    use base64::Engine as _;
    let mut s = WatchedSecret::default();
    s.metadata.namespace = Some("stowage-system".to_owned());
    s.metadata.name = Some(name.to_owned());
    s.metadata.uid = Some(format!("uid-{name}"));
    s.metadata.labels = Some(BTreeMap::from([(
        super::LABEL_ROLE.to_owned(),
        role.to_owned(),
    )]));
    for (k, v) in data {
        let b64 = base64::engine::general_purpose::STANDARD.encode(v);
        s.data.insert((*k).to_owned(), EncodedValue::new(b64));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIRE: &str = r#"{
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "vc-akia", "namespace": "ns", "resourceVersion": "7",
                     "labels": {"broker.stowage.io/role": "virtual-credential"}},
        "data": {"secret_access_key": "c3VwZXJzZWNyZXR2YWx1ZQ==", "odd": "not base64!"}
    }"#;

    #[test]
    fn debug_output_shows_names_and_keys_but_never_values() {
        let s: WatchedSecret = serde_json::from_str(WIRE).unwrap();
        let dbg = format!("{s:?}");
        assert!(dbg.contains("vc-akia") && dbg.contains("secret_access_key"));
        assert!(!dbg.contains("c3VwZXJzZWNyZXR2YWx1ZQ"), "{dbg}");
        assert!(!dbg.contains("not base64"), "{dbg}");
    }

    #[test]
    fn a_value_that_is_not_base64_still_deserializes_so_only_its_secret_fails() {
        let s: WatchedSecret = serde_json::from_str(WIRE).unwrap();
        assert_eq!(s.data["odd"].base64(), "not base64!");
        assert_eq!(s.owner(), "ns/vc-akia");
        assert_eq!(
            s.label("broker.stowage.io/role"),
            Some("virtual-credential")
        );
    }

    #[test]
    fn null_or_missing_data_is_empty() {
        let s: WatchedSecret =
            serde_json::from_str(r#"{"metadata": {"name": "a"}, "data": null}"#).unwrap();
        assert!(s.data.is_empty());
        let s: WatchedSecret = serde_json::from_str(r#"{"metadata": {"name": "a"}}"#).unwrap();
        assert!(s.data.is_empty());
    }

    #[test]
    fn list_and_watch_paths_are_the_core_v1_secrets_ones() {
        use kube::Resource as _;
        assert_eq!(
            WatchedSecret::url_path(&(), Some("stowage-system")),
            "/api/v1/namespaces/stowage-system/secrets"
        );
    }
}
