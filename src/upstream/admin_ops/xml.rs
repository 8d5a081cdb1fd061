//! Reading the listing pages of the admin calls: ListObjectsV2, ListMultipartUploads
//! and ListParts. Only the fields the quota needs are read; everything else is
//! skipped. Nesting depth is bounded, numbers are checked, sums saturate. The walker
//! is shared with the pipeline's DeleteObjects accounting.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::AdminOpError;

/// Deeper than any S3 listing nests (root / entry / field / owner field).
const MAX_DEPTH: usize = 8;
/// Longest element text kept (keys are ≤ 1 KiB, tokens a few hundred bytes).
const MAX_TEXT: usize = 16 * 1024;

/// One ListObjectsV2 page.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ObjectsPage {
    pub bytes: u64,
    pub objects: u64,
    /// The continuation token when the listing is truncated.
    pub next: Option<String>,
}

/// One ListParts page.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct PartsPage {
    pub bytes: u64,
    pub next: Option<String>,
}

/// An in-progress multipart upload.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Upload {
    pub key: String,
    pub id: String,
}

/// One ListMultipartUploads page.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct UploadsPage {
    pub uploads: Vec<Upload>,
    /// (key marker, upload-id marker) when truncated.
    pub next: Option<(String, String)>,
}

/// What the walker reports: the text of an element that just closed, by its path
/// below the root (`Contents/Size`).
pub(crate) struct Closed<'a> {
    pub path: &'a str,
    pub text: &'a str,
}

/// Walk `xml`, calling `on_close` for every element below the root as it closes
/// (text trimmed; an element with children reports only its own loose text).
pub(crate) fn walk(
    xml: &[u8],
    mut on_close: impl FnMut(Closed<'_>) -> Result<(), AdminOpError>,
) -> Result<(), AdminOpError> {
    let mut reader = Reader::from_reader(xml);
    let mut names: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|_| AdminOpError::Malformed)? {
            Event::Start(e) => {
                if names.len() >= MAX_DEPTH {
                    return Err(AdminOpError::Malformed);
                }
                names.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                text.clear();
            }
            Event::Text(t) => {
                let t = t.unescape().map_err(|_| AdminOpError::Malformed)?;
                push_text(&mut text, &t)?;
            }
            Event::CData(c) => push_text(&mut text, &String::from_utf8_lossy(&c.into_inner()))?,
            Event::End(_) => {
                if names.len() > 1 {
                    let path = names[1..].join("/");
                    on_close(Closed {
                        path: &path,
                        text: text.trim(),
                    })?;
                }
                names.pop();
                text.clear();
            }
            // A document cut short is not a listing (or a delete result) to trust.
            Event::Eof if names.is_empty() => return Ok(()),
            Event::Eof => return Err(AdminOpError::Malformed),
            _ => {}
        }
    }
}

fn push_text(buf: &mut String, t: &str) -> Result<(), AdminOpError> {
    if buf.len() + t.len() > MAX_TEXT {
        return Err(AdminOpError::TooLarge);
    }
    buf.push_str(t);
    Ok(())
}

fn number(text: &str) -> Result<u64, AdminOpError> {
    text.parse::<u64>().map_err(|_| AdminOpError::Malformed)
}

/// `IsTruncated` is true, and the page names where to go on.
fn next_if_truncated<T>(truncated: bool, next: Option<T>) -> Result<Option<T>, AdminOpError> {
    match (truncated, next) {
        (false, _) => Ok(None),
        (true, Some(n)) => Ok(Some(n)),
        (true, None) => Err(AdminOpError::Malformed),
    }
}

pub(super) fn parse_objects(xml: &[u8]) -> Result<ObjectsPage, AdminOpError> {
    let mut page = ObjectsPage::default();
    let (mut truncated, mut token) = (false, None);
    walk(xml, |c| {
        match c.path {
            "Contents/Size" => page.bytes = page.bytes.saturating_add(number(c.text)?),
            "Contents" => page.objects = page.objects.saturating_add(1),
            "IsTruncated" => truncated = c.text == "true",
            "NextContinuationToken" if !c.text.is_empty() => token = Some(c.text.to_owned()),
            _ => {}
        }
        Ok(())
    })?;
    page.next = next_if_truncated(truncated, token)?;
    Ok(page)
}

pub(super) fn parse_parts(xml: &[u8]) -> Result<PartsPage, AdminOpError> {
    let mut page = PartsPage::default();
    let (mut truncated, mut marker) = (false, None);
    walk(xml, |c| {
        match c.path {
            "Part/Size" => page.bytes = page.bytes.saturating_add(number(c.text)?),
            "IsTruncated" => truncated = c.text == "true",
            "NextPartNumberMarker" if !c.text.is_empty() => marker = Some(c.text.to_owned()),
            _ => {}
        }
        Ok(())
    })?;
    page.next = next_if_truncated(truncated, marker)?;
    Ok(page)
}

pub(super) fn parse_uploads(xml: &[u8]) -> Result<UploadsPage, AdminOpError> {
    let mut page = UploadsPage::default();
    let mut current = Upload::default();
    let (mut truncated, mut key_marker, mut id_marker) = (false, None, None);
    walk(xml, |c| {
        match c.path {
            "Upload/Key" => current.key = c.text.to_owned(),
            "Upload/UploadId" => current.id = c.text.to_owned(),
            "Upload" => {
                let upload = std::mem::take(&mut current);
                if upload.key.is_empty() || upload.id.is_empty() {
                    return Err(AdminOpError::Malformed);
                }
                page.uploads.push(upload);
            }
            "IsTruncated" => truncated = c.text == "true",
            "NextKeyMarker" => key_marker = Some(c.text.to_owned()),
            "NextUploadIdMarker" => id_marker = Some(c.text.to_owned()),
            _ => {}
        }
        Ok(())
    })?;
    let next = key_marker
        .filter(|k| !k.is_empty())
        .map(|k| (k, id_marker.unwrap_or_default()));
    page.next = next_if_truncated(truncated, next)?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_page_sums_sizes_counts_entries_and_reads_the_token() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><IsTruncated>true</IsTruncated>
  <Contents><Key>a&amp;b</Key><Size>10</Size><Owner><ID>x</ID></Owner></Contents>
  <Contents><Key>c</Key><Size>0</Size></Contents>
  <NextContinuationToken>tok/1+=</NextContinuationToken>
</ListBucketResult>"#;
        let page = parse_objects(xml).unwrap();
        assert_eq!(
            page,
            ObjectsPage {
                bytes: 10,
                objects: 2,
                next: Some("tok/1+=".into())
            }
        );
    }

    #[test]
    fn last_objects_page_has_no_next_and_empty_bucket_is_zero() {
        let xml = b"<ListBucketResult><IsTruncated>false</IsTruncated><NextContinuationToken>x</NextContinuationToken></ListBucketResult>";
        assert_eq!(parse_objects(xml).unwrap(), ObjectsPage::default());
        assert_eq!(
            parse_objects(b"<ListBucketResult/>").unwrap(),
            ObjectsPage::default()
        );
    }

    #[test]
    fn truncated_page_without_a_token_is_malformed() {
        let xml = b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert_eq!(parse_objects(xml), Err(AdminOpError::Malformed));
    }

    #[test]
    fn bad_sizes_and_broken_xml_are_malformed_not_panics() {
        for xml in [
            &b"<L><Contents><Size>-1</Size></Contents></L>"[..],
            b"<L><Contents><Size>99999999999999999999999</Size></Contents></L>",
            b"<L><Contents><Size>1</Contents></L>",
            b"<L><a><b><c><d><e><f><g><h><i>1</i></h></g></f></e></d></c></b></a></L>",
        ] {
            assert!(
                parse_objects(xml).is_err(),
                "{}",
                String::from_utf8_lossy(xml)
            );
        }
    }

    #[test]
    fn parts_page_sums_part_sizes() {
        let xml = b"<ListPartsResult><Bucket>b</Bucket><IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker><Part><PartNumber>1</PartNumber><Size>5242880</Size></Part><Part><PartNumber>2</PartNumber><Size>7</Size></Part></ListPartsResult>";
        assert_eq!(
            parse_parts(xml).unwrap(),
            PartsPage {
                bytes: 5_242_887,
                next: Some("2".into())
            }
        );
    }

    #[test]
    fn uploads_page_lists_keys_and_ids_and_both_markers() {
        let xml = b"<ListMultipartUploadsResult><Bucket>b</Bucket><KeyMarker></KeyMarker><NextKeyMarker>k2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker><IsTruncated>true</IsTruncated><Upload><Key>k1</Key><UploadId>u1</UploadId></Upload><Upload><Key>k2</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>";
        let page = parse_uploads(xml).unwrap();
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[1].key, "k2");
        assert_eq!(page.next, Some(("k2".into(), "u2".into())));
        let bad = b"<R><Upload><Key>k</Key></Upload></R>";
        assert_eq!(parse_uploads(bad), Err(AdminOpError::Malformed));
    }
}
