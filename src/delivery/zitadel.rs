//! The attempt of a ZITADEL delivery (docs/ARCHITECTURE.md, "ZITADEL's
//! notifications"): the stored message is opened and rendered in herald's layout,
//! then sent like an invite. An invite of a provider that chose herald's invite
//! template is sent as herald's invite instead. Claim, retries, dead letters and
//! the attempt log are the pipeline's, unchanged.

use super::pipeline::Pipeline;
use super::retry::Attempted;
use crate::channels::SendError;
use crate::domain::zitadel::Message;
use crate::domain::{Channel, DeliveryStatus, LoginMethod};
use crate::render::zitadel_invite::{invite_data, InviteContext};
use crate::render::{zitadel::sms, RenderZitadelEmail};
use crate::store::{deliveries::DeliveryContext, zitadel::StoredMessage};

impl Pipeline {
    /// Opens the message sealed to this delivery and sends it. A message that does
    /// not open or parse is a permanent failure: it will not get better.
    pub(super) async fn attempt_zitadel(&self, ctx: &DeliveryContext, stored: &StoredMessage) -> Attempted {
        let message = self
            .cipher
            .open_bytes(&stored.message_encrypted, &ctx.id.to_string())
            .map_err(|e| SendError::permanent(e.to_string()))
            .and_then(|body| Message::parse(&body, ctx.channel).map_err(|e| SendError::permanent(e.message())));
        let message = match message {
            Ok(m) => m,
            Err(e) => return Attempted::Failed(e),
        };
        if stored.use_herald_invite_template {
            let login_methods: Vec<LoginMethod> =
                ctx.login_methods.iter().filter_map(|m| LoginMethod::parse(m)).collect();
            let context = InviteContext {
                org_name: &ctx.org_name,
                org_language: &stored.org_language,
                login_methods: &login_methods,
                defaults: &self.invite_defaults,
                received_at: stored.received_at,
            };
            if let Some(data) = invite_data(&message, &context) {
                return match ctx.channel {
                    Channel::Email => self.send_email(ctx, data).await,
                    Channel::Sms => self.send_sms(ctx, data).await,
                };
            }
        }
        match ctx.channel {
            Channel::Email => {
                let to_name = crate::render::zitadel::unescape(&message.arg("displayName"));
                let rendered = self.renderer.send(RenderZitadelEmail(message.template)).await;
                self.mail_rendered(ctx, to_name, rendered).await
            }
            Channel::Sms => {
                let body = sms(&message.template);
                if body.is_empty() {
                    return Attempted::Failed(SendError::permanent("templateData.text is empty"));
                }
                self.text(ctx, body).await
            }
        }
    }

    /// Counts a ZITADEL delivery that ended (sent or dead) under its provider and
    /// event type.
    pub(super) fn count_zitadel(&self, ctx: &DeliveryContext, status: DeliveryStatus) {
        let outcome = match status {
            DeliveryStatus::Sent => "delivered",
            DeliveryStatus::Dead => "dead",
            _ => return,
        };
        if let Some(z) = &ctx.zitadel {
            self.metrics.zitadel_message(&z.provider_id, &z.event_type, outcome);
        }
    }
}
