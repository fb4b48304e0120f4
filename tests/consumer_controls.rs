//! The consumer controls Kafka users reach for: one consumer over several topics (fair,
//! woken by any of them, partitions named with their topic), `wakeup` from another thread,
//! `pause` / `resume`, `commit_offsets` of exactly what was processed, the rebalance
//! listener, and the standalone consumer's defaults.
//!
//! No test asserts that something is fast: waits that must end early get a generous
//! deadline far below the poll's own timeout, which proves that the event and not the
//! timeout ended the wait.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use seglog::{
    Assignor, Consumer, ConsumerConfig, ConsumerRecord, Error, OffsetReset, RebalanceListener,
    Record, Store, StoreConfig, TopicConfig, TopicPartition,
};

/// A poll timeout that no test waits out when it expects data or a wakeup.
const LONG: Duration = Duration::from_secs(60);
/// How long a wake-up may take at most (far below [`LONG`]).
const WAKE_DEADLINE: Duration = Duration::from_secs(20);
/// A short poll timeout, for polls that expect nothing.
const SHORT: Duration = Duration::from_millis(50);

fn open(dir: &Path) -> Store {
    Store::open_with(dir, StoreConfig::default().maintenance_interval(None)).unwrap()
}

fn earliest() -> ConsumerConfig {
    ConsumerConfig::default().reset(OffsetReset::Earliest)
}

fn manual() -> ConsumerConfig {
    earliest().auto_commit(None)
}

/// Appends `n` records to partition `p` of `topic`, valued `<topic>-<p>-<offset>`.
fn fill(store: &Store, topic: &str, p: u32, n: u64) {
    let part = store.topic(topic).unwrap().partition(p).unwrap().clone();
    let base = part.log_end_offset();
    let recs: Vec<Record> = (base..base + n)
        .map(|o| Record::new(format!("{topic}-{p}-{o}")))
        .collect();
    part.append(&recs).unwrap();
}

/// Polls until `want` records came, in poll order.
fn poll_n(c: &mut Consumer, want: usize) -> Vec<ConsumerRecord> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < want {
        assert!(
            start.elapsed() < WAKE_DEADLINE,
            "only {} of {want} records",
            out.len()
        );
        out.extend(
            c.poll(want - out.len(), Duration::from_millis(200))
                .unwrap(),
        );
    }
    out
}

fn tp(topic: &str, p: u32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

/// (topic, partition, offset) of each record, checked against its value.
fn ids(records: &[ConsumerRecord]) -> Vec<(String, u32, u64)> {
    records
        .iter()
        .map(|r| {
            let want = format!("{}-{}-{}", r.topic, r.partition, r.offset);
            assert_eq!(r.value.as_deref(), Some(want.as_bytes()));
            (r.topic.to_string(), r.partition, r.offset)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Several topics

#[test]
fn one_consumer_reads_several_topics_fairly_and_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for t in ["a", "b"] {
        store
            .create_topic(t, TopicConfig::default().partitions(2))
            .unwrap();
        for p in 0..2 {
            fill(&store, t, p, 10);
        }
    }
    let mut c = store
        .consumer_of_topics(["b", "a", "b"], earliest())
        .unwrap();
    assert_eq!(
        c.topics().map(|t| t.name().to_string()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        c.assigned_partitions(),
        [tp("a", 0), tp("a", 1), tp("b", 0), tp("b", 1)]
    );
    // Each poll starts with the next partition: the first four polls of one record
    // each visit all four partitions.
    let firsts: BTreeSet<(String, u32)> = (0..4)
        .map(|_| {
            let r = c.poll(1, LONG).unwrap();
            assert_eq!(r.len(), 1);
            (r[0].topic.to_string(), r[0].partition)
        })
        .collect();
    assert_eq!(firsts.len(), 4, "{firsts:?}");
    let got = poll_n(&mut c, 36);
    assert!(c.poll(100, SHORT).unwrap().is_empty());
    let mut all: Vec<_> = ids(&got);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 36, "no record twice");
    assert_eq!(c.position(("a", 1)), Some(10));
    let b0 = tp("b", 0);
    assert_eq!(c.position(&b0), Some(10), "by reference too");
}

#[test]
fn a_bare_partition_number_is_refused_on_a_consumer_of_several_topics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for t in ["a", "b"] {
        store.create_topic(t, TopicConfig::default()).unwrap();
        fill(&store, t, 0, 5);
    }
    let mut c = store.consumer_of_topics(["a", "b"], earliest()).unwrap();
    match c.seek(0, 1) {
        Err(Error::AmbiguousPartition {
            partition, topics, ..
        }) => assert_eq!((partition, topics), (0, vec!["a".into(), "b".into()])),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.pause(&[0]),
        Err(Error::AmbiguousPartition { .. })
    ));
    assert_eq!(c.position(0), None, "a bare number names no partition here");
    assert!(matches!(
        c.seek(("nope", 0), 1),
        Err(Error::NotAssigned { .. })
    ));
    assert!(matches!(
        c.seek(("a", 3), 1),
        Err(Error::UnknownPartition { .. })
    ));
    c.seek(("b", 0), 3).unwrap();
    c.seek(tp("a", 0), 4).unwrap();
    let got = poll_n(&mut c, 3);
    let mut got = ids(&got);
    got.sort();
    assert_eq!(
        got,
        [("a".into(), 0, 4), ("b".into(), 0, 3), ("b".into(), 0, 4)]
    );

    // A consumer of one topic keeps taking bare numbers.
    let mut one = store.consumer("a", earliest()).unwrap();
    one.seek(0, 2).unwrap();
    assert_eq!(one.position(0), Some(2));
    assert_eq!(one.position(("a", 0)), Some(2));
    assert_eq!(one.assignment(), [0]);
}

#[test]
fn a_consumer_of_several_topics_wakes_for_an_append_to_any() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for t in ["a", "b", "c"] {
        store.create_topic(t, TopicConfig::default()).unwrap();
    }
    let c = store
        .consumer_of_topics(["a", "b", "c"], earliest())
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let poller = thread::spawn(move || {
        let mut c = c;
        while go_rx.recv().is_ok() {
            let r = c.poll(10, LONG).unwrap();
            tx.send(ids(&r)).unwrap();
        }
    });
    for (i, t) in ["c", "a", "b"].iter().enumerate() {
        go_tx.send(()).unwrap();
        // Not an assertion: a chance for the poll to block before the append.
        thread::sleep(Duration::from_millis(50));
        fill(&store, t, 0, 1);
        let got = rx.recv_timeout(WAKE_DEADLINE).expect("woken by the append");
        assert_eq!(got, [(t.to_string(), 0, 0)], "round {i}");
    }
    drop(go_tx);
    poller.join().unwrap();
}

#[test]
fn a_group_member_of_several_topics_is_a_member_of_each_topics_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for t in ["a", "b"] {
        store
            .create_topic(t, TopicConfig::default().partitions(2))
            .unwrap();
        for p in 0..2 {
            fill(&store, t, p, 4);
        }
    }
    let mut x = store.join_group_topics("g", ["a", "b"], manual()).unwrap();
    let mut y = store.join_group_topics("g", ["b", "a"], manual()).unwrap();
    // A third member of "g" on "b" alone shares b's partitions only.
    let z = store.join_group("g", "b", manual()).unwrap();
    assert_eq!(x.assigned_partitions(), [tp("a", 0), tp("b", 0)]);
    assert_eq!(y.assigned_partitions(), [tp("a", 1), tp("b", 1)]);
    assert_eq!(z.assignment(), Vec::<u32>::new());
    assert_eq!(x.assignment(), [0, 0], "numbers in topic order");
    let gx = ids(&poll_n(&mut x, 8));
    let gy = ids(&poll_n(&mut y, 8));
    assert!(gx.iter().all(|(_, p, _)| *p == 0));
    assert!(gy.iter().all(|(_, p, _)| *p == 1));
    x.commit().unwrap();
    y.commit_offsets(&[(("b", 1), 2)]).unwrap();
    assert_eq!(
        store.committed_offsets("g", "a").unwrap(),
        BTreeMap::from([(0, 4)])
    );
    assert_eq!(
        store.committed_offsets("g", "b").unwrap(),
        BTreeMap::from([(0, 4), (1, 2)])
    );
    assert!(matches!(
        y.commit_with_metadata(&BTreeMap::from([(1, "m".to_string())])),
        Err(Error::AmbiguousPartition { .. })
    ));
    // y leaves: x takes a-1 from where y stopped, b-1 goes to x (z joined after x).
    drop(y);
    assert_eq!(
        x.assigned_partitions(),
        [tp("a", 0), tp("a", 1), tp("b", 0)]
    );
    assert_eq!(z.assignment(), [1]);
    fill(&store, "a", 1, 1);
    assert_eq!(ids(&poll_n(&mut x, 1)), [("a".into(), 1, 4)]);
}

// ---------------------------------------------------------------------------------------
// Wakeup

#[test]
fn wakeup_makes_a_blocked_poll_return_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_topic("t", TopicConfig::default()).unwrap();
    store.create_topic("u", TopicConfig::default()).unwrap();
    for topics in [vec!["t"], vec!["t", "u"]] {
        let c = store.join_group_topics("g", &topics, earliest()).unwrap();
        let handle = c.wakeup_handle();
        let (tx, rx) = mpsc::channel();
        let poller = thread::spawn(move || {
            let mut c = c;
            tx.send(c.poll(10, LONG)).unwrap();
            // One wakeup, one error: the next poll goes on normally.
            tx.send(c.poll(10, SHORT)).unwrap();
        });
        // Not an assertion: a chance for the poll to block first (if it has not, the
        // wakeup fails it all the same, at its start).
        thread::sleep(Duration::from_millis(100));
        let h2 = handle.clone();
        thread::spawn(move || h2.wakeup()).join().unwrap();
        let first = rx
            .recv_timeout(WAKE_DEADLINE)
            .expect("the wakeup ended the poll");
        assert!(matches!(first, Err(Error::Wakeup)), "{topics:?}: {first:?}");
        let second = rx.recv_timeout(WAKE_DEADLINE).unwrap();
        assert!(second.unwrap().is_empty());
        poller.join().unwrap();
    }
}

#[test]
fn a_wakeup_with_no_poll_blocked_fails_the_next_poll_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_topic("t", TopicConfig::default()).unwrap();
    fill(&store, "t", 0, 3);
    let mut c = store.consumer("t", earliest()).unwrap();
    let h = c.wakeup_handle();
    h.wakeup();
    h.wakeup();
    assert!(matches!(c.poll(10, LONG), Err(Error::Wakeup)));
    // Nothing was read or lost.
    assert_eq!(c.position(0), None);
    assert_eq!(poll_n(&mut c, 3).len(), 3);
    c.wakeup();
    assert!(matches!(c.poll(10, LONG), Err(Error::Wakeup)));
    assert!(c.poll(10, SHORT).unwrap().is_empty());
    // The handle is Send + Sync.
    fn send_sync<T: Send + Sync + Clone>(_: &T) {}
    send_sync(&h);
}

// ---------------------------------------------------------------------------------------
// Pause and resume

#[test]
fn paused_partitions_are_skipped_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    fill(&store, "t", 0, 5);
    fill(&store, "t", 1, 5);
    let mut c = store.consumer("t", earliest()).unwrap();
    c.pause(&[0]).unwrap();
    c.pause(&[0]).unwrap();
    assert_eq!(c.paused(), [tp("t", 0)]);
    let got = poll_n(&mut c, 5);
    assert!(got.iter().all(|r| r.partition == 1));
    fill(&store, "t", 0, 1);
    assert!(c.poll(10, SHORT).unwrap().is_empty(), "p0 is paused");
    c.resume(&[("t", 0)]).unwrap();
    assert!(c.paused().is_empty());
    let got = poll_n(&mut c, 6);
    assert_eq!(
        ids(&got),
        (0..6).map(|o| ("t".into(), 0, o)).collect::<Vec<_>>()
    );
}

#[test]
fn records_read_ahead_for_a_paused_partition_wait_for_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_topic("t", TopicConfig::default()).unwrap();
    fill(&store, "t", 0, 10); // one batch: read whole, 7 records held over
    let mut c = store.consumer("t", earliest()).unwrap();
    assert_eq!(c.poll(3, LONG).unwrap().len(), 3);
    c.pause(&[0]).unwrap();
    assert!(c.poll(10, SHORT).unwrap().is_empty());
    assert_eq!(c.position(0), Some(3));
    c.resume(&[0]).unwrap();
    let got = c.poll(10, LONG).unwrap();
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (3..10).collect::<Vec<_>>()
    );
}

#[test]
fn pausing_a_partition_not_assigned_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let mut a = store.join_group("g", "t", manual()).unwrap();
    let _b = store.join_group("g", "t", manual()).unwrap();
    assert_eq!(a.assignment(), [0]);
    match a.pause(&[0, 1]) {
        Err(e @ Error::NotAssigned { .. }) => {
            assert!(e.to_string().contains("t-1"), "{e}");
            assert!(e.to_string().contains("pause"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(a.paused().is_empty(), "nothing paused by a refused call");
    assert!(matches!(a.resume(&[1]), Err(Error::NotAssigned { .. })));
    assert!(matches!(a.pause(&[7]), Err(Error::UnknownPartition { .. })));
    let mut s = store.consumer_of("t", &[1], earliest()).unwrap();
    assert!(matches!(s.pause(&[0]), Err(Error::NotAssigned { .. })));
    s.pause(&[1]).unwrap();
}

#[test]
fn a_rebalance_that_takes_a_paused_partition_forgets_its_pause() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let mut a = store.join_group("g", "t", manual()).unwrap();
    assert!(a.poll(10, SHORT).unwrap().is_empty());
    a.pause(&[0, 1]).unwrap();
    let b = store.join_group("g", "t", manual()).unwrap();
    assert_eq!(a.assignment(), [0]);
    assert!(a.poll(10, SHORT).unwrap().is_empty());
    assert_eq!(a.paused(), [tp("t", 0)], "t-1 went to b: its pause is gone");
    drop(b);
    fill(&store, "t", 1, 2);
    fill(&store, "t", 0, 2);
    let got = poll_n(&mut a, 2);
    assert!(
        got.iter().all(|r| r.partition == 1),
        "t-1 came back unpaused"
    );
    assert!(a.poll(10, SHORT).unwrap().is_empty(), "t-0 still paused");
}

// ---------------------------------------------------------------------------------------
// Explicit commits

#[test]
fn commit_offsets_commits_exactly_the_given_offsets_durably() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .create_topic("t", TopicConfig::default().partitions(3))
            .unwrap();
        for p in 0..3 {
            fill(&store, "t", p, 10);
        }
        let mut c = store.join_group("g", "t", manual()).unwrap();
        poll_n(&mut c, 30);
        c.commit_offsets(&[(0, 3), (1, 9), (0, 4)]).unwrap();
        assert_eq!(c.position(0), Some(10), "positions do not move");
        assert_eq!(
            store.committed_offsets("g", "t").unwrap(),
            BTreeMap::from([(0, 4), (1, 9)]),
            "a partition named twice gets its last offset; others untouched"
        );
        // As Kafka: any offset, also past the log end.
        c.commit_offsets(&[(2, 1000)]).unwrap();
        c.commit_offsets::<u32>(&[]).unwrap();
        drop(c);
        store.close().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        store.committed_offsets("g", "t").unwrap(),
        BTreeMap::from([(0, 4), (1, 9), (2, 1000)])
    );
    // A restarted group resumes there; the offset outside the log goes by the reset.
    let mut c = store.join_group("g", "t", manual()).unwrap();
    let mut got = ids(&poll_n(&mut c, 17));
    got.sort();
    let mut want: Vec<_> = (4..10).map(|o| ("t".to_string(), 0, o)).collect();
    want.push(("t".into(), 1, 9));
    want.extend((0..10).map(|o| ("t".to_string(), 2, o)));
    assert_eq!(got, want);
}

#[test]
fn commit_offsets_refuses_what_it_must_and_then_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let mut a = store.join_group("g", "t", manual()).unwrap();
    let _b = store.join_group("g", "t", manual()).unwrap();
    match a.commit_offsets(&[(0, 1), (1, 1)]) {
        Err(e @ Error::NotAssigned { .. }) => assert!(e.to_string().contains("t-1"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        a.commit_offsets(&[(0, u64::MAX)]),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(store.committed_offsets("g", "t").unwrap().is_empty());
    let mut s = store.consumer("t", earliest()).unwrap();
    match s.commit_offsets(&[(0, 1)]) {
        Err(e @ Error::IllegalState { .. }) => assert!(e.to_string().contains("group"), "{e}"),
        other => panic!("{other:?}"),
    }
    a.commit_offsets(&[(&tp("t", 0), 1)]).unwrap();
    assert_eq!(
        store.committed_offsets("g", "t").unwrap(),
        BTreeMap::from([(0, 1)])
    );
}

// ---------------------------------------------------------------------------------------
// Rebalance listener

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Revoked(Vec<TopicPartition>),
    Assigned(Vec<TopicPartition>),
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Recorder {
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl RebalanceListener for Recorder {
    fn on_revoked(&mut self, _: &mut Consumer, p: &[TopicPartition]) -> seglog::Result<()> {
        self.0.lock().unwrap().push(Event::Revoked(p.to_vec()));
        Ok(())
    }
    fn on_assigned(&mut self, _: &mut Consumer, p: &[TopicPartition]) -> seglog::Result<()> {
        self.0.lock().unwrap().push(Event::Assigned(p.to_vec()));
        Ok(())
    }
}

fn tps(topic: &str, ps: &[u32]) -> Vec<TopicPartition> {
    ps.iter().map(|&p| tp(topic, p)).collect()
}

#[test]
fn the_listener_is_told_on_poll_revoked_before_assigned_and_all_revoked_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let config = manual().assignor(Assignor::RoundRobin);
    let rec = Recorder::default();
    let mut a = store.join_group("g", "t", config.clone()).unwrap();
    a.set_rebalance_listener(rec.clone());
    assert!(rec.take().is_empty(), "told on poll, not before");
    a.poll(10, SHORT).unwrap();
    assert_eq!(rec.take(), [Event::Assigned(tps("t", &[0, 1, 2]))]);
    a.poll(10, SHORT).unwrap();
    assert!(rec.take().is_empty(), "nothing changed");

    let b = store.join_group("g", "t", config.clone()).unwrap();
    let mut c = store.join_group("g", "t", config.clone()).unwrap();
    assert_eq!(a.assignment(), [0], "assignment() shows the change at once");
    assert!(rec.take().is_empty());
    a.poll(10, SHORT).unwrap();
    assert_eq!(rec.take(), [Event::Revoked(tps("t", &[1, 2]))]);

    // c owns 2; when a leaves, round-robin gives b {0, 2} and c {1}: c loses 2, gains 1.
    let rc = Recorder::default();
    c.set_rebalance_listener(rc.clone());
    c.poll(10, SHORT).unwrap();
    assert_eq!(rc.take(), [Event::Assigned(tps("t", &[2]))]);
    a.close().unwrap();
    assert_eq!(
        rec.take(),
        [Event::Revoked(tps("t", &[0]))],
        "close revokes all"
    );
    c.poll(10, SHORT).unwrap();
    assert_eq!(
        rc.take(),
        [
            Event::Revoked(tps("t", &[2])),
            Event::Assigned(tps("t", &[1]))
        ]
    );
    // b leaves: c owns all three now, but its listener was told of t-1 only, so
    // closing (here by drop) revokes what the listener knows.
    drop(b);
    assert_eq!(c.assignment(), [0, 1, 2]);
    drop(c);
    assert_eq!(rc.take(), [Event::Revoked(tps("t", &[1]))], "drop closes");
}

/// Commits what it processed of revoked partitions, and starts assigned ones from the
/// beginning.
struct CommitAndRewind {
    processed: Arc<Mutex<BTreeMap<TopicPartition, u64>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl RebalanceListener for CommitAndRewind {
    fn on_revoked(&mut self, c: &mut Consumer, parts: &[TopicPartition]) -> seglog::Result<()> {
        let done = self.processed.lock().unwrap();
        let offsets: Vec<(&TopicPartition, u64)> = parts
            .iter()
            .filter_map(|p| done.get(p).map(|&o| (p, o)))
            .collect();
        c.commit_offsets(&offsets)?;
        let poll = c.poll(1, SHORT);
        self.log
            .lock()
            .unwrap()
            .push(format!("revoked {parts:?}, poll: {poll:?}"));
        Ok(())
    }
    fn on_assigned(&mut self, c: &mut Consumer, parts: &[TopicPartition]) -> seglog::Result<()> {
        for p in parts {
            c.seek(p, 0)?;
        }
        Ok(())
    }
}

#[test]
fn a_listener_commits_revoked_partitions_and_seeks_assigned_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    fill(&store, "t", 0, 5);
    fill(&store, "t", 1, 5);
    // Latest: without the listener's seek, nothing would be read.
    let config = manual().reset(OffsetReset::Latest);
    let processed = Arc::new(Mutex::new(BTreeMap::new()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut a = store.join_group("g", "t", config.clone()).unwrap();
    a.set_rebalance_listener(CommitAndRewind {
        processed: Arc::clone(&processed),
        log: Arc::clone(&log),
    });
    let got = poll_n(&mut a, 10);
    assert_eq!(got.len(), 10, "read from 0 after the listener's seek");
    // Processed: 3 records of t-1 only.
    processed.lock().unwrap().insert(tp("t", 1), 3);
    let _b = store.join_group("g", "t", config).unwrap();
    a.poll(10, SHORT).unwrap();
    assert_eq!(
        store.committed_offsets("g", "t").unwrap(),
        BTreeMap::from([(1, 3)]),
        "the revoked partition's offset, committed by its old owner's listener"
    );
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].contains("IllegalState"), "{}", log[0]);
    // Outside on_revoked, the partition is not a's to commit.
    assert!(matches!(
        a.commit_offsets(&[(1, 4)]),
        Err(Error::NotAssigned { .. })
    ));
}

struct Failing;

impl RebalanceListener for Failing {
    fn on_assigned(&mut self, _: &mut Consumer, _: &[TopicPartition]) -> seglog::Result<()> {
        Err(Error::Closed("listener".into()))
    }
}

#[test]
fn a_listener_error_is_returned_by_poll_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_topic("t", TopicConfig::default()).unwrap();
    fill(&store, "t", 0, 2);
    let mut a = store.join_group("g", "t", manual()).unwrap();
    a.set_rebalance_listener(Failing);
    assert!(matches!(a.poll(10, SHORT), Err(Error::Closed(_))));
    assert_eq!(poll_n(&mut a, 2).len(), 2, "the rebalance counts as told");
}

// ---------------------------------------------------------------------------------------
// Defaults

#[test]
fn a_standalone_consumer_says_it_auto_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let default = ConsumerConfig::default();
    assert_eq!(default.auto_commit, Some(Duration::from_secs(5)));
    for c in [
        store.consumer("t", default.clone()).unwrap(),
        store.consumer_of("t", &[1], default.clone()).unwrap(),
        store.consumer_of_topics(["t"], default.clone()).unwrap(),
        store
            .consumer_of_partitions(&[tp("t", 0)], default.clone())
            .unwrap(),
    ] {
        assert_eq!(c.config().auto_commit, None);
        assert_eq!(c.config().reset, default.reset, "the rest as given");
        assert_eq!(c.group(), None);
    }
    let m = store.join_group("g", "t", default.clone()).unwrap();
    assert_eq!(m.config(), &default);
    assert!(matches!(
        store.consumer_of_topics(Vec::<String>::new(), default.clone()),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        store.join_group_topics("g", ["t", "missing"], default),
        Err(Error::UnknownTopic(_))
    ));
}

/// Drops another member of the group from inside `on_revoked`.
struct DropOther(Option<Consumer>);

impl RebalanceListener for DropOther {
    fn on_revoked(&mut self, _: &mut Consumer, _: &[TopicPartition]) -> seglog::Result<()> {
        self.0.take();
        Ok(())
    }
}

/// Regression: a rebalance after the listener ran but before the poll took the topics'
/// change counters left a partition handed over with data unread until the next append
/// or the poll's timeout (the counters were read after the rebalance's notify). Seen
/// failing (the poll returned nothing after its timeout) before `poll` took the counters
/// first.
#[test]
fn a_partition_handed_over_while_the_listener_runs_is_read_by_the_same_poll() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let mut a = store.join_group("g", "t", manual()).unwrap();
    let b = store.join_group("g", "t", manual()).unwrap();
    assert!(a.poll(10, SHORT).unwrap().is_empty());
    assert_eq!(a.assignment(), [0, 1]);
    fill(&store, "t", 1, 3);
    let _c = store.join_group("g", "t", manual()).unwrap();
    assert_eq!(a.assignment(), [0]);
    // a's next poll: t-1 revoked; the listener drops b, and t-1 comes back to a.
    a.set_rebalance_listener(DropOther(Some(b)));
    let got = a.poll(10, WAKE_DEADLINE).unwrap();
    assert_eq!(
        ids(&got),
        (0..3).map(|o| ("t".into(), 1, o)).collect::<Vec<_>>()
    );
}

/// Another member may have read a partition while it was away: the listener hears of it.
#[test]
fn a_partition_taken_away_and_given_back_between_polls_is_revoked_then_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let rec = Recorder::default();
    let mut a = store.join_group("g", "t", manual()).unwrap();
    a.set_rebalance_listener(rec.clone());
    a.poll(10, SHORT).unwrap();
    assert_eq!(rec.take(), [Event::Assigned(tps("t", &[0, 1]))]);
    let mut b = store.join_group("g", "t", manual()).unwrap();
    fill(&store, "t", 1, 2);
    assert_eq!(poll_n(&mut b, 2).len(), 2);
    drop(b);
    assert_eq!(a.assignment(), [0, 1]);
    assert!(
        a.poll(10, SHORT).unwrap().is_empty(),
        "b read t-1 meanwhile"
    );
    assert_eq!(
        rec.take(),
        [
            Event::Revoked(tps("t", &[1])),
            Event::Assigned(tps("t", &[1]))
        ]
    );
}
