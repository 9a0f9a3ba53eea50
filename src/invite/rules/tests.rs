//! One test per branch of [`super::plan`], in the order the checks run.

use std::time::Duration;

use super::*;
use crate::invite::SendCode;
use crate::store::users::UserRow;

const EMAIL: &str = "ada@example.com";
const PHONE: &str = "+41790000000";
const ORG: &str = "org-1";
const TEMPLATE: &str = "https://app.example.com/invite?userID={{.UserID}}&code={{.Code}}";

fn now() -> DateTime<Utc> {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

fn settings() -> InviteSettings {
    InviteSettings {
        code_length: 6,
        code_ttl: Duration::from_secs(72 * 3600),
        default_url_template: UrlTemplate::parse("https://default.example.com/?code={{.Code}}").unwrap(),
        default_application_name: "Default".into(),
        max_codes_per_user_per_hour: 10,
        limits: crate::invite::Limits { per_recipient: 20, per_org: 1000 },
    }
}

fn user(email: Option<&str>, phone: Option<&str>) -> UserWithOrg {
    UserWithOrg {
        user: UserRow {
            id: "u1".into(),
            org_id: ORG.into(),
            username: "ada".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            display_name: "Ada Lovelace".into(),
            preferred_language: None,
            email: email.map(str::to_string),
            email_verified: false,
            phone: phone.map(str::to_string),
            phone_verified: false,
            initialized: false,
            state: "active".into(),
            sequence: 1,
            created_at: now(),
            changed_at: now(),
        },
        org_default_language: "de".into(),
    }
}

/// A code sent before by `channel`, with its own settings to inherit.
fn sent(channel: Channel) -> InviteCodeRow {
    InviteCodeRow {
        user_id: "u1".into(),
        code_encrypted: Some(vec![1, 2, 3]),
        expires_at: now(),
        url_template: TEMPLATE.into(),
        application_name: "Inherited".into(),
        channel: channel.as_str().into(),
        returned: false,
        failed_checks: 0,
        event_sequence: 2,
        created_at: now(),
    }
}

/// Everything `plan` reads, set up for success; each test changes one thing.
struct Case {
    caller: Principal,
    op: Issue,
    req: CreateRequest,
    ctx: IssueContext,
    locked: Option<UserWithOrg>,
    history: Option<History>,
}

impl Case {
    fn create() -> Self {
        Case {
            caller: Principal::cli(),
            op: Issue::Create,
            req: CreateRequest::default(),
            ctx: IssueContext::default(),
            locked: Some(user(Some(EMAIL), Some(PHONE))),
            history: Some(History::default()),
        }
    }

    fn resend(previous: InviteCodeRow) -> Self {
        Case {
            op: Issue::Resend,
            history: Some(History { previous: Some(previous), ..History::default() }),
            ..Case::create()
        }
    }

    fn decide(&self) -> Result<Plan, Error> {
        let item =
            IssueItem { caller: &self.caller, user_id: "u1", op: self.op, req: self.req.clone(), ctx: &self.ctx };
        plan(&item, self.locked.clone(), self.history.clone(), &settings(), now())
    }

    /// The refusal's kind and id.
    fn refused(&self) -> (Kind, String) {
        let e = self.decide().expect_err("refused");
        (e.kind, e.id.to_string())
    }
}

fn send_code(url_template: Option<&str>, application_name: Option<&str>, channel: Option<Channel>) -> CreateRequest {
    CreateRequest {
        send_code: Some(SendCode {
            url_template: url_template.map(str::to_string),
            application_name: application_name.map(str::to_string),
            channel,
        }),
        return_code: false,
    }
}

#[test]
fn a_missing_deleted_or_foreign_user_is_not_found() {
    let missing = Case { locked: None, ..Case::create() };
    let mut deleted = Case::create();
    deleted.locked.as_mut().unwrap().user.state = "deleted".into();
    let foreign = Case { caller: Principal { org_id: Some("org-2".into()), ..Principal::cli() }, ..Case::create() };
    let other_job_org =
        Case { ctx: IssueContext { org_id: Some("org-2".into()), ..Default::default() }, ..Case::create() };

    for case in [missing, deleted, foreign, other_job_org] {
        assert_eq!(case.refused(), (Kind::NotFound, ids::USER_NOT_FOUND.to_string()));
    }
}

#[test]
fn a_user_of_the_callers_own_organization_is_visible() {
    let own = Case { caller: Principal { org_id: Some(ORG.into()), ..Principal::cli() }, ..Case::create() };

    assert_eq!(own.decide().unwrap().org_id, ORG);
}

#[test]
fn no_history_read_is_an_internal_error() {
    let case = Case { history: None, ..Case::create() };

    assert_eq!(case.refused().0, Kind::Internal);
}

#[test]
fn a_request_its_bulk_job_already_answered_is_done() {
    let case = Case { history: Some(History { job_done: true, ..History::default() }), ..Case::create() };

    assert_eq!(case.refused(), (Kind::AlreadyExists, ids::BULK_DONE.to_string()));
}

#[test]
fn a_caller_without_user_write_is_denied() {
    let case =
        Case { caller: Principal { permissions: vec![Permission::UserRead], ..Principal::cli() }, ..Case::create() };

    assert_eq!(case.refused(), (Kind::PermissionDenied, ids::PERMISSION_DENIED.to_string()));
}

#[test]
fn send_code_and_return_code_together_are_invalid() {
    let mut case = Case { req: send_code(None, None, None), ..Case::create() };
    case.req.return_code = true;

    assert_eq!(case.refused(), (Kind::InvalidArgument, ids::VALIDATION.to_string()));
}

#[test]
fn a_bad_url_template_or_application_name_is_invalid() {
    let template = Case { req: send_code(Some("{{.Nope}}"), None, None), ..Case::create() };
    let name = Case { req: send_code(None, Some("two\nlines"), None), ..Case::create() };

    assert_eq!(template.refused().0, Kind::InvalidArgument);
    assert_eq!(name.refused(), (Kind::InvalidArgument, ids::VALIDATION.to_string()));
}

#[test]
fn an_initialized_user_gets_no_code() {
    let mut case = Case::create();
    case.locked.as_mut().unwrap().user.initialized = true;

    assert_eq!(case.refused(), (Kind::FailedPrecondition, ids::ALREADY_INITIALIZED.to_string()));
}

#[test]
fn a_resend_needs_a_previous_code_that_was_sent() {
    let never = Case { history: Some(History::default()), ..Case::resend(sent(Channel::Email)) };
    let returned = Case::resend(InviteCodeRow { returned: true, ..sent(Channel::Email) });

    for case in [never, returned] {
        assert_eq!(case.refused(), (Kind::FailedPrecondition, ids::CODE_NOT_FOUND.to_string()));
    }
}

#[test]
fn a_resend_inherits_the_superseded_codes_settings() {
    let plan = Case::resend(sent(Channel::Sms)).decide().unwrap();

    assert_eq!(plan.url_template.as_str(), TEMPLATE);
    assert_eq!(plan.application_name, "Inherited");
    assert_eq!((plan.channel, plan.recipient.as_deref()), (Channel::Sms, Some(PHONE)));
}

#[test]
fn what_the_request_names_wins_over_what_is_inherited() {
    let case = Case {
        req: send_code(Some("https://other.example.com/?c={{.Code}}"), Some("Named"), Some(Channel::Email)),
        history: Some(History { previous: Some(sent(Channel::Sms)), ..History::default() }),
        ..Case::create()
    };

    let plan = case.decide().unwrap();

    assert_eq!(plan.url_template.as_str(), "https://other.example.com/?c={{.Code}}");
    assert_eq!(plan.application_name, "Named");
    assert_eq!(plan.channel, Channel::Email);
}

#[test]
fn a_first_code_takes_the_configured_defaults() {
    let plan = Case::create().decide().unwrap();

    assert_eq!(plan.url_template, settings().default_url_template);
    assert_eq!(plan.application_name, "Default");
    assert_eq!((plan.channel, plan.recipient.as_deref()), (Channel::Email, Some(EMAIL)));
}

#[test]
fn a_sent_code_goes_to_the_channel_asked_for_else_email_else_sms() {
    let asked = Case { req: send_code(None, None, Some(Channel::Sms)), ..Case::create() };
    let phone_only = Case { locked: Some(user(None, Some(PHONE))), ..Case::create() };

    assert_eq!(asked.decide().unwrap().recipient.as_deref(), Some(PHONE));
    assert_eq!(phone_only.decide().unwrap().channel, Channel::Sms);
}

#[test]
fn a_user_without_the_contact_to_use_is_a_failed_precondition() {
    let none = Case { locked: Some(user(None, None)), ..Case::create() };
    let no_phone = Case {
        req: send_code(None, None, Some(Channel::Sms)),
        locked: Some(user(Some(EMAIL), None)),
        ..Case::create()
    };

    for case in [none, no_phone] {
        assert_eq!(case.refused(), (Kind::FailedPrecondition, ids::NO_CONTACT.to_string()));
    }
}

#[test]
fn a_returned_code_goes_nowhere_but_names_the_contact_it_verifies() {
    let returned =
        |locked| Case { req: CreateRequest { return_code: true, ..Default::default() }, locked, ..Case::create() };

    let by_email = returned(Some(user(Some(EMAIL), Some(PHONE)))).decide().unwrap();
    let by_sms = returned(Some(user(None, Some(PHONE)))).decide().unwrap();
    let no_contact = returned(Some(user(None, None))).decide().unwrap();

    assert_eq!((by_email.channel, by_email.recipient, by_email.returned), (Channel::Email, None, true));
    assert_eq!(by_sms.channel, Channel::Sms);
    assert_eq!(no_contact.channel, Channel::Email, "nothing is sent, so no contact is needed");
}

#[test]
fn the_rate_limit_refuses_the_code_past_the_hourly_maximum_and_says_when_to_retry() {
    let oldest = now() - TimeDelta::minutes(50);
    let history = |recent_codes| History { recent_codes, oldest_recent: Some(oldest), ..History::default() };
    let at_limit = Case { history: Some(history(10)), ..Case::create() };
    let below = Case { history: Some(history(9)), ..Case::create() };

    let e = at_limit.decide().unwrap_err();

    assert_eq!((e.kind, e.id.as_ref()), (Kind::ResourceExhausted, ids::RATE_LIMITED));
    // The oldest code leaves the window in ten minutes; rounded up by a second.
    assert_eq!(e.retry_after, Some(Duration::from_secs(601)));
    assert!(below.decide().is_ok());
}

#[test]
fn a_code_expires_after_the_configured_lifetime() {
    let plan = Case::create().decide().unwrap();

    assert_eq!(plan.expires_at, now() + TimeDelta::hours(72));
}

#[test]
fn the_delivery_speaks_the_users_language_else_the_organizations() {
    let mut preferred = Case::create();
    preferred.locked.as_mut().unwrap().user.preferred_language = Some("fr".into());

    assert_eq!(preferred.decide().unwrap().locale, "fr");
    assert_eq!(Case::create().decide().unwrap().locale, "de");
}

#[test]
fn bulk_requests_travel_the_bulk_lane() {
    let bulk = Case { ctx: IssueContext { bulk: true, ..Default::default() }, ..Case::create() };

    assert_eq!(bulk.decide().unwrap().lane, Lane::Bulk);
    assert_eq!(Case::create().decide().unwrap().lane, Lane::Transactional);
}

#[test]
fn contact_prefers_email_then_phone() {
    assert_eq!(resolve_contact(None, Some("a@b.c"), Some("+41")).unwrap().0, Channel::Email);
    assert_eq!(resolve_contact(None, None, Some("+41")).unwrap().0, Channel::Sms);
    assert_eq!(resolve_contact(Some(Channel::Sms), Some("a@b.c"), Some("+41")).unwrap().0, Channel::Sms);
}

#[test]
fn a_channel_without_an_address_is_a_failed_precondition() {
    let e = resolve_contact(Some(Channel::Sms), Some("a@b.c"), None).unwrap_err();
    assert_eq!((e.kind, e.id.as_ref()), (Kind::FailedPrecondition, ids::NO_CONTACT));
    assert_eq!(resolve_contact(None, None, None).unwrap_err().id, ids::NO_CONTACT);
}
