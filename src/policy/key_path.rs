//! How a key could be re-read by a backend (or a web server in front of it) that
//! normalises URL paths. S3 keys are opaque, so `a/../b` is a key of its own and the
//! proxy forwards it verbatim; but a normalising hop would turn `/bucket/a/../b` into
//! `/bucket/b`, `/bucket/../other/k` into `/other/k` and `/bucket/.` into `/bucket/`.
//! The scope check therefore checks every reading of the key.
//!
//! It also checks other *spellings* of the key ([`spellings`]): with `\` read as `/`
//! (a Windows or filesystem-backed hop), and percent-decoded once more (a hop that
//! decodes twice, turning `..%252F` into `../`). Each spelling is compared with the
//! scope prefix spelled the same way, so only keys that would leave the prefix under
//! some reading are refused; an ordinary `%` or `\` inside the prefix stays usable.

use std::borrow::Cow;

use super::encoding::percent_decode_strict;

/// The readings to check: the literal key, RFC 3986 dot-segment removal, and dot
/// removal after merging repeated slashes (nginx's default). `None` in the list
/// means a reading that leaves the bucket or addresses the bucket itself.
pub(crate) fn readings(key: &str) -> [Option<Cow<'_, str>>; 3] {
    if !needs_resolution(key) {
        return [
            Some(Cow::Borrowed(key)),
            Some(Cow::Borrowed(key)),
            Some(Cow::Borrowed(key)),
        ];
    }
    [
        Some(Cow::Borrowed(key)),
        resolve(key, false).map(Cow::Owned),
        resolve(key, true).map(Cow::Owned),
    ]
}

/// The key as hops that read it differently would spell it, each paired with the
/// scope prefix spelled the same way: as sent; percent-decoded once more (when that
/// decodes and changes it); and each of those with `\` read as `/`. Plain keys have
/// one spelling.
pub(crate) fn spellings<'a>(key: &'a str, prefix: &'a str) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    let mut out = vec![(Cow::Borrowed(key), Cow::Borrowed(prefix))];
    if key.contains('%')
        && let Ok(decoded) = percent_decode_strict(key)
        && decoded != key
    {
        let prefix = percent_decode_strict(prefix).unwrap_or(Cow::Borrowed(prefix));
        out.push((
            Cow::Owned(decoded.into_owned()),
            Cow::Owned(prefix.into_owned()),
        ));
    }
    let slashed: Vec<_> = out
        .iter()
        .filter(|(k, _)| k.contains('\\'))
        .map(|(k, p)| {
            (
                Cow::Owned(k.replace('\\', "/")),
                Cow::Owned(p.replace('\\', "/")),
            )
        })
        .collect();
    out.extend(slashed);
    out
}

/// Plain keys (the overwhelming majority) read the same every way.
fn needs_resolution(key: &str) -> bool {
    key.is_empty()
        || key.starts_with('/')
        || key.contains("//")
        || key.split('/').any(|seg| seg == "." || seg == "..")
}

/// Remove dot-segments from `key` as if it followed `/bucket/`. `None` when `..`
/// climbs out of the bucket or nothing is left (the request would become
/// bucket-level).
fn resolve(key: &str, merge_slashes: bool) -> Option<String> {
    let segments: Vec<&str> = key.split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut stack: Vec<&str> = Vec::with_capacity(segments.len());
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                stack.pop()?;
                trailing_slash = i == last;
            }
            "" if merge_slashes => trailing_slash = i == last && i > 0,
            other => stack.push(other),
        }
    }
    let mut out = stack.join("/");
    if trailing_slash && !out.is_empty() {
        out.push('/');
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(key: &str) -> Vec<Option<String>> {
        readings(key)
            .into_iter()
            .map(|r| r.map(Cow::into_owned))
            .collect()
    }

    #[test]
    fn plain_keys_read_the_same_every_way() {
        for key in ["a", "a/b.txt", "dir/", "..a/b..", "a.b/.c"] {
            assert_eq!(all(key), vec![Some(key.to_owned()); 3], "{key}");
        }
    }

    fn spelled(key: &str, prefix: &str) -> Vec<(String, String)> {
        spellings(key, prefix)
            .into_iter()
            .map(|(k, p)| (k.into_owned(), p.into_owned()))
            .collect()
    }

    #[test]
    fn backslashes_and_a_second_decoding_give_more_spellings() {
        let pair = |k: &str, p: &str| (k.to_owned(), p.to_owned());
        assert_eq!(
            spelled("team/a.txt", "team/"),
            vec![pair("team/a.txt", "team/")]
        );
        assert_eq!(
            spelled("team/100%", "team/"),
            vec![pair("team/100%", "team/")]
        );
        assert_eq!(
            spelled("team/..\\x", "team/"),
            vec![pair("team/..\\x", "team/"), pair("team/../x", "team/")]
        );
        assert_eq!(
            spelled("team/..%252Fx", "team/"),
            vec![pair("team/..%252Fx", "team/"), pair("team/..%2Fx", "team/")]
        );
        assert_eq!(
            spelled("team/..%2F..%5Cx", "a%41\\"),
            vec![
                pair("team/..%2F..%5Cx", "a%41\\"),
                pair("team/../..\\x", "aA\\"),
                pair("team/../../x", "aA/"),
            ]
        );
    }

    #[test]
    fn dot_segments_resolve_like_a_normalising_web_server() {
        let some = |s: &str| Some(s.to_owned());
        let cases: &[(&str, Option<String>, Option<String>)] = &[
            ("a/../b", some("b"), some("b")),
            ("a/./b", some("a/b"), some("a/b")),
            ("a/.", some("a/"), some("a/")),
            ("a/b/..", some("a/"), some("a/")),
            ("a//../b", some("a/b"), some("b")),
            ("/a", some("/a"), some("a")),
            ("a//b", some("a//b"), some("a/b")),
            ("../other/k", None, None),
            ("a/../../other", None, None),
            ("a/..", None, None),
            (".", None, None),
            ("//", some("//"), None),
            ("/", some("/"), None),
        ];
        for (key, rfc, merged) in cases {
            let got = all(key);
            assert_eq!(got[0].as_deref(), Some(*key), "{key}");
            assert_eq!((&got[1], &got[2]), (rfc, merged), "{key}");
        }
    }
}
