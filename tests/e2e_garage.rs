//! aws-sdk-s3 → stowage → Garage 2.x (a production S3 server, one process per test):
//! the shared cases. Without a `garage` binary every test prints
//! "GARAGE TIER DID NOT RUN: no garage binary on PATH" and returns; CI installs one.

mod common;

use common::{UpstreamKind, access_cases, cases, transfer_cases};

case_tests!(UpstreamKind::Garage, {
    objects_put_get_head_and_delete_through_the_proxy => cases::put_get_head_delete,
    list_objects_v2_honours_prefix_and_paginates => cases::list_objects_v2_with_prefix_and_pagination,
    multipart_upload_round_trips_through_the_proxy => transfer_cases::multipart_upload_round_trips,
    aborted_multipart_upload_leaves_no_object => transfer_cases::multipart_upload_abort_leaves_nothing,
    copy_object_within_scope_copies_the_bytes => cases::copy_object_within_scope,
    delete_objects_removes_only_the_named_keys => cases::delete_objects_removes_only_the_named_keys,
    presigned_get_and_put_work_with_plain_http => cases::presigned_get_and_put_work_over_plain_http,
    sdk_in_memory_put_sends_hex_sha256_and_crc32_and_is_accepted => transfer_cases::sdk_default_checksum_in_memory_body,
    sdk_streaming_put_sends_aws_chunked_with_trailer_and_is_accepted => transfer_cases::sdk_default_checksum_streaming_body,
    sdk_streaming_put_over_https_sends_unsigned_trailer_and_is_accepted => transfer_cases::sdk_streaming_body_over_https_uses_unsigned_trailer,
    list_buckets_is_synthesised_from_exact_and_pattern_scopes => access_cases::list_buckets_is_synthesised_from_scopes,
    virtual_host_addressing_reaches_the_bucket => access_cases::virtual_host_addressing_reaches_the_bucket,
    out_of_scope_bucket_is_access_denied_and_nothing_lands => access_cases::out_of_scope_bucket_is_access_denied,
    read_only_credential_cannot_put_or_delete => access_cases::read_only_credential_cannot_write,
    disabled_credential_is_refused_within_two_seconds => access_cases::disabled_credential_is_refused_within_two_seconds,
    rotated_secret_works_and_the_old_one_fails => access_cases::rotated_secret_replaces_the_old_one,
});
