"""Turns bench/run's RESULT lines into bench/RESULTS.md (printed to stdout)."""
import datetime
import os
import subprocess
import sys

path, users, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = []
for line in open(path):
    if line.startswith("RESULT "):
        parts = line.split()
        rows.append((parts[1], dict(p.split("=", 1) for p in parts[2:])))


def find(name, **match):
    for n, kv in rows:
        if n == name and all(kv.get(k) == str(v) for k, v in match.items()):
            return kv
    return {}


def num(kv, key):
    try:
        return float(kv.get(key, "nan"))
    except ValueError:
        return float("nan")


cores = os.cpu_count()
mem = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.split("\n")[1].split()[1]
cpu = ""
for l in open("/proc/cpuinfo"):
    if l.startswith("model name"):
        cpu = l.split(":", 1)[1].strip()
        break
out = []
w = out.append
w("# herald benchmark results\n")
w(f"Measured {datetime.date.today()} on {cores} cores ({cpu}), {mem} GiB, with `bench/run` "
  f"(BENCH_USERS={users}, BENCH_SECONDS={secs}): herald in release mode (`api,worker`, SMTP to the sink), "
  "PostgreSQL and RabbitMQ on the same machine.\n")
w("## 1. Resend API (`POST /v2/users/{id}/invite_code/resend`) against the database alone\n")
w("pgbench in the same run on a copy of the database: the cheapest durable write (one-row INSERT, one "
  "commit; `bench/insert.sql`) and herald's own statements of one resend (`bench/resend.sql`).\n")
w("| connections | herald req/s | p50 ms | p90 ms | p99 ms | max ms | errors | one-row INSERT tps | "
  "herald / INSERT | herald's statements tps | herald / its statements |")
w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def ratio(a, b):
    return num(a, "per_second") / num(b, "per_second") if num(b, "per_second") else float("nan")


for c in (1, 8, 32):
    h, i, p = find("resend", concurrency=c), find("pgbench_insert", concurrency=c), find("pgbench", concurrency=c)
    w(f"| {c} | {h.get('per_second','?')} | {h.get('p50_ms','?')} | {h.get('p90_ms','?')} | {h.get('p99_ms','?')} | "
      f"{h.get('max_ms','?')} | {h.get('errors','?')} | {i.get('per_second','?')} | {ratio(h, i):.2f} | "
      f"{p.get('per_second','?')} | {ratio(h, p):.2f} |")
w("\nWhat one unit of work cost the database (deltas of `pg_stat_wal`, server-wide, and of "
  "`pg_stat_database.xact_commit` in the database that did the work; herald's until its deliveries ended, "
  "so the relay, the claims and the attempt records are in):\n")
w("| work | WAL bytes | WAL fsyncs | commits |")
w("|---|---:|---:|---:|")
for label, what in (("pgbench_insert", "pgbench one-row INSERT, 32 connections (per transaction)"),
                    ("pgbench", "pgbench of herald's resend statements, 32 connections (per transaction)"),
                    ("resend", "herald resend API, 32 connections, to SMTP accepted (per resend)"),
                    ("bulk", "herald bulk re-invite, to SMTP accepted (per user)")):
    x = find("wal", label=label)
    if x:
        w(f"| {what} | {x.get('wal_bytes_per','?')} | {x.get('wal_syncs_per','?')} | {x.get('commits_per','?')} |")
w("")
h = find("resend_half")
w(f"\nAt half the 32-connection throughput (open loop, {h.get('rate','?')} req/s offered over 32 connections): "
  f"{h.get('per_second','?')} req/s, p50 {h.get('p50_ms','?')} ms, p90 {h.get('p90_ms','?')} ms, "
  f"p99 {h.get('p99_ms','?')} ms, max {h.get('max_ms','?')} ms, errors {h.get('errors','?')}.\n")
z, zr = find("zitadel", concurrency=32), find("resend_beside_zitadel")
if z:
    w("ZITADEL's notifications (`POST /zitadel/v1/notifications/{provider}`, signed, a new code each), 32 connections: "
      f"{z.get('per_second','?')} accepted/s, p50 {z.get('p50_ms','?')} ms, p99 {z.get('p99_ms','?')} ms, "
      f"errors {z.get('errors','?')}; the resend API right after: {zr.get('per_second','?')} req/s, "
      f"p99 {zr.get('p99_ms','?')} ms.\n")
b, s, r = find("bulk"), find("sink_alone"), find("broker")
if find("note").get("autovacuum") == "off":
    w("PostgreSQL's autovacuum is off on this machine; throughout the run `bench/run` vacuumed "
      "`deliveries`, `delivery_open`, `delivery_outbox`, `invite_codes`, `users`, `events` and `bulk_results` every 10 s in its place.\n")
w(f"## 2. Bulk re-invite of {users} users (`herald bulk-resend --all-pending`) until the SMTP sink accepted every mail\n")
w("| | per second | |")
w("|---|---:|---|")
w(f"| herald, end to end | {b.get('per_second','?')} | {b.get('accepted','?')} mails in {b.get('seconds','?')} s "
  f"(publishing the job: {b.get('publish_seconds','?')} s); {b.get('unique_message_ids','?')} distinct Message-IDs; "
  f"{b.get('after_end','?')} extra mails after the end; herald peak RSS {b.get('peak_rss_mb','?')} MB "
  f"(high-water mark {b.get('hwm_rss_mb','?')} MB) |")
w(f"| the sink alone (4 SMTP connections, no herald) | {s.get('per_second','?')} | |")
w(f"| RabbitMQ alone: publish with confirms (1,000 outstanding), 500-byte persistent, quorum queue | "
  f"{r.get('publish_per_second','?')} | herald / broker: {num(b,'per_second')/num(r,'publish_per_second'):.2f} |")
w(f"| RabbitMQ alone: consume and ack | {r.get('consume_per_second','?')} | herald / broker: "
  f"{num(b,'per_second')/num(r,'consume_per_second'):.2f} |")
i = find("idle_latency")
w(f"\n## 3. Latency when idle: resend → SMTP accepted, {i.get('n','?')} sequential resends\n")
w(f"p50 {i.get('p50_ms','?')} ms, p95 {i.get('p95_ms','?')} ms, max {i.get('max_ms','?')} ms, errors {i.get('errors','?')}.\n")
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "CHANGES.md")
if os.path.exists(notes):
    w(open(notes).read())
print("\n".join(out))
