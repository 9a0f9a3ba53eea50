//! `Renderer`: the templates on a `SyncArbiter` (CPU-bound work off the async
//! threads). Stateless: a restart just keeps the shared compiled templates.

use std::sync::Arc;

use actix::prelude::*;

use super::{InviteData, RenderError, RenderedEmail, Templates};
use crate::domain::zitadel::TemplateData;

pub struct Renderer {
    templates: Arc<Templates>,
}

impl Renderer {
    /// Starts `threads` renderer threads over the same compiled templates.
    pub fn start(templates: Arc<Templates>, threads: usize) -> Addr<Renderer> {
        SyncArbiter::start(threads.max(1), move || Renderer { templates: templates.clone() })
    }
}

impl Actor for Renderer {
    type Context = SyncContext<Self>;
}

/// Request: the invite e-mail for this data.
#[derive(Message)]
#[rtype(result = "Result<RenderedEmail, RenderError>")]
pub struct RenderEmail(pub InviteData);

/// Request: the invite SMS for this data.
#[derive(Message)]
#[rtype(result = "Result<String, RenderError>")]
pub struct RenderSms(pub InviteData);

/// Request: a ZITADEL notification's e-mail, from its `templateData`.
#[derive(Message)]
#[rtype(result = "Result<RenderedEmail, RenderError>")]
pub struct RenderZitadelEmail(pub TemplateData);

impl Handler<RenderZitadelEmail> for Renderer {
    type Result = Result<RenderedEmail, RenderError>;

    fn handle(&mut self, msg: RenderZitadelEmail, _: &mut Self::Context) -> Self::Result {
        self.templates.zitadel.email(&msg.0)
    }
}

impl Handler<RenderEmail> for Renderer {
    type Result = Result<RenderedEmail, RenderError>;

    fn handle(&mut self, msg: RenderEmail, _: &mut Self::Context) -> Self::Result {
        self.templates.email(&msg.0)
    }
}

impl Handler<RenderSms> for Renderer {
    type Result = Result<String, RenderError>;

    fn handle(&mut self, msg: RenderSms, _: &mut Self::Context) -> Self::Result {
        self.templates.sms(&msg.0)
    }
}
