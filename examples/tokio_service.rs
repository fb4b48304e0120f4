//! A small tokio service on seglog's async API:
//! `cargo run --release --example tokio_service -- [ORDERS]`.
//!
//! Request handlers (tokio tasks) each take an order, send it with a durable
//! [`seglog::Producer`] and await its delivery before "replying": the reply is sent only
//! once the order is on disk, and no runtime thread ever blocks on an fsync (the producer's
//! own threads append and flush, and the handlers' tasks are woken). Meanwhile a billing
//! task follows the topic with [`seglog::Consumer::stream`], totalling what it reads; a
//! consumer's `poll` would block a runtime thread, the stream only parks the task.
//!
//! At the end the example checks that the billing task saw every acknowledged order
//! exactly once, and that each acknowledged offset holds that order (exits non-zero
//! otherwise).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_core::Stream;
use seglog::{Acks, ConsumerConfig, OffsetReset, ProducerConfig, Record, Store, TopicConfig};

/// The next item of a stream, without a combinator crate.
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let orders: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let topic = store.create_topic("orders", TopicConfig::default().partitions(4))?;
    let producer = topic.producer(ProducerConfig::default().acks(Acks::Durable))?;

    // Billing: one consumer of every partition, from the beginning, as a stream.
    let mut consumer = store.consumer(
        "orders",
        ConsumerConfig::default().reset(OffsetReset::Earliest),
    )?;
    let billing = tokio::spawn(async move {
        let mut seen: BTreeMap<(u32, u64), u64> = BTreeMap::new();
        let mut stream = consumer.stream();
        while seen.len() < orders as usize {
            let record =
                match tokio::time::timeout(Duration::from_secs(30), next(&mut stream)).await {
                    Ok(Some(r)) => r?,
                    Ok(None) => break,
                    Err(_) => return Err("billing: no record for 30 s".into()),
                };
            let cents: u64 =
                std::str::from_utf8(record.value.as_deref().unwrap_or_default())?.parse()?;
            if seen
                .insert((record.partition, record.offset), cents)
                .is_some()
            {
                return Err(
                    format!("order at {}:{} read twice", record.partition, record.offset).into(),
                );
            }
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(seen)
    });

    // Request handlers: 64 tasks, each replying only once its order is durable.
    let started = Instant::now();
    let mut handlers = Vec::new();
    for h in 0..64u64 {
        let producer = producer.clone();
        handlers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in (h..orders).step_by(64) {
                let customer = format!("customer-{}", i % 97);
                let cents = 100 + i % 9_900;
                let record = Record::new(cents.to_string()).with_key(customer.into_bytes());
                let delivered = producer.send(record).await?;
                acked.push((delivered.partition, delivered.offset, cents));
            }
            Ok::<_, seglog::Error>(acked)
        }));
    }
    let mut acked = BTreeMap::new();
    for h in handlers {
        for (p, o, cents) in h.await?? {
            acked.insert((p, o), cents);
        }
    }
    let elapsed = started.elapsed();
    let seen = billing.await?.map_err(|e| e.to_string())?;

    let durable = topic
        .partitions()
        .iter()
        .all(|p| p.durable_offset() == p.log_end_offset());
    println!(
        "{} orders acknowledged durable in {:.2?} ({:.0}/s, 64 concurrent handlers); billing read {}",
        acked.len(),
        elapsed,
        acked.len() as f64 / elapsed.as_secs_f64(),
        seen.len()
    );
    if acked != seen || !durable {
        eprintln!("MISMATCH: acknowledged and billed orders differ, or not all durable");
        std::process::exit(1);
    }
    let total: u64 = seen.values().sum();
    println!("billed {total} cents in all; every acknowledged order read exactly once");
    producer.close()?;
    store.close()?;
    Ok(())
}
