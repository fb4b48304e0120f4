use seglog::{Record, Store, TopicConfig};

#[test]
fn append_read_roll_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = store
        .create_topic(
            "t",
            TopicConfig::default()
                .partitions(1)
                .segment_bytes(4096)
                .index_interval_bytes(256),
        )
        .unwrap();
    let p = t.partition(0).unwrap().clone();
    for i in 0..500u32 {
        let recs: Vec<Record> = (0..3)
            .map(|j| Record::new(format!("v{i}-{j}")).with_key(format!("k{i}")))
            .collect();
        let info = p.append(&recs).unwrap();
        assert_eq!(info.base_offset, i as u64 * 3);
    }
    assert!(p.segments().len() > 3);
    let mut seen = 0;
    for r in p.records_from(0).fetch_bytes(1000) {
        let r = r.unwrap();
        assert_eq!(r.offset, seen);
        assert_eq!(
            r.value.unwrap(),
            format!("v{}-{}", seen / 3, seen % 3).as_bytes()
        );
        seen += 1;
    }
    assert_eq!(seen, 1500);
    for o in [0u64, 1, 2, 700, 1499] {
        let f = p.read(o, 1).unwrap();
        assert_eq!(f.records().next().unwrap().offset(), o);
    }
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap().clone();
    assert_eq!(p.log_end_offset(), 1500);
    for o in [0u64, 1, 2, 700, 1499] {
        let f = p.read(o, 1).unwrap();
        assert_eq!(f.records().next().unwrap().offset(), o);
    }
    p.truncate_to(701).unwrap();
    assert_eq!(p.log_end_offset(), 701);
    let f = p.read(699, 100000).unwrap();
    assert_eq!(
        f.records().map(|r| r.offset()).collect::<Vec<_>>(),
        vec![699, 700]
    );
    p.append(&[Record::new("x")]).unwrap();
    let f = p.read(700, 100000).unwrap();
    assert_eq!(
        f.records().map(|r| r.offset()).collect::<Vec<_>>(),
        vec![700, 701]
    );
}
