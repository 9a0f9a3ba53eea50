//! herald's benchmark tools, driven by `bench/run`:
//!
//! - `sink`: a fast SMTP sink (accepts everything, counts messages and distinct
//!   Message-IDs); its control port answers `{"accepted":N,"unique":U}`;
//! - `sink-alone`: how fast the sink takes mail with no herald in between;
//! - `broker`: RabbitMQ's own publish-with-confirms and consume-and-ack rates;
//! - `resend-load`: `POST …/invite_code/resend` at a fixed concurrency for a
//!   fixed time: requests/s, latency percentiles, errors;
//! - `zitadel-load`: signed ZITADEL notification posts, the same way ([`zitadel`]);
//! - `idle-latency`: resend → SMTP accepted, one at a time;
//! - `bulk`: runs a command (herald bulk-resend) and waits until the sink accepted
//!   the expected number of mails; reports the rate and herald's peak RSS.
//!
//! Every measurement prints one `RESULT name key=value …` line for `bench/run`.

mod zitadel;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The herald and the users a load runs against (a plain comment: a doc comment
// would become every subcommand's description).
#[derive(clap::Args)]
struct Target {
    #[arg(long)]
    url: String,
    #[arg(long)]
    token: String,
    #[arg(long)]
    db: String,
    #[arg(long)]
    org: String,
}

#[derive(Subcommand)]
enum Command {
    Sink {
        #[arg(long, default_value_t = 2525)]
        port: u16,
        #[arg(long, default_value_t = 2526)]
        control: u16,
    },
    SinkAlone {
        #[arg(long, default_value = "127.0.0.1:2525")]
        addr: String,
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
    Broker {
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        url: String,
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        #[arg(long, default_value_t = 500)]
        size: usize,
    },
    ResendLoad {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value = "resend")]
        label: String,
        /// Open loop: at most this many requests per second in all (0: as fast as
        /// the connections go).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    ZitadelLoad {
        #[arg(long)]
        url: String,
        #[arg(long)]
        provider: String,
        #[arg(long)]
        key: String,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    IdleLatency {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value = "127.0.0.1:2526")]
        control: String,
        #[arg(long, default_value_t = 200)]
        n: usize,
    },
    Bulk {
        #[arg(long, default_value = "127.0.0.1:2526")]
        control: String,
        #[arg(long)]
        expect: u64,
        /// The herald process whose memory to watch.
        #[arg(long)]
        herald_pid: u32,
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// The command that starts the job.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Sink { port, control } => sink(port, control).await,
        Command::SinkAlone { addr, n, connections } => sink_alone(&addr, n, connections).await,
        Command::Broker { url, n, size } => broker(&url, n, size).await,
        Command::ResendLoad { target, concurrency, seconds, label, rate } => {
            resend_load(&target, concurrency, seconds, &label, rate).await
        }
        Command::ZitadelLoad { url, provider, key, concurrency, seconds } => {
            zitadel::zitadel_load(&url, &provider, &key, concurrency, seconds).await
        }
        Command::IdleLatency { target, control, n } => idle_latency(&target, &control, n).await,
        Command::Bulk { control, expect, herald_pid, timeout, command } => {
            bulk(&control, expect, herald_pid, timeout, &command).await
        }
    }
}

// ---- SMTP sink ----------------------------------------------------------------------

#[derive(Default)]
struct SinkStats {
    accepted: AtomicU64,
    ids: Mutex<HashSet<String>>,
}

async fn sink(port: u16, control: u16) -> anyhow::Result<()> {
    let stats = Arc::new(SinkStats::default());
    let smtp = TcpListener::bind(("127.0.0.1", port)).await.context("sink port")?;
    let ctl = TcpListener::bind(("127.0.0.1", control)).await.context("control port")?;
    let s = stats.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = ctl.accept().await {
            let accepted = s.accepted.load(Ordering::SeqCst);
            let unique = s.ids.lock().unwrap().len();
            let _ = sock.write_all(format!("{{\"accepted\":{accepted},\"unique\":{unique}}}\n").as_bytes()).await;
        }
    });
    eprintln!("sink: SMTP on 127.0.0.1:{port}, control on 127.0.0.1:{control}");
    loop {
        let (sock, _) = smtp.accept().await?;
        sock.set_nodelay(true)?;
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = smtp_session(sock, stats).await;
        });
    }
}

async fn smtp_session(sock: TcpStream, stats: Arc<SinkStats>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    w.write_all(b"220 sink ESMTP\r\n").await?;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.get(..4).map(|c| c.to_ascii_uppercase()).unwrap_or_default();
        match &cmd[..] {
            b"EHLO" => w.write_all(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n").await?,
            b"DATA" => {
                w.write_all(b"354 go ahead\r\n").await?;
                let mut message_id = None;
                let mut in_headers = true;
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    if in_headers {
                        if line == b"\r\n" {
                            in_headers = false;
                        } else if line.len() > 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
                            message_id = Some(String::from_utf8_lossy(&line[11..]).trim().to_string());
                        }
                    }
                }
                stats.accepted.fetch_add(1, Ordering::SeqCst);
                if let Some(id) = message_id {
                    stats.ids.lock().unwrap().insert(id);
                }
                w.write_all(b"250 OK\r\n").await?;
            }
            b"QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => w.write_all(b"250 OK\r\n").await?,
        }
    }
}

async fn sink_count(control: &str) -> anyhow::Result<(u64, u64)> {
    let mut s = TcpStream::connect(control).await.context("sink control")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    let v: serde_json::Value = serde_json::from_str(buf.trim())?;
    Ok((v["accepted"].as_u64().unwrap_or(0), v["unique"].as_u64().unwrap_or(0)))
}

// ---- the sink alone -------------------------------------------------------------------

async fn sink_alone(addr: &str, n: usize, connections: usize) -> anyhow::Result<()> {
    use lettre::transport::smtp::client::AsyncSmtpConnection;
    use lettre::transport::smtp::extension::ClientId;
    // A message of the size herald sends (about 8 KB with both parts).
    let body = format!(
        "From: herald <no-reply@localhost>\r\nTo: <a@example.com>\r\nSubject: Invitation\r\nMessage-ID: <{{ID}}@bench>\r\n\r\n{}\r\n",
        "x".repeat(76).repeat(100).as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\r\n")
    );
    let envelope = lettre::address::Envelope::new(Some("no-reply@localhost".parse()?), vec!["a@example.com".parse()?])?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (next, addr, body, envelope) = (next.clone(), addr.to_string(), body.clone(), envelope.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &ClientId::default()).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                conn.send(&envelope, body.replace("{ID}", &i.to_string()).as_bytes()).await?;
            }
            let _ = conn.quit().await;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("RESULT sink_alone n={n} connections={connections} seconds={secs:.2} per_second={:.0}", n as f64 / secs);
    Ok(())
}

// ---- the broker's own rates -----------------------------------------------------------

async fn broker(url: &str, n: usize, size: usize) -> anyhow::Result<()> {
    use lapin::options::*;
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let queue = format!("herald-bench-{}", std::process::id());
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let payload = vec![b'x'; size];
    let props = BasicProperties::default().with_delivery_mode(2);
    // Publish with at most 1,000 unconfirmed messages outstanding.
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for _ in 0..n {
        let confirm = ch
            .basic_publish("".into(), queue.as_str().into(), BasicPublishOptions::default(), &payload, props.clone())
            .await?;
        pending.push_back(confirm);
        if pending.len() >= 1_000 {
            pending.pop_front().unwrap().await?;
        }
    }
    for c in pending {
        c.await?;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let cch = conn.create_channel().await?;
    cch.basic_qos(1_000, BasicQosOptions::default()).await?;
    let mut consumer = cch
        .basic_consume(queue.as_str().into(), "bench".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let started = Instant::now();
    let mut got = 0;
    use futures_util::StreamExt;
    while got < n {
        let d = consumer.next().await.context("consumer ended")??;
        d.ack(BasicAckOptions::default()).await?;
        got += 1;
    }
    let consume_secs = started.elapsed().as_secs_f64();
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
    println!(
        "RESULT broker n={n} size={size} publish_per_second={:.0} consume_per_second={:.0}",
        n as f64 / publish_secs,
        n as f64 / consume_secs
    );
    Ok(())
}

// ---- resend load ------------------------------------------------------------------------

async fn pending_users(db: &str, org: &str) -> anyhow::Result<Vec<String>> {
    let pool = sqlx::PgPool::connect(db).await?;
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE org_id = $1 AND NOT initialized ORDER BY random()")
            .bind(org)
            .fetch_all(&pool)
            .await?;
    anyhow::ensure!(!ids.is_empty(), "no users in organization {org}");
    Ok(ids)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn resend_load(
    Target { url, token, db, org }: &Target,
    concurrency: usize,
    seconds: u64,
    label: &str,
    rate: f64,
) -> anyhow::Result<()> {
    let users = Arc::new(pending_users(db, org).await?);
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, users, next, errors) = (client.clone(), users.clone(), next.clone(), errors.clone());
        let (url, token) = (url.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let user = &users[i % users.len()];
                if rate > 0.0 {
                    // Request i is due at i/rate seconds; latency counts from then,
                    // so a server that falls behind is not flattered.
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t = Instant::now();
                let ok = client
                    .post(format!("{url}/v2/users/{user}/invite_code/resend"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                lat.push(t.elapsed().as_micros() as u64);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "RESULT {label} concurrency={concurrency} rate={rate} requests={} per_second={:.0} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} errors={}",
        all.len(),
        all.len() as f64 / secs,
        percentile(&all, 0.5),
        percentile(&all, 0.9),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(0) as f64 / 1000.0,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}

// ---- idle latency ---------------------------------------------------------------------------

async fn idle_latency(Target { url, token, db, org }: &Target, control: &str, n: usize) -> anyhow::Result<()> {
    let users = pending_users(db, org).await?;
    let client = reqwest::Client::new();
    let mut lat = Vec::with_capacity(n);
    let mut errors = 0;
    for i in 0..n {
        let (before, _) = sink_count(control).await?;
        let user = &users[i % users.len()];
        let t = Instant::now();
        let resp = client.post(format!("{url}/v2/users/{user}/invite_code/resend")).bearer_auth(token).send().await?;
        if !resp.status().is_success() {
            errors += 1;
            continue;
        }
        let deadline = t + Duration::from_secs(30);
        loop {
            if sink_count(control).await?.0 > before {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "mail {i} did not arrive within 30s");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        lat.push(t.elapsed().as_micros() as u64);
        // Idle: let the system settle between resends.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lat.sort_unstable();
    println!(
        "RESULT idle_latency n={} p50_ms={:.1} p95_ms={:.1} max_ms={:.1} errors={errors}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        lat.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    Ok(())
}

// ---- bulk ------------------------------------------------------------------------------------

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

async fn bulk(control: &str, expect: u64, herald_pid: u32, timeout: u64, command: &[String]) -> anyhow::Result<()> {
    let (before, unique_before) = sink_count(control).await?;
    let started = Instant::now();
    let status = tokio::process::Command::new(&command[0]).args(&command[1..]).status().await?;
    anyhow::ensure!(status.success(), "{command:?} failed: {status}");
    let published = started.elapsed().as_secs_f64();
    let deadline = started + Duration::from_secs(timeout);
    let mut peak = 0;
    let (accepted, unique) = loop {
        peak = peak.max(rss_kb(herald_pid, "VmRSS:"));
        let (a, u) = sink_count(control).await?;
        if a - before >= expect {
            break (a - before, u - unique_before);
        }
        anyhow::ensure!(Instant::now() < deadline, "only {} of {expect} mails in {timeout}s", a - before);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    // Anything still arriving would be a duplicate.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (late, _) = sink_count(control).await?;
    let hwm = rss_kb(herald_pid, "VmHWM:");
    println!(
        "RESULT bulk expect={expect} accepted={accepted} unique_message_ids={unique} after_end={} publish_seconds={published:.2} seconds={secs:.2} per_second={:.0} peak_rss_mb={:.0} hwm_rss_mb={:.0}",
        late - before - accepted,
        accepted as f64 / secs,
        peak as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}
