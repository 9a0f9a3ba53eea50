//! `zitadel-load`: ZITADEL's HTTP provider posts, signed as ZITADEL signs them
//! (`ZITADEL-Signature: t=…,v1=hex(HMAC-SHA256(key, "<t>." + body))`), at a fixed
//! concurrency for a fixed time. Each post carries a new code, so each is a new
//! message (and, with the workers on, a mail to the sink).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

fn message(i: usize) -> Vec<u8> {
    let code = format!("Z{i:07}");
    serde_json::to_vec(&serde_json::json!({
        "contextInfo": {
            "eventType": "user.human.invite.code.added",
            "provider": {"id": "bench", "description": "bench"},
            "recipientEmailAddress": format!("user{i}@bench.example")
        },
        "templateData": {
            "title": "Invitation", "preHeader": "Invitation", "subject": "Invitation to Bench",
            "greeting": "Hello,", "text": format!("Your code is {code}."),
            "url": format!("https://bench.example/ui/login/user/invite?userID={i}&code={code}"),
            "buttonText": "Accept invitation", "primaryColor": "#5469d4", "backgroundColor": "#fafafa",
            "fontColor": "#000000", "fontFamily": "Lato, sans-serif", "includeFooter": false
        },
        "args": {"userID": i.to_string(), "orgID": "bench", "code": code, "expiry": 259200000000000u64}
    }))
    .expect("a JSON value serialises")
}

fn signature(key: &str, t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub async fn zitadel_load(
    url: &str,
    provider: &str,
    key: &str,
    concurrency: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let target = format!("{url}/zitadel/v1/notifications/{provider}");
    // A run's codes must not repeat an earlier run's (they would be duplicates).
    let base =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as usize % 1_000_000 * 1_000;
    let next = Arc::new(AtomicUsize::new(base));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, errors, target, key) =
            (client.clone(), next.clone(), errors.clone(), target.clone(), key.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let body = message(next.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs());
                let sig = signature(&key, now.unwrap_or(0), &body);
                let ok = client
                    .post(&target)
                    .header("content-type", "application/json")
                    .header("Zitadel-Signature", sig)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status() == reqwest::StatusCode::ACCEPTED)
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
        "RESULT zitadel concurrency={concurrency} requests={} per_second={:.0} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} errors={}",
        all.len(),
        all.len() as f64 / secs,
        crate::percentile(&all, 0.5),
        crate::percentile(&all, 0.9),
        crate::percentile(&all, 0.99),
        all.last().copied().unwrap_or(0) as f64 / 1000.0,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
