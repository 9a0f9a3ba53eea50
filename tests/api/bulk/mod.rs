//! API.md §4: bulk re-invites, by feature: jobs through `POST /admin/v1/bulk/resend`
//! and `GET /admin/v1/bulk/{jobId}` (`jobs`), transactional resends that never wait
//! behind a job (`lanes`), requests that outside producers publish on the broker
//! themselves (`producers`), and what is retried or parked (`retries`).

use std::collections::HashMap;

mod jobs;
mod lanes;
mod producers;
mod retries;

/// The recipients' codes, in the order their mails arrived.
fn codes_by_recipient(mails: &[crate::smtp::Mail]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for m in mails {
        assert_eq!(m.to.len(), 1, "one recipient per mail: {:?}", m.to);
        out.entry(m.to[0].to_ascii_lowercase()).or_default().push(m.code_from_link());
    }
    out
}
