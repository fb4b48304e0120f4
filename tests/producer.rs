//! The batching producer (issue 15): delivery handles resolve to the offsets the records
//! got, batches follow `batch_bytes` and `linger`, and nothing accepted is lost.

use std::time::Duration;

use seglog::{Acks, ProducerConfig, Record, Store, TopicConfig};

fn records_of(p: &seglog::Partition) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    while next < p.log_end_offset() {
        let f = p.read(next, 1 << 20).unwrap();
        for r in f.records() {
            out.push((r.offset(), r.value().unwrap().to_vec()));
        }
        next = f.next_offset();
    }
    out
}

#[test]
fn handles_resolve_to_the_offsets_records_got() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic(
            "t",
            TopicConfig::default().partitions(3).segment_bytes(4096),
        )
        .unwrap();
    for acks in [Acks::Written, Acks::Durable] {
        let producer = topic
            .producer(ProducerConfig::default().acks(acks).batch_bytes(1000))
            .unwrap();
        let handles: Vec<_> = (0..2000)
            .map(|i| {
                let key = (i % 7 == 0).then(|| format!("k{}", i % 5).into_bytes());
                let mut r = Record::new(format!("{acks:?}-{i}"));
                r.key = key;
                (format!("{acks:?}-{i}"), producer.send(r))
            })
            .collect();
        producer.flush().unwrap();
        for (value, h) in handles {
            let md = h.wait().unwrap();
            let p = topic.partition(md.partition).unwrap();
            let got = p.read(md.offset, 1).unwrap();
            let r = got.records().find(|r| r.offset() == md.offset).unwrap();
            assert_eq!(r.value().unwrap(), value.as_bytes());
            if acks == Acks::Durable {
                assert!(p.durable_offset() > md.offset);
            }
        }
    }
    // Order within a partition is the send order.
    for p in topic.partitions() {
        let values: Vec<_> = records_of(p)
            .into_iter()
            .map(|(_, v)| String::from_utf8(v).unwrap())
            .collect();
        let index = |v: &str| v.rsplit('-').next().unwrap().parse::<u32>().unwrap();
        for w in values.windows(2) {
            if w[0].split('-').next() == w[1].split('-').next() {
                assert!(index(&w[0]) < index(&w[1]), "{w:?}");
            }
        }
    }
}

#[test]
fn dropping_the_producer_appends_everything_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store.create_topic("t", TopicConfig::default()).unwrap();
    let producer = topic
        .producer(ProducerConfig::default().linger(Duration::from_secs(3600)))
        .unwrap();
    for i in 0..10u32 {
        let _ = producer.send(Record::new(i.to_be_bytes().to_vec()));
    }
    assert_eq!(topic.partition(0).unwrap().log_end_offset(), 0, "lingering");
    drop(producer);
    assert_eq!(records_of(topic.partition(0).unwrap()).len(), 10);
}
