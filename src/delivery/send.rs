//! The last step of an attempt: hand what was rendered to the e-mail or SMS sender
//! and read its answer as an [`Attempted`] (docs/ARCHITECTURE.md, "Retries": a
//! template that fails is permanent, a renderer or sender that is gone transient).

use actix::MailboxError;

use super::pipeline::Pipeline;
use super::retry::Attempted;
use crate::channels::{Accepted, OutgoingEmail, OutgoingSms, SendEmail, SendError, SendSms};
use crate::render::{InviteData, RenderEmail, RenderError, RenderSms, RenderedEmail};
use crate::store::deliveries::DeliveryContext;

impl Pipeline {
    pub(super) async fn send_email(&self, ctx: &DeliveryContext, data: InviteData) -> Attempted {
        let display_name = data.display_name.clone();
        let rendered = self.renderer.send(RenderEmail(data)).await;
        self.mail_rendered(ctx, display_name, rendered).await
    }

    pub(super) async fn send_sms(&self, ctx: &DeliveryContext, data: InviteData) -> Attempted {
        match made(self.renderer.send(RenderSms(data)).await) {
            Ok(body) => self.text(ctx, body).await,
            Err(failed) => failed,
        }
    }

    /// Sends what a renderer made of a delivery, whichever template it used.
    pub(super) async fn mail_rendered(
        &self,
        ctx: &DeliveryContext,
        to_name: String,
        rendered: Result<Result<RenderedEmail, RenderError>, MailboxError>,
    ) -> Attempted {
        let rendered = match made(rendered) {
            Ok(r) => r,
            Err(failed) => return failed,
        };
        let mail = OutgoingEmail {
            delivery_id: ctx.id,
            to_address: ctx.recipient.clone(),
            to_name,
            subject: rendered.subject,
            html: rendered.html,
            text: rendered.text,
        };
        answered(self.email.send(SendEmail(mail)).await, "e-mail")
    }

    /// Sends `body` as the delivery's SMS.
    pub(super) async fn text(&self, ctx: &DeliveryContext, body: String) -> Attempted {
        answered(
            self.sms.send(SendSms(OutgoingSms { delivery_id: ctx.id, to: ctx.recipient.clone(), body })).await,
            "SMS",
        )
    }
}

/// A renderer's answer: what it made, or the attempt's failure (a template that
/// fails is permanent, a renderer that is gone transient).
fn made<T>(rendered: Result<Result<T, RenderError>, MailboxError>) -> Result<T, Attempted> {
    match rendered {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(Attempted::Failed(SendError::permanent(e.to_string()))),
        Err(e) => Err(Attempted::Failed(SendError::transient(format!("renderer unavailable: {e}")))),
    }
}

/// A sender's answer as the attempt's result (a sender that is gone is transient).
fn answered(sent: Result<Result<Accepted, SendError>, MailboxError>, sender: &str) -> Attempted {
    match sent {
        Ok(Ok(accepted)) => Attempted::Sent(accepted.provider_message_id),
        Ok(Err(e)) => Attempted::Failed(e),
        Err(e) => Attempted::Failed(SendError::transient(format!("{sender} sender unavailable: {e}"))),
    }
}
