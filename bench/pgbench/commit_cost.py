#!/usr/bin/env python3
"""What a message's commit costs PostgreSQL, statement by statement, beside the send benchmark's thin endpoint.

The events writer commits a message as one batch (one round trip, one implicit transaction): the writer's fence, the
stream_log row, the events row (which carries the transaction id since migration 0028) and the search entry
(Grains/Streams/StreamWriterGrain.WriteAsync, Grains/Rooms/RoomEventPersister). This replays that batch with pgbench
(pipeline mode: one Sync, as Npgsql sends a batch), whole and with one statement left out at a time, beside the thin
endpoint's one-row insert and the batch as it was before migration 0028 (an events table without the transaction
index and a separate event_txn_ids upsert, its old schema rebuilt here), and prints per
transaction the median latency, WAL bytes and (when the server runs on this machine and its postmaster.pid is
readable) the CPU of PostgreSQL's processes. The tables are copies (LIKE ... INCLUDING ALL: same indexes) in a schema
of their own, so a running homeserver is not touched.

Usage: PGHOST=127.0.0.1 PGPORT=<port> PGUSER=postgres python3 bench/pgbench/commit_cost.py [transactions] [rounds]
(the embedded default's port is in <data directory>/postgres/port).
"""
import os, statistics, subprocess, sys, tempfile

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
SCHEMA = "bench_commit"

EVENT = ('{"auth_events":["$a","$b","$c"],"content":{"body":"benchmark message with a little text in it","msgtype":"m.text"},'
         '"depth":12345,"event_id":"$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG","hashes":{"sha256":"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF"},'
         '"origin_server_ts":1764655075000,"prev_events":["$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFH"],"room_id":"!room.localhost",'
         '"sender":"@sender.localhost","type":"m.room.message"}')
PAYLOAD = '{"eventId":"$e","roomId":"!room.localhost","type":"m.room.message","sender":"@sender.localhost","json":' + \
          EVENT.replace('"', '\\"').join(['"', '"']) + ',"deviceId":"DEV","txnId":"t","search":{"key":"content.body","text":"benchmark message with a little text in it"}}'

STATEMENTS = {
    "fence": "SELECT stream_fence('events', 0, 1);",
    "log": "INSERT INTO stream_log (stream, position, writer, kind, key, payload) SELECT 'events', p, 0, k, y, d "
           f"FROM unnest(ARRAY[:p]::bigint[], ARRAY['room_event']::text[], ARRAY['!room.localhost']::text[], ARRAY['{PAYLOAD}']::text[]) AS r(p, k, y, d);",
    "event": "INSERT INTO events (event_id, room_id, stream_writer, stream_position, topological, type, state_key, sender, origin_server_ts, json, device_id, txn_id) "
             "SELECT * FROM unnest(ARRAY['$e' || :p]::text[], ARRAY['!room.localhost']::text[], ARRAY[0]::integer[], ARRAY[:p]::bigint[], ARRAY[:p]::bigint[], "
             f"ARRAY['m.room.message']::text[], ARRAY[NULL]::text[], ARRAY['@sender.localhost']::text[], ARRAY[1764655075000]::bigint[], ARRAY['{EVENT}']::text[], "
             "ARRAY['DEV']::text[], ARRAY['t' || :p]::text[]);",
}
# Before migration 0028: the same row into an events table without its transaction index, and the id's own upsert.
STATEMENTS["event before 0028"] = STATEMENTS["event"].replace("INSERT INTO events ", "INSERT INTO events_before_0028 ")
STATEMENTS.update({
    "txn before 0028": "INSERT INTO event_txn_ids (user_id, device_id, room_id, txn_id, event_id) SELECT * FROM unnest(ARRAY['@sender.localhost']::text[], ARRAY['DEV']::text[], "
           "ARRAY['!room.localhost']::text[], ARRAY['t' || :p]::text[], ARRAY['$e' || :p]::text[]) ON CONFLICT (user_id, device_id, room_id, txn_id) "
           "DO UPDATE SET event_id = EXCLUDED.event_id, created_at = now() WHERE event_txn_ids.created_at < now() - '24 hours'::interval;",
    "search": "INSERT INTO event_search (event_id, room_id, key, vector, sender, type, topological, stream_position, origin_server_ts) "
              "VALUES ('$e' || :p, '!room.localhost', 'content.body', to_tsvector('english', 'benchmark message with a little text in it'), "
              "'@sender.localhost', 'm.room.message', :p, :p, 1764655075000);",
})
ALL = ["fence", "log", "event", "search"]
VARIANTS = {"thin endpoint (one row)": None, "message batch": ALL,
            "message batch before 0028": ["fence", "log", "event before 0028", "txn before 0028", "search"]}
VARIANTS.update({f"without {s}": [x for x in ALL if x != s] for s in ALL})
VARIANTS["event row alone"] = ["event"]

env = dict(os.environ, PGOPTIONS=f"-c search_path={SCHEMA},public")

def psql(sql):
    return subprocess.run(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql], env=env, check=True, capture_output=True, text=True).stdout.strip()

psql(f"""DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.stream_writers (LIKE public.stream_writers INCLUDING ALL);
INSERT INTO {SCHEMA}.stream_writers (stream, writer, epoch) VALUES ('events', 0, 1);
CREATE TABLE {SCHEMA}.stream_log (LIKE public.stream_log INCLUDING ALL);
CREATE TABLE {SCHEMA}.events (LIKE public.events INCLUDING ALL);
CREATE TABLE {SCHEMA}.events_before_0028 (LIKE public.events INCLUDING ALL);
DO $$ DECLARE i text; BEGIN
  SELECT indexname INTO i FROM pg_indexes WHERE schemaname = '{SCHEMA}' AND tablename = 'events_before_0028' AND indexdef LIKE '%txn_id%';
  EXECUTE format('DROP INDEX {SCHEMA}.%I', i);
END $$;
CREATE TABLE {SCHEMA}.event_txn_ids (user_id text NOT NULL, device_id text NOT NULL, room_id text NOT NULL, txn_id text NOT NULL,
  event_id text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, device_id, room_id, txn_id));
CREATE INDEX ON {SCHEMA}.event_txn_ids (created_at);
CREATE TABLE {SCHEMA}.event_search (LIKE public.event_search INCLUDING ALL);
CREATE TABLE {SCHEMA}.bench_messages (id bigserial PRIMARY KEY, room text NOT NULL, body text NOT NULL);""")

def postmaster():
    try:
        with open(os.path.join(psql("SHOW data_directory"), "postmaster.pid")) as f: return int(f.readline())
    except OSError: return None

PM = postmaster()
TICK = os.sysconf("SC_CLK_TCK")

def cpu_seconds():
    # The postmaster's own and reaped children's time, plus its live children's (pgbench's backend exits at the end).
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == PM: total += sum(int(x) for x in fields[11:15])
        elif int(fields[1]) == PM: total += int(fields[11]) + int(fields[12])
    return total / TICK

def wal():
    return int(psql("SELECT pg_current_wal_lsn() - '0/0'"))

scripts = tempfile.mkdtemp(prefix="commit-cost-")
for name, parts in VARIANTS.items():
    body = ("INSERT INTO bench_messages (room, body) VALUES ('!room.localhost', 'benchmark message with a little text in it') RETURNING id;"
            if parts is None else "\n".join(STATEMENTS[p] for p in parts))
    with open(os.path.join(scripts, f"{list(VARIANTS).index(name)}.sql"), "w") as f:
        f.write("\\set p random(1000000000, 900000000000000)\n\\startpipeline\n" + body + "\n\\endpipeline\n")

results = {name: ([], [], []) for name in VARIANTS}
for _ in range(ROUNDS):
    for name in VARIANTS:
        script = os.path.join(scripts, f"{list(VARIANTS).index(name)}.sql")
        c0, w0 = (cpu_seconds() if PM else 0), wal()
        out = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c1", "-t", str(N), "-f", script], env=env, capture_output=True, text=True)
        if out.returncode != 0: sys.exit(f"pgbench failed for {name}: {out.stderr.strip()}")
        c1, w1 = (cpu_seconds() if PM else 0), wal()
        latency = next(float(l.split()[3]) for l in out.stdout.splitlines() if l.startswith("latency average"))
        results[name][0].append(latency); results[name][1].append((w1 - w0) / N); results[name][2].append((c1 - c0) / N * 1e6)

for name, (lat, wal_bytes, cpu) in results.items():
    print(f"{name:30s} latency {statistics.median(lat):.3f} ms, WAL {statistics.median(wal_bytes):5.0f} B"
          + (f", PostgreSQL CPU {statistics.median(cpu):4.0f} µs" if PM else "") + " a transaction (median of rounds)")
psql(f"DROP SCHEMA {SCHEMA} CASCADE")
