//! First benchmarks of the hot paths (the benchmark issue extends this suite).
//! `cargo bench` — each case runs on a fresh temp dir.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use seglog::{Partition, Record, Store, TopicConfig};

fn records(n: usize, size: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::new(vec![(i % 251) as u8; size]).with_key(format!("key-{i}")))
        .collect()
}

fn fresh_partition(segment_bytes: u64) -> (tempfile::TempDir, Store, Partition) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    let topic = store
        .create_topic("bench", TopicConfig::default().segment_bytes(segment_bytes))
        .expect("create topic");
    let p = topic.partition(0).expect("partition 0").clone();
    (dir, store, p)
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    for (size, batch) in [(100usize, 1000usize), (1024, 100), (100, 1)] {
        let recs = records(batch, size);
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("{size}B_x{batch}"), |b| {
            let (_dir, _store, p) = fresh_partition(64 << 20);
            b.iter(|| p.append(&recs).expect("append"));
        });
    }
    g.finish();
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    let (_dir, _store, p) = fresh_partition(16 << 20);
    let recs = records(1000, 100);
    for _ in 0..200 {
        p.append(&recs).expect("append");
    }
    let total = p.log_end_offset();
    g.throughput(Throughput::Elements(total));
    g.bench_function("sequential_100B_200k", |b| {
        b.iter(|| {
            let mut next = 0;
            let mut n = 0u64;
            while next < total {
                let f = p.read(next, 1 << 20).expect("read");
                n += f.records().count() as u64;
                next = f.next_offset();
            }
            assert_eq!(n, total);
        })
    });
    g.throughput(Throughput::Elements(1));
    let mut x = 1u64;
    g.bench_function("random_single_offset", |b| {
        b.iter_batched(
            || {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) % total
            },
            |o| {
                p.read(o, 1)
                    .expect("read")
                    .records()
                    .next()
                    .map(|r| r.offset())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
