#!/usr/bin/env python3
"""Independent Kafka client for seglog's tests (kafka-python): one JSON request on stdin,
one JSON answer on stdout.

    python3 kclient.py create|produce|consume|versions < request.json

Bytes travel as base64 strings; null stays null. On failure it prints
{"error": "<type>: <message>"} and exits 1 (the Rust side shows the message).
Commands and their fields are documented in tests/common/kafka.rs.
"""
import base64
import json
import logging
import sys
import time


def b64(data):
    return None if data is None else base64.b64encode(data).decode("ascii")


def opt(req, name, default):
    """req[name], or default when absent or null."""
    value = req.get(name)
    return default if value is None else value


def unb64(text):
    return None if text is None else base64.b64decode(text)


def connection(req):
    """Client settings every command shares."""
    return dict(bootstrap_servers=req["bootstrap"], client_id="seglog-kclient",
                bootstrap_timeout_ms=opt(req, "bootstrap_timeout_ms", 30000))


def create(req):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**connection(req))
    try:
        topic = NewTopic(
            name=req["topic"],
            num_partitions=req["partitions"],
            replication_factor=opt(req, "replication_factor", 1),
            topic_configs={k: str(v) for k, v in (req.get("configs") or {}).items()},
        )
        try:
            admin.create_topics([topic], timeout_ms=opt(req, "timeout_ms", 10000))
        except TopicAlreadyExistsError:
            if not opt(req, "exist_ok", False):
                raise
            return {"created": False}
        return {"created": True}
    finally:
        admin.close()


def produce(req):
    from kafka import KafkaProducer

    config = dict(
        **connection(req),
        compression_type=req.get("compression"),
        linger_ms=opt(req, "linger_ms", 0),
        batch_size=opt(req, "batch_size", 16384),
        enable_idempotence=opt(req, "idempotent", True),
        acks=opt(req, "acks", -1),
    )
    if req.get("max_request_size") is not None:
        config["max_request_size"] = req["max_request_size"]
    producer = KafkaProducer(**config)
    try:
        futures = []
        for rec in req["records"]:
            headers = [(name, unb64(value)) for name, value in rec.get("headers") or []]
            futures.append(
                producer.send(
                    req["topic"],
                    key=unb64(rec.get("key")),
                    value=unb64(rec.get("value")),
                    headers=headers,
                    partition=rec["partition"],
                    timestamp_ms=rec.get("timestamp_ms"),
                )
            )
        producer.flush(timeout=opt(req, "timeout_s", 30))
        out = []
        for future in futures:
            meta = future.get(timeout=opt(req, "timeout_s", 30))
            out.append({"partition": meta.partition, "offset": meta.offset})
        return out
    finally:
        producer.close(timeout=5)


def consume(req):
    """Reads each partition from its start to its high watermark (not ListOffsets(latest):
    Tansu answers that one wrongly)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **connection(req),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=opt(req, "fetch_max_wait_ms", 100),
        isolation_level=opt(req, "isolation_level", "read_uncommitted"),
    )
    try:
        topic = req["topic"]
        partitions = req.get("partitions")
        if partitions is None:
            deadline = time.monotonic() + opt(req, "timeout_s", 30)
            found = consumer.partitions_for_topic(topic)
            while not found and time.monotonic() < deadline:
                time.sleep(0.1)
                found = consumer.partitions_for_topic(topic)
            if not found:
                raise RuntimeError("topic %r has no partitions (does it exist?)" % topic)
            partitions = sorted(found)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records = {tp: [] for tp in tps}
        deadline = time.monotonic() + opt(req, "timeout_s", 30)
        pending = set(tps)
        while pending:
            if time.monotonic() > deadline:
                state = {tp.partition: (consumer.position(tp), consumer.highwater(tp))
                         for tp in pending}
                raise TimeoutError("partitions not read to their end: %s" % state)
            for tp, batch in consumer.poll(timeout_ms=200).items():
                records[tp].extend(batch)
            for tp in list(pending):
                hw = consumer.highwater(tp)
                if hw is not None and consumer.position(tp) >= hw:
                    pending.discard(tp)
        out = []
        for tp in tps:
            out.append({
                "partition": tp.partition,
                "high_watermark": consumer.highwater(tp),
                "records": [{
                    "offset": r.offset,
                    "key": b64(r.key),
                    "value": b64(r.value),
                    "headers": [[name, b64(value)] for name, value in r.headers],
                    "timestamp_ms": r.timestamp,
                } for r in records[tp]],
            })
        return out
    finally:
        consumer.close()


def versions(req):
    """The broker's ApiVersions: [{api_key, name, min, max}], and its cluster id."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**connection(req))
    try:
        apis = [{"api_key": int(k), "name": k.name, "min": v[0], "max": v[1]}
                for k, v in sorted(admin.api_versions().items(), key=lambda kv: int(kv[0]))]
        return {"cluster_id": admin.describe_cluster()["cluster_id"], "apis": apis}
    finally:
        admin.close()


def codecs(_req):
    """Which compression codecs kafka-python can use here."""
    from kafka import codec
    return {"gzip": codec.has_gzip(), "snappy": codec.has_snappy(),
            "lz4": codec.has_lz4(), "zstd": codec.has_zstd()}


COMMANDS = {"create": create, "produce": produce, "consume": consume,
            "versions": versions, "codecs": codecs}


def main():
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        print("usage: kclient.py %s < request.json" % "|".join(COMMANDS), file=sys.stderr)
        return 2
    try:
        req = json.load(sys.stdin)
        answer = COMMANDS[sys.argv[1]](req)
    except Exception as e:  # the Rust side shows this message in its panic
        json.dump({"error": "%s: %s" % (type(e).__name__, e)}, sys.stdout)
        return 1
    json.dump({"ok": answer}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
