#!/usr/bin/env python3
"""Independent Kafka client for seglog's tests (kafka-python): one JSON request on stdin,
one JSON answer on stdout.

    python3 kclient.py create|produce|consume|batches|versions|codecs < request.json

Bytes travel as base64 strings; null stays null. On failure it prints
{"error": "<type>: <message>"} and exits 1 (the Rust side shows the message).
Commands and their fields are documented in tests/common/kafka.rs.
"""
import base64
import json
import logging
import socket
import struct
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


# --- Raw protocol: what the broker stores, byte for byte (kafka-python decodes batches). ---

class Conn:
    """One plain connection speaking non-flexible request versions."""

    def __init__(self, bootstrap, timeout_s=10):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.correlation = 0

    def request(self, api_key, version, body):
        self.correlation += 1
        client = b"seglog-kraw"
        head = struct.pack(">hhih", api_key, version, self.correlation, len(client)) + client
        msg = head + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", self.recv(4))[0]
        data = self.recv(size)
        if struct.unpack(">i", data[:4])[0] != self.correlation:
            raise RuntimeError("correlation id mismatch")
        return Reader(data[4:])

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def close(self):
        self.sock.close()


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        v = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return v

    def bytes(self):
        n = self.take(">i")
        if n < 0:
            return None
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v


def enc_string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def enc_bytes(b):
    return struct.pack(">i", len(b)) + b


CODECS = {0: None, 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def parse_batches(data):
    """The record batches (magic 2) in a fetched records field; a partial batch at the end
    (the fetch's size limit) is dropped, as clients do."""
    out, pos = [], 0
    while pos + 61 <= len(data):
        (base, length, leader_epoch, magic, crc, attrs, last_delta, first_ts, max_ts,
         pid, epoch, seq, count) = struct.unpack_from(">qiibIhiqqqhii", data, pos)
        end = pos + 12 + length
        if end > len(data):
            break
        out.append({
            "base_offset": base, "last_offset_delta": last_delta, "magic": magic,
            "partition_leader_epoch": leader_epoch, "crc": crc, "attributes": attrs,
            "compression": CODECS.get(attrs & 7, "codec-%d" % (attrs & 7)),
            "timestamp_type": "log_append" if attrs & 8 else "create",
            "transactional": bool(attrs & 16), "control": bool(attrs & 32),
            "first_timestamp": first_ts, "max_timestamp": max_ts, "producer_id": pid,
            "producer_epoch": epoch, "base_sequence": seq, "records": count,
            "bytes": b64(bytes(data[pos:end])),
        })
        pos = end
    return out


def fetch_raw(conn, topic, partition, offset, max_bytes):
    """Fetch v4 of one partition: (error_code, high_watermark, last_stable_offset, records)."""
    body = struct.pack(">iiiib", -1, 100, 1, max_bytes, 0)
    body += struct.pack(">i", 1) + enc_string(topic)
    body += struct.pack(">iiqi", 1, partition, offset, max_bytes)
    r = conn.request(1, 4, body)
    r.take(">i")  # throttle
    for _ in range(r.take(">i")):
        r.string()
        for _ in range(r.take(">i")):
            _p, err, hw, lso = r.take(">ihqq")
            aborted = r.take(">i")
            for _ in range(max(aborted, 0)):
                r.take(">qq")
            return err, hw, lso, r.bytes() or b""
    raise RuntimeError("no partition in the fetch answer")


def batches(req):
    """Every stored batch of the chosen partitions, raw, from offset 0 to the high
    watermark: per partition {partition, high_watermark, batches: [header fields + bytes]}."""
    conn = Conn(req["bootstrap"])
    try:
        out = []
        for partition in req["partitions"]:
            found, offset, hw = [], opt(req, "from_offset", 0), None
            while hw is None or offset < hw:
                err, hw, _lso, data = fetch_raw(conn, req["topic"], partition, offset,
                                                opt(req, "max_bytes", 1 << 20))
                if err:
                    raise RuntimeError("fetch of partition %d at %d: error %d"
                                       % (partition, offset, err))
                got = parse_batches(data)
                if not got:
                    if offset < hw:
                        raise RuntimeError("fetch of partition %d at %d below the high "
                                           "watermark %d returned no batch" % (partition, offset, hw))
                    break
                found.extend(got)
                offset = got[-1]["base_offset"] + got[-1]["last_offset_delta"] + 1
            out.append({"partition": partition, "high_watermark": hw, "batches": found})
        return out
    finally:
        conn.close()


COMMANDS = {"create": create, "produce": produce, "consume": consume,
            "versions": versions, "codecs": codecs, "batches": batches}


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
