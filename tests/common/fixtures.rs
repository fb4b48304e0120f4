//! The golden data: Kafka's own batches and their JSON sidecars
//! (`tests/fixtures/kafka-java/`, see its README).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `tests/fixtures/kafka-java`.
pub fn kafka_java_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-java")
}

/// The JSON document `<stem>.json` of the Kafka fixtures.
pub fn kafka_java_json(stem: &str) -> Value {
    let path = kafka_java_dir().join(format!("{stem}.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Kafka fixture: the batches of `<name>.bin` and their sidecar `<name>.json`.
pub fn kafka_java(name: &str) -> (Vec<u8>, Value) {
    let path = kafka_java_dir().join(format!("{name}.bin"));
    let bin = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (bin, kafka_java_json(name))
}

/// The bytes a sidecar's hex string stands for (`None` for JSON `null`).
pub fn hex(v: &Value) -> Option<Vec<u8>> {
    let s = v.as_str()?;
    Some(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect(),
    )
}
