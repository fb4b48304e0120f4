//! FORMAT.md is the spec the code follows: its worked examples must be what the code writes.

/// The fenced block that follows `marker` in FORMAT.md.
fn example_after(marker: &str) -> String {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/FORMAT.md")).unwrap();
    let at = spec
        .find(marker)
        .unwrap_or_else(|| panic!("FORMAT.md lost {marker:?}"));
    let rest = &spec[at..];
    let start = rest.find("```text\n").expect("a text block follows") + "```text\n".len();
    let len = rest[start..].find("```").expect("the block ends");
    rest[start..start + len].to_string()
}

// Postmortem: the §1.2 key list and example stopped at `timestamp_type` while the writer had
// gained nine more keys; a reader following the spec would have rejected seglog's own file.
#[test]
fn the_seglog_topics_example_is_what_a_default_topic_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = seglog::Store::open(dir.path()).unwrap();
    store
        .create_topic("orders", seglog::TopicConfig::default())
        .unwrap();
    store.close().unwrap();
    let written = std::fs::read_to_string(dir.path().join(seglog::TOPICS_FILE)).unwrap();
    assert_eq!(
        written,
        example_after("Example, one topic with default settings:")
    );
}

#[test]
fn the_seglog_topics_key_list_names_every_key_written() {
    let list = example_after("dir). It is UTF-8 text with `\\n` line ends:");
    let keys: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    let example = example_after("Example, one topic with default settings:");
    let written: Vec<&str> = example
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert_eq!(keys, written, "the key list and the example disagree");
}
