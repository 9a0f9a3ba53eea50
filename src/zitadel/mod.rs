//! herald as ZITADEL's HTTP notification provider (docs/ARCHITECTURE.md, "ZITADEL's
//! notifications"; API.md §8).
//!
//! ZITADEL (v2.62+) can hand each e-mail and SMS it would send to an HTTP provider:
//! one signed JSON post per message. herald registers such providers per
//! organization ([`provider`]), checks each post's signature over the raw bytes
//! ([`signature`]), reads the message ([`Message`]) and stores it with a delivery
//! row in the outbox in one transaction ([`receive`]); from there the delivery
//! travels herald's queues, retries and dead letters like an invite's.
//!
//! - [`signature`]: the `ZITADEL-Signature` header, parsed and verified (pure).
//! - `domain::zitadel`: the payload types and the dedupe key (pure, below the
//!   delivery pipeline and the renderer, which use them too).
//! - [`provider`]: register, list, change and remove providers (`provider.write`).
//! - [`receive`]: the receiving endpoint's rule: provider, signature, message, store.
//! - [`cli`]: `herald zitadel-provider add|list|remove`.

pub mod cli;
pub mod provider;
pub mod receive;
pub mod signature;

use std::sync::Arc;

pub use crate::domain::zitadel::{Message, TemplateData};
pub use provider::{NewProvider, Provider, ProviderPatch, ProviderService};
pub use receive::{Accepted, GroupedReceiver, Receiver};

/// The provider service and the receiver, wired to herald's pool, cipher and ids.
pub fn services(
    settings: &crate::config::Settings,
    cipher: &crate::domain::CodeCipher,
    ids: &Arc<crate::domain::IdGenerator>,
    pool: sqlx::PgPool,
    metrics: &crate::metrics::Metrics,
    kick: crate::invite::DeliveryHook,
) -> (ProviderService, Receiver) {
    let providers = ProviderService::new(pool.clone(), cipher.clone());
    let receiver = Receiver::new(
        pool,
        cipher.clone(),
        ids.clone(),
        metrics.clone(),
        settings.zitadel.signature_tolerance,
        Some(kick),
    );
    (providers, receiver)
}

/// The path ZITADEL is configured to post to for `provider_id`.
pub fn notification_path(provider_id: &str) -> String {
    format!("/zitadel/v1/notifications/{provider_id}")
}
