//! A bounded, strictly decoded view of a request's raw query string, parsed once and
//! shared by operation classification, list-prefix scope checks and ListBuckets.

use std::borrow::Cow;

use super::encoding::{DecodeError, percent_decode_strict};

/// More parameters than any S3 request needs (a presigned GET with every
/// `response-*` override has about 15); beyond this the request is refused.
pub(crate) const MAX_QUERY_PARAMS: usize = 100;

/// Why a query string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryError {
    #[error("too many query parameters")]
    TooMany,
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// One `key[=value]` pair: the key decoded, the value kept raw so callers can choose
/// how to read `+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param<'a> {
    pub key: String,
    pub raw_value: Option<&'a str>,
}

/// The parsed query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Query<'a> {
    params: Vec<Param<'a>>,
}

impl<'a> Query<'a> {
    /// Parse `raw` (without the leading `?`). Empty pieces (`a&&b`) are skipped.
    pub(crate) fn parse(raw: Option<&'a str>) -> Result<Self, QueryError> {
        let mut params = Vec::new();
        for piece in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            if params.len() == MAX_QUERY_PARAMS {
                return Err(QueryError::TooMany);
            }
            let (raw_key, raw_value) = match piece.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (piece, None),
            };
            let key = percent_decode_strict(raw_key)?.into_owned();
            params.push(Param { key, raw_value });
        }
        Ok(Self { params })
    }

    pub(crate) fn params(&self) -> &[Param<'a>] {
        &self.params
    }

    /// Whether `key` occurs (with or without a value).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.params.iter().any(|p| p.key == key)
    }

    /// Every raw value of `key`, in order (`None` for a bare key).
    pub(crate) fn raw_values<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.params
            .iter()
            .filter(move |p| p.key == key)
            .map(|p| p.raw_value.unwrap_or(""))
    }

    /// The single decoded value of `key` (`+` literal). More than one occurrence is an
    /// error because backends disagree on which one wins.
    pub(crate) fn single(&self, key: &str) -> Result<Option<Cow<'a, str>>, SingleError> {
        let mut values = self.raw_values(key);
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(SingleError::Repeated);
        }
        Ok(Some(percent_decode_strict(first)?))
    }
}

/// Why [`Query::single`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SingleError {
    #[error("query parameter repeated")]
    Repeated,
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_are_decoded_and_values_kept_raw() {
        let q = Query::parse(Some("%61cl&prefix=a%2Fb+c&&x=")).unwrap();
        assert!(q.has("acl"));
        assert_eq!(q.raw_values("prefix").collect::<Vec<_>>(), ["a%2Fb+c"]);
        assert_eq!(q.single("prefix").unwrap().unwrap(), "a/b+c");
        assert_eq!(q.single("x").unwrap().unwrap(), "");
        assert_eq!(q.single("absent").unwrap(), None);
        assert_eq!(q.params().len(), 3);
    }

    #[test]
    fn query_refuses_too_many_params_repeats_and_bad_escapes() {
        let many = vec!["a=1"; MAX_QUERY_PARAMS + 1].join("&");
        assert_eq!(Query::parse(Some(&many)), Err(QueryError::TooMany));
        assert!(Query::parse(Some("%zz=1")).is_err());
        let q = Query::parse(Some("prefix=a&prefix=b")).unwrap();
        assert_eq!(q.single("prefix"), Err(SingleError::Repeated));
    }
}
