use super::*;

#[test]
fn sizes_accept_bytes_and_decimal_and_binary_units() {
    assert_eq!(parse_size("123"), Ok(123));
    assert_eq!(parse_size("10GiB"), Ok(10 << 30));
    assert_eq!(parse_size("500MB"), Ok(500_000_000));
    assert_eq!(parse_size("500mb"), Ok(500_000_000));
    assert_eq!(parse_size("1.5 TiB"), Ok(3 << 39));
    assert_eq!(parse_size("2Ki"), Ok(2048));
    assert_eq!(parse_size("7B"), Ok(7));
    assert_eq!(parse_size("1k"), Ok(1000));
}

#[test]
fn malformed_sizes_are_refused_with_the_input_named() {
    for bad in ["", "GiB", "1.2.3GiB", "-5", ".5G", " "] {
        assert!(
            matches!(parse_size(bad), Err(SizeError::Malformed(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(parse_size("10XB"), Err(SizeError::Unit(_))));
    assert!(matches!(parse_size("10bb"), Err(SizeError::Unit(_))));
    assert!(matches!(parse_size("1e9"), Err(SizeError::Unit(_))));
    assert!(matches!(
        parse_size("20000PiB"),
        Err(SizeError::TooLarge(_))
    ));
    assert!(matches!(
        parse_size("999999999999999999999999999999999999999"),
        Err(SizeError::TooLarge(_))
    ));
    assert!(parse_size(&"9".repeat(100)).is_err());
    assert!(parse_size("10XB").unwrap_err().to_string().contains("10XB"));
}

#[test]
fn none_removes_a_cap_and_absent_flags_keep_the_stored_one() {
    let current = Limits {
        hard_bytes: Some(100),
        soft_bytes: Some(50),
        max_objects: Some(3),
    };
    let soft = Some(parse_size_arg("none").unwrap());
    let objects = Some(parse_count_arg("7").unwrap());
    let merged = merge_limits(current, None, soft, objects);
    assert_eq!(
        merged,
        Limits {
            hard_bytes: Some(100),
            soft_bytes: None,
            max_objects: Some(7)
        }
    );
    assert!(parse_count_arg("7k").is_err());
}

#[test]
fn sizes_format_exactly_when_whole_and_to_a_tenth_otherwise() {
    assert_eq!(format_size(0), "0 B");
    assert_eq!(format_size(1023), "1023 B");
    assert_eq!(format_size(10 << 30), "10 GiB");
    assert_eq!(format_size(1536), "1.5 KiB");
    assert_eq!(format_size(u64::MAX), "16383.9 PiB");
}

#[test]
fn the_table_joins_limits_and_usage_per_bucket() {
    let key = BucketKey::new("local", "photos");
    let limits = [QuotaRecord {
        key: key.clone(),
        limits: Limits {
            hard_bytes: Some(10 << 30),
            ..Limits::default()
        },
        updated_at: OffsetDateTime::UNIX_EPOCH,
    }];
    let usage = [UsageRecord {
        key: BucketKey::new("local", "other"),
        usage: crate::quota::ledger::Usage {
            bytes: 2048,
            objects: 2,
        },
        scanned_at: Some(OffsetDateTime::UNIX_EPOCH),
        updated_at: OffsetDateTime::UNIX_EPOCH,
        recount_requested_at: None,
    }];
    let table = render_table(&limits, &usage);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[1].contains("other") && lines[1].contains("2 KiB"));
    assert!(lines[2].contains("photos") && lines[2].contains("10 GiB"));
    assert!(lines[1].contains("1970-01-01T00:00:00Z"));
}

#[test]
fn a_recount_nobody_answers_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("c.db"),
        crate::secret::RootKey::from_bytes([1; 32]),
    )
    .unwrap();
    let key = BucketKey::new("local", "b");
    let err = recount_and_wait(
        &store,
        &key,
        Duration::from_millis(50),
        Duration::from_millis(10),
    )
    .unwrap_err();
    assert!(matches!(err, RecountError::Timeout(_)));
    assert_eq!(store.pending_recounts().unwrap().len(), 1);
}

#[test]
fn a_recount_answered_by_a_scan_after_the_request_returns_its_usage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let root = || crate::secret::RootKey::from_bytes([1; 32]);
    let store = SqliteStore::open(&path, root()).unwrap();
    let proxy = SqliteStore::open(&path, root()).unwrap();
    let key = BucketKey::new("local", "b");
    let k = key.clone();
    let answer = std::thread::spawn(move || {
        loop {
            if let Some((_, requested)) = proxy.pending_recounts().unwrap().pop() {
                let u = crate::quota::ledger::Usage {
                    bytes: 9,
                    objects: 1,
                };
                proxy.record_recount_done(&k, u, requested).unwrap();
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let row = recount_and_wait(
        &store,
        &key,
        Duration::from_secs(10),
        Duration::from_millis(5),
    )
    .unwrap();
    assert_eq!(row.usage.bytes, 9);
    answer.join().unwrap();
}
