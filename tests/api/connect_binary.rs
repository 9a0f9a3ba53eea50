//! API.md §6: Connect's binary codec (`application/proto`), as
//! `@connectrpc/connect-node` sends it by default: the same calls and details as
//! JSON, errors still Connect JSON bodies.

use herald::grpc::pb::zitadel::org::v2 as org;
use herald::grpc::pb::zitadel::user::v2 as user;
use prost::Message;
use serde_json::json;

use crate::helpers::{assert_connect_error, ok_json, spawn_app, TestApp};

async fn call<T: Message + Default>(app: &TestApp, method: &str, message: &impl Message) -> T {
    let resp = post(app, method, message.encode_to_vec()).await;
    assert_eq!(resp.status(), 200, "{method}");
    assert_eq!(resp.headers()["content-type"], "application/proto");
    T::decode(resp.bytes().await.unwrap()).expect("a protobuf answer")
}

async fn post(app: &TestApp, method: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/{method}")))
        .bearer_auth(&app.bootstrap)
        .header("content-type", "application/proto")
        .header("connect-protocol-version", "1")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_zitadel_client_flow_over_binary_connect() {
    let app = spawn_app().await;
    let added: org::AddOrganizationResponse = call(
        &app,
        "zitadel.org.v2.OrganizationService/AddOrganization",
        &org::AddOrganizationRequest { name: "Acme".into(), ..Default::default() },
    )
    .await;
    let org = added.organization_id;
    let id = app.create_user(&org, Some("ada@example.com"), None).await;

    let send = user::create_invite_code_request::Verification::SendCode(user::SendInviteCode::default());
    let create = user::CreateInviteCodeRequest { user_id: id.clone(), verification: Some(send) };
    let sent: user::CreateInviteCodeResponse =
        call(&app, "zitadel.user.v2.UserService/CreateInviteCode", &create).await;
    assert_eq!((sent.invite_code, sent.details.unwrap().sequence), (None, 2));
    let resend = user::ResendInviteCodeRequest { user_id: id.clone() };
    let resent: user::ResendInviteCodeResponse =
        call(&app, "zitadel.user.v2.UserService/ResendInviteCode", &resend).await;
    assert_eq!(resent.details.as_ref().unwrap().sequence, 3);
    assert_eq!(resent.details.unwrap().resource_owner, org);

    let (code, _) = app.returned_code(&id).await;
    let verify = user::VerifyInviteCodeRequest { user_id: id.clone(), verification_code: code };
    let verified: user::VerifyInviteCodeResponse =
        call(&app, "zitadel.user.v2.UserService/VerifyInviteCode", &verify).await;
    let read: user::GetUserByIdResponse =
        call(&app, "zitadel.user.v2.UserService/GetUserByID", &user::GetUserByIdRequest { user_id: id.clone() }).await;
    assert_eq!(verified.details.unwrap().sequence, read.details.as_ref().unwrap().sequence);
    // The same sequence and user JSON shows.
    let json =
        ok_json(app.connect("zitadel.user.v2.UserService/GetUserByID", &app.bootstrap, &json!({"userId": id})).await)
            .await;
    assert_eq!(read.details.unwrap().sequence.to_string(), json["details"]["sequence"].as_str().unwrap());
    assert_eq!(read.user.unwrap().state(), user::UserState::Active);
}

#[actix_web::test]
async fn binary_connect_errors_are_connect_json() {
    let app = spawn_app().await;
    let resend = user::ResendInviteCodeRequest { user_id: "999999".into() };
    let resp = post(&app, "zitadel.user.v2.UserService/ResendInviteCode", resend.encode_to_vec()).await;
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_connect_error(resp, 404, "not_found", "COMMAND-Wgvn4").await;

    // Bytes that are not a protobuf message.
    let resp = post(&app, "zitadel.user.v2.UserService/ResendInviteCode", vec![0xff, 0xff, 0xff]).await;
    assert_connect_error(resp, 400, "invalid_argument", "API-body").await;

    // A codec herald does not speak names the two it does.
    let resp = app
        .client
        .post(app.url("/zitadel.user.v2.UserService/ResendInviteCode"))
        .header("content-type", "application/xml")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(resp.headers()["accept-post"], "application/json, application/proto");

    // A served method over another HTTP method: 405, POST allowed.
    let resp = app.client.get(app.url("/zitadel.user.v2.UserService/GetUserByID")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["code"], "unimplemented");
}
