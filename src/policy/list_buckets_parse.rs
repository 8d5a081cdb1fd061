//! Reading an upstream `ListAllMyBucketsResult` (the admin key's bucket list), with
//! the input size and the bucket count bounded.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use quick_xml::Reader;
use quick_xml::events::Event;

/// The largest upstream document accepted.
pub const MAX_UPSTREAM_XML_BYTES: usize = 8 * 1024 * 1024;
/// The most buckets accepted from one upstream document.
pub const MAX_UPSTREAM_BUCKETS: usize = 100_000;

/// One bucket from the upstream list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBucket {
    pub name: String,
    /// `None` when absent or not RFC 3339.
    pub creation_date: Option<OffsetDateTime>,
}

/// Why an upstream bucket list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListBucketsParseError {
    #[error("upstream bucket list is larger than {MAX_UPSTREAM_XML_BYTES} bytes")]
    TooLarge,
    #[error("upstream bucket list has more than {MAX_UPSTREAM_BUCKETS} buckets")]
    TooManyBuckets,
    #[error("upstream bucket list is not well-formed XML")]
    Malformed,
    #[error("upstream bucket list has a bucket without a name")]
    MissingName,
}

/// Which text element inside `<Bucket>` is open.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    None,
    Name,
    CreationDate,
}

/// Parse the `<Bucket>` entries of an upstream `ListAllMyBucketsResult`.
pub fn parse_upstream_list_buckets(
    xml: &[u8],
) -> Result<Vec<UpstreamBucket>, ListBucketsParseError> {
    if xml.len() > MAX_UPSTREAM_XML_BYTES {
        return Err(ListBucketsParseError::TooLarge);
    }
    let mut reader = Reader::from_reader(xml);
    let mut buckets = Vec::new();
    let mut current: Option<(Option<String>, Option<String>)> = None;
    let mut field = Field::None;
    loop {
        let event = reader
            .read_event()
            .map_err(|_| ListBucketsParseError::Malformed)?;
        match event {
            Event::Start(e) => match (e.local_name().as_ref(), &current) {
                (b"Bucket", None) => current = Some((None, None)),
                (b"Name", Some(_)) => field = Field::Name,
                (b"CreationDate", Some(_)) => field = Field::CreationDate,
                _ => field = Field::None,
            },
            Event::Text(t) if field != Field::None => {
                let text = t.unescape().map_err(|_| ListBucketsParseError::Malformed)?;
                append(&mut current, field, &text);
            }
            Event::CData(c) if field != Field::None => {
                let bytes = c.into_inner();
                let text =
                    std::str::from_utf8(&bytes).map_err(|_| ListBucketsParseError::Malformed)?;
                append(&mut current, field, text);
            }
            Event::End(e) => {
                field = Field::None;
                if e.local_name().as_ref() == b"Bucket"
                    && let Some(done) = current.take()
                {
                    push_bucket(&mut buckets, done)?;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(buckets)
}

fn append(current: &mut Option<(Option<String>, Option<String>)>, field: Field, text: &str) {
    let Some((name, date)) = current else { return };
    let slot = if field == Field::Name { name } else { date };
    slot.get_or_insert_with(String::new).push_str(text);
}

fn push_bucket(
    buckets: &mut Vec<UpstreamBucket>,
    (name, date): (Option<String>, Option<String>),
) -> Result<(), ListBucketsParseError> {
    if buckets.len() == MAX_UPSTREAM_BUCKETS {
        return Err(ListBucketsParseError::TooManyBuckets);
    }
    let name = name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or(ListBucketsParseError::MissingName)?;
    let creation_date = date.and_then(|d| OffsetDateTime::parse(d.trim(), &Rfc3339).ok());
    buckets.push(UpstreamBucket {
        name,
        creation_date,
    });
    Ok(())
}
