//! The operators' subcommands (`herald bulk-resend`, `herald deliveries …`,
//! `herald users import`). They work on the same database and broker as the
//! running herald, with the machine's own authority. Long work shows a progress
//! bar on a terminal and plain lines otherwise.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use crate::auth::Principal;
use crate::config::Settings;
use crate::domain::contact::{mask_email, mask_phone};
use crate::domain::{Channel, DeliveryStatus};
use crate::ops::{BulkService, ReplayOutcome, ReplayService, Selection};
use crate::queue::{AmqpLink, Publisher, Topology};
use crate::startup::{open_database, read_only_services, services};
use crate::store::deliveries::DeliveryFilter;

/// A progress display: a bar for people, a line every few seconds for logs.
pub struct Progress {
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl Progress {
    pub fn new(total: u64, what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(what.to_string());
            bar
        });
        Progress { bar, last_line: Instant::now() - Duration::from_secs(60) }
    }

    pub fn set_total(&self, total: u64) {
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
    }

    /// Shows `pos` of the total with a message; plain lines at most every 2 seconds.
    pub fn update(&mut self, pos: u64, total: u64, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.set_length(total);
                b.set_position(pos);
                b.set_message(msg.to_string());
            }
            None if self.last_line.elapsed() >= Duration::from_secs(2) => {
                eprintln!("{pos}/{total} {msg}");
                self.last_line = Instant::now();
            }
            None => {}
        }
    }

    pub fn finish(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.finish_with_message(msg.to_string()),
            None => eprintln!("{msg}"),
        }
    }
}

/// A publisher on its own link, for commands that put messages on the broker.
async fn publisher(settings: &Settings) -> anyhow::Result<(actix::Addr<Publisher>, Topology)> {
    let topology = Topology::new(&settings.amqp.prefix, &settings.delivery.retry_delays)
        .with_replicas(settings.amqp.quorum_replicas);
    let link = AmqpLink::start(settings.amqp.nodes(), topology.clone());
    let deadline = Instant::now() + Duration::from_secs(15);
    while !link.is_up() {
        anyhow::ensure!(Instant::now() < deadline, "amqp.url: the broker did not answer within 15s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((Publisher::start(link), topology))
}

/// `herald bulk-resend --org ID (--all-pending | --file ids.txt)`: publishes the
/// job, then follows it until every request is done and every delivery it made has
/// ended (unless `follow` is false).
pub async fn bulk_resend(settings: &Settings, org: &str, ids_file: Option<&Path>, follow: bool) -> anyhow::Result<()> {
    let pool = open_database(settings).await?;
    let s = services(settings, pool.clone()).await?;
    let (publisher, topology) = publisher(settings).await?;
    let bulk = BulkService::new(pool, s.ids, publisher, topology.exchange());
    let selection = match ids_file {
        None => Selection::AllPending,
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Selection::Ids(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from)
                    .collect(),
            )
        }
    };
    let started = Instant::now();
    let (job_id, total) =
        bulk.create_job(&Principal::cli(), org, selection).await.map_err(|e| anyhow::anyhow!(e.message()))?;
    println!("job {job_id}: {total} resend requests published");
    if !follow || total == 0 {
        return Ok(());
    }
    let mut progress = Progress::new(total as u64, "re-invites");
    loop {
        let st = bulk.status_of(&job_id).await.map_err(|e| anyhow::anyhow!(e.message()))?;
        let count = |s: DeliveryStatus| st.deliveries.get(s.as_str()).copied().unwrap_or(0);
        let sent = count(DeliveryStatus::Sent);
        let waiting: i64 = DeliveryStatus::WAITING.into_iter().map(count).sum();
        let failed: Vec<String> = st.failed.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let msg = format!(
            "resent {} · sent {sent} · failed {}{}",
            st.succeeded,
            st.failed.values().sum::<i64>(),
            if failed.is_empty() { String::new() } else { format!(" ({})", failed.join(", ")) }
        );
        progress.update(st.done as u64, st.total as u64, &msg);
        if st.finished_at.is_some() && waiting == 0 {
            let secs = started.elapsed().as_secs_f64();
            progress.finish(&format!("done in {secs:.1}s: {msg}"));
            let dead = count(DeliveryStatus::Dead);
            println!(
                "job {job_id}: {} resent, {} failed, {sent} delivered, {dead} dead ({:.0} re-invites/s)",
                st.succeeded,
                st.failed.values().sum::<i64>(),
                st.total as f64 / secs
            );
            for (id, n) in &st.failed {
                println!("  failed {id}: {n}");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `read_only`: the command only reads, and takes no ID node lease.
async fn replay_service(settings: &Settings, read_only: bool) -> anyhow::Result<ReplayService> {
    let pool = open_database(settings).await?;
    let s =
        if read_only { read_only_services(settings, pool.clone())? } else { services(settings, pool.clone()).await? };
    // No relay here: the running herald's relay publishes requeued rows within a
    // second.
    Ok(ReplayService::new(pool, s.invites, crate::metrics::Metrics::new(), None))
}

fn mask(channel: &str, recipient: &str) -> String {
    match Channel::from_db(channel) {
        Some(Channel::Sms) => mask_phone(recipient),
        _ => mask_email(recipient),
    }
}

/// `herald deliveries list`.
pub async fn list_deliveries(settings: &Settings, filter: DeliveryFilter, limit: i64) -> anyhow::Result<()> {
    let replay = replay_service(settings, true).await?;
    let (rows, next) =
        replay.list(&Principal::cli(), filter, limit, None).await.map_err(|e| anyhow::anyhow!(e.message()))?;
    println!(
        "{:<20} {:<10} {:<6} {:<24} {:>3}  {:<20} LAST ERROR",
        "ID", "STATUS", "CHAN", "RECIPIENT", "ATT", "CREATED"
    );
    for d in &rows {
        println!(
            "{:<20} {:<10} {:<6} {:<24} {:>3}  {:<20} {}",
            d.id,
            d.status,
            d.channel,
            mask(&d.channel, &d.recipient),
            d.attempts,
            d.created_at.format("%Y-%m-%d %H:%M:%S"),
            d.last_error.as_deref().unwrap_or("")
        );
    }
    if next.is_some() {
        eprintln!("(more: raise --limit)");
    }
    Ok(())
}

/// `herald deliveries show ID`.
pub async fn show_delivery(settings: &Settings, id: i64) -> anyhow::Result<()> {
    let replay = replay_service(settings, true).await?;
    let (d, attempts) = replay.get(&Principal::cli(), id).await.map_err(|e| anyhow::anyhow!(e.message()))?;
    println!("delivery   {}", d.id);
    match &d.user_id {
        Some(user) => println!("user       {user} (organization {})", d.org_id),
        None => println!("source     {} {} (organization {})", d.source, d.template, d.org_id),
    }
    println!("channel    {} to {}", d.channel, mask(&d.channel, &d.recipient));
    println!("status     {} after {} attempt(s)", d.status, d.attempts);
    println!("created    {}", d.created_at.to_rfc3339());
    if let Some(at) = d.sent_at {
        println!("sent       {}", at.to_rfc3339());
    }
    if let Some(e) = &d.last_error {
        println!("last error {e}");
    }
    for a in attempts {
        println!(
            "  attempt {} at {}: {} in {} ms {}",
            a.attempt,
            a.started_at.to_rfc3339(),
            a.outcome,
            a.duration_ms,
            a.error.unwrap_or_default()
        );
    }
    Ok(())
}

/// What `herald deliveries replay` selects.
pub enum ReplayTarget {
    One(i64),
    Matching { org: Option<String>, since: Option<DateTime<Utc>> },
}

/// `herald deliveries replay`.
pub async fn replay(settings: &Settings, target: ReplayTarget, dry_run: bool, reissue: bool) -> anyhow::Result<()> {
    let replay = replay_service(settings, dry_run).await?;
    let cli = Principal::cli();
    match target {
        ReplayTarget::One(id) => {
            if dry_run {
                let (d, _) = replay.get(&cli, id).await.map_err(|e| anyhow::anyhow!(e.message()))?;
                println!("delivery {id} is {} (dry run: nothing changed)", d.status);
                return Ok(());
            }
            match replay.replay_one(&cli, id, reissue).await.map_err(|e| anyhow::anyhow!(e.message()))? {
                ReplayOutcome::Requeued => println!("delivery {id} requeued"),
                ReplayOutcome::Reissued { delivery_id } => {
                    println!("delivery {id} superseded by a new code (delivery {})", delivery_id.unwrap_or_default())
                }
            }
        }
        ReplayTarget::Matching { org, since } => {
            let filter = DeliveryFilter {
                status: Some(DeliveryStatus::Dead.as_str().into()),
                org_id: org,
                since,
                ..Default::default()
            };
            let r = replay
                .replay_matching(&cli, filter, dry_run, reissue)
                .await
                .map_err(|e| anyhow::anyhow!(e.message()))?;
            let skipped: Vec<String> = r.skipped.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "matched {} · replayed {} · skipped {}{}",
                r.matched,
                r.replayed,
                r.skipped.values().sum::<u64>(),
                if skipped.is_empty() { String::new() } else { format!(" ({})", skipped.join(", ")) }
            );
            if dry_run {
                println!("(dry run: nothing changed)");
            }
        }
    }
    // What a reissue counted for its organization, written before the command ends.
    replay.invites().write_org_counts().await;
    Ok(())
}

/// `herald users import FILE --org ID`.
pub async fn import_users(settings: &Settings, file: &Path, org: &str) -> anyhow::Result<()> {
    let pool = open_database(settings).await?;
    let s = services(settings, pool.clone()).await?;
    // The number of lines, for the bar: a cheap streaming pass over the file.
    let lines = {
        use std::io::Read;
        let mut f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
        let (mut buf, mut n) = (vec![0u8; 1 << 16], 0usize);
        loop {
            let read = f.read(&mut buf)?;
            if read == 0 {
                break n;
            }
            n += buf[..read].iter().filter(|b| **b == b'\n').count();
        }
    };
    let mut progress = Progress::new(lines as u64, "import");
    let started = Instant::now();
    let report = crate::ops::import::import_users(&pool, &s.ids, org, file, |p| {
        progress.update(
            p.lines_read as u64,
            lines as u64,
            &format!("imported {} · rejected {}", p.imported, p.rejected),
        );
    })
    .await?;
    progress.finish(&format!("imported {} users in {:.1}s", report.imported, started.elapsed().as_secs_f64()));
    for r in &report.rejected {
        println!("line {}: {}", r.line, r.reason);
    }
    println!("imported {}, rejected {}", report.imported, report.rejected.len());
    Ok(())
}
