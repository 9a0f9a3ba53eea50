//! API.md §9: gRPC and gRPC-web. The same calls as REST and Connect, over tonic's
//! client (HTTP/2) and over gRPC-web on HTTP/1.1; reflection and health.

use herald::grpc::pb::zitadel::object::v2 as object;
use herald::grpc::pb::zitadel::org::v2 as org;
use herald::grpc::pb::zitadel::org::v2::organization_service_client::OrganizationServiceClient;
use herald::grpc::pb::zitadel::user::v2 as user;
use herald::grpc::pb::zitadel::user::v2::user_service_client::UserServiceClient;
use herald::grpc::status::detail;
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::helpers::{assert_error, ok_json, spawn_app, spawn_app_with, TestApp};

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(app.grpc_address.clone()).unwrap().connect().await.expect("the gRPC port accepts")
}

/// A message with `authorization: Bearer <token>` metadata.
fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// The details of a REST body, as protobuf (what gRPC must answer).
fn rest_details(body: &Value) -> object::Details {
    let ts = |v: &Value| {
        let t = chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
    };
    let d = &body["details"];
    object::Details {
        sequence: d["sequence"].as_str().unwrap().parse().unwrap(),
        change_date: Some(ts(&d["changeDate"])),
        resource_owner: d["resourceOwner"].as_str().unwrap().to_string(),
        creation_date: Some(ts(&d["creationDate"])),
    }
}

/// create → resend → verify (and the fixtures before them) through `users`, then
/// the user as REST reads it: the details each step answered match REST's.
async fn invite_flow<S>(app: &TestApp, users: &mut UserServiceClient<S>, org: &str)
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: Into<tonic::codegen::StdError>,
    S::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <S::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let t = &app.bootstrap;
    let human = user::AddHumanUserRequest {
        username: Some(format!("ada-{:08x}", rand::random::<u32>())),
        organization: Some(object::Organization { org: Some(object::organization::Org::OrgId(org.to_string())) }),
        profile: Some(user::SetHumanProfile {
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            ..Default::default()
        }),
        email: Some(user::SetHumanEmail { email: "ada@example.com".into(), verification: None }),
        ..Default::default()
    };
    let added = users.add_human_user(authed(t, human)).await.expect("AddHumanUser").into_inner();
    let id = added.user_id.clone();
    assert_eq!(added.details.as_ref().unwrap().resource_owner, org);

    let send = user::create_invite_code_request::Verification::SendCode(user::SendInviteCode {
        url_template: Some("https://acme.example/i?c={{.Code}}".into()),
        application_name: Some("Acme".into()),
    });
    let sent = users
        .create_invite_code(authed(t, user::CreateInviteCodeRequest { user_id: id.clone(), verification: Some(send) }))
        .await
        .expect("CreateInviteCode")
        .into_inner();
    assert_eq!(sent.invite_code, None);
    assert_eq!(sent.details.unwrap().sequence, 2);
    let resent = users
        .resend_invite_code(authed(t, user::ResendInviteCodeRequest { user_id: id.clone() }))
        .await
        .expect("ResendInviteCode")
        .into_inner();
    assert_eq!(resent.details.unwrap().sequence, 3);
    let d = app.deliveries(&id).await;
    assert_eq!(d.iter().map(|d| d.status.as_str()).collect::<Vec<_>>(), vec!["superseded", "queued"]);

    let ret = user::create_invite_code_request::Verification::ReturnCode(user::ReturnInviteCode {});
    let returned = users
        .create_invite_code(authed(t, user::CreateInviteCodeRequest { user_id: id.clone(), verification: Some(ret) }))
        .await
        .expect("CreateInviteCode (returnCode)")
        .into_inner();
    let code = returned.invite_code.expect("the code is returned");
    let verify = user::VerifyInviteCodeRequest { user_id: id.clone(), verification_code: code };
    let verified = users.verify_invite_code(authed(t, verify)).await.expect("VerifyInviteCode").into_inner();

    // The verification is the user's last change, as REST shows it; GetUserByID
    // answers REST's details exactly.
    let rest = ok_json(app.get(&format!("/v2/users/{id}"), t).await).await;
    let (v, r) = (verified.details.unwrap(), rest_details(&rest));
    assert_eq!((v.sequence, v.change_date, &v.resource_owner), (r.sequence, r.change_date, &r.resource_owner));
    let read = users.get_user_by_id(authed(t, user::GetUserByIdRequest { user_id: id.clone() })).await.unwrap();
    let read = read.into_inner();
    assert_eq!(read.details, Some(rest_details(&rest)));
    let u = read.user.unwrap();
    assert_eq!(u.state(), user::UserState::Active);
    assert_eq!(u.username, rest["user"]["username"].as_str().unwrap());
}

#[actix_web::test]
async fn a_zitadel_client_flow_over_grpc() {
    let app = spawn_app().await;
    let ch = channel(&app).await;
    let message = org::AddOrganizationRequest { name: "Acme".into(), ..Default::default() };
    let mut request = authed(&app.bootstrap, message);
    request.metadata_mut().insert("x-request-id", "grpc-test-1".parse().unwrap());
    let added = OrganizationServiceClient::new(ch.clone()).add_organization(request).await.expect("AddOrganization");
    assert_eq!(added.metadata().get("x-request-id").unwrap(), "grpc-test-1", "the caller's id comes back");
    let added = added.into_inner();
    assert_eq!(added.details.as_ref().unwrap().resource_owner, added.organization_id);
    assert_eq!(added.details.unwrap().sequence, 1);
    invite_flow(&app, &mut UserServiceClient::new(ch), &added.organization_id).await;
}

#[actix_web::test]
async fn a_zitadel_client_flow_over_grpc_web_on_http1() {
    let app = spawn_app().await;
    let org = app.create_org().await;
    // HTTP/1.1 only: the way a browser's gRPC-web reaches herald.
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let web = tower::Layer::layer(&tonic_web::GrpcWebClientLayer::new(), http);
    let mut users = UserServiceClient::with_origin(web, app.grpc_address.parse().unwrap());
    invite_flow(&app, &mut users, &org).await;
}

/// A gRPC error: its code, its `zitadel.v1.ErrorDetail` id, and its message.
fn grpc_error(s: &tonic::Status) -> (Code, String, String) {
    let d = detail(s).expect("an ErrorDetail in grpc-status-details-bin");
    (s.code(), d.id, s.message().to_string())
}

#[actix_web::test]
async fn grpc_errors_are_rest_errors_with_grpc_codes() {
    let app = spawn_app_with(|s| s.invite.max_codes_per_user_per_hour = 1).await;
    let (org, id) = app.org_and_user().await;
    let reader = app.token(Some(&org), &["user.read"]).await;
    let mut users = UserServiceClient::new(channel(&app).await);
    let resend = |token: &str, user_id: &str| authed(token, user::ResendInviteCodeRequest { user_id: user_id.into() });

    // Each case: the gRPC call, and the same call over REST.
    let missing = users.resend_invite_code(resend(&app.bootstrap, "999999")).await.unwrap_err();
    assert!(missing.metadata().get("x-request-id").is_some_and(|v| v.len() == 32), "{missing:?}");
    let rest = assert_error(app.resend("999999").await, 404, 5, "COMMAND-Wgvn4").await;
    assert_eq!(
        grpc_error(&missing),
        (Code::NotFound, "COMMAND-Wgvn4".into(), rest["message"].as_str().unwrap().into())
    );

    let no_code = users.resend_invite_code(resend(&app.bootstrap, &id)).await.unwrap_err();
    assert_eq!(grpc_error(&no_code).0, Code::FailedPrecondition);
    assert_eq!(grpc_error(&no_code).1, "COMMAND-Wr3gq");

    let denied = users.resend_invite_code(resend(&reader, &id)).await.unwrap_err();
    assert_eq!((denied.code(), detail(&denied).unwrap().id), (Code::PermissionDenied, "AUTH-AWfge".into()));

    let nobody = users.resend_invite_code(Request::new(user::ResendInviteCodeRequest { user_id: id.clone() }));
    assert_eq!(nobody.await.unwrap_err().code(), Code::Unauthenticated);
    let bad = users.get_user_by_id(authed(&app.bootstrap, user::GetUserByIdRequest { user_id: String::new() }));
    assert_eq!(grpc_error(&bad.await.unwrap_err()).1, "COMMAND-4jio3");

    // The second code in an hour: ResourceExhausted with retry-after.
    let ret = || Some(user::create_invite_code_request::Verification::ReturnCode(user::ReturnInviteCode {}));
    let create = |t: &str| authed(t, user::CreateInviteCodeRequest { user_id: id.clone(), verification: ret() });
    users.create_invite_code(create(&app.bootstrap)).await.expect("the first code");
    let limited = users.create_invite_code(create(&app.bootstrap)).await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted);
    let after: u64 = limited.metadata().get("retry-after").expect("retry-after").to_str().unwrap().parse().unwrap();
    assert!(after >= 1, "{after}");
    let rest = app.post(&format!("/v2/users/{id}/invite_code"), &app.bootstrap, &json!({"returnCode": {}})).await;
    assert_eq!(rest.status(), 429);
    assert_eq!(ok_id(rest).await, detail(&limited).unwrap().id);
}

async fn ok_id(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.unwrap();
    body["details"][0]["id"].as_str().unwrap().to_string()
}
