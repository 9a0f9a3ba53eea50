//! API.md §9: what gRPC tooling expects besides the calls: reflection (grpcurl),
//! the health service (Kubernetes probes), UNIMPLEMENTED for unknown methods, and
//! gRPC-web's `-text` codec and CORS on plain HTTP/1.1.

use base64::Engine;
use prost::Message;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

use crate::helpers::{spawn_app, spawn_app_with};

async fn channel(address: &str) -> Channel {
    Channel::from_shared(address.to_string()).unwrap().connect().await.expect("the gRPC port accepts")
}

#[actix_web::test]
async fn reflection_lists_the_two_services_and_health_says_serving() {
    let app = spawn_app().await;
    let ch = channel(&app.grpc_address).await;
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::iter(vec![ask]))
        .await
        .expect("reflection answers")
        .into_inner();
    let first = answers.next().await.expect("one answer").expect("no error");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else { panic!("{first:?}") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in ["zitadel.user.v2.UserService", "zitadel.org.v2.OrganizationService"] {
        assert!(names.iter().any(|n| n == service), "{service} not in {names:?}");
    }

    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    for service in ["", "zitadel.user.v2.UserService", "zitadel.org.v2.OrganizationService"] {
        let r = health.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.unwrap();
        assert_eq!(r.into_inner().status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
    }
}

#[actix_web::test]
async fn an_unknown_method_is_unimplemented() {
    let app = spawn_app().await;
    let mut grpc = tonic::client::Grpc::new(channel(&app.grpc_address).await);
    for path in ["/zitadel.user.v2.UserService/DeleteUser", "/zitadel.session.v2.SessionService/CreateSession"] {
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let r = grpc.unary(tonic::Request::new(()), path.parse().unwrap(), codec).await;
        assert_eq!(r.unwrap_err().code(), Code::Unimplemented, "{path}");
    }
}

/// One gRPC-web frame: flag, big-endian length, bytes.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[actix_web::test]
async fn grpc_web_text_on_http1_with_cors_for_the_configured_origin() {
    let app = spawn_app_with(|s| s.grpc.cors_origins = vec!["https://login.example.com".into()]).await;
    let url = format!("{}/zitadel.user.v2.UserService/GetUserByID", app.grpc_address);
    let http1 = reqwest::Client::builder().http1_only().build().unwrap();

    // The browser's preflight: allowed for the configured origin only.
    let preflight = |origin: &'static str| {
        http1
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-grpc-web,authorization")
            .send()
    };
    let ok = preflight("https://login.example.com").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://login.example.com");
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none(), "{:?}", other.headers());

    // GetUserByID of nobody, as grpc-web-text: base64 frames in, base64 frames out.
    let msg = herald::grpc::pb::zitadel::user::v2::GetUserByIdRequest { user_id: "999999".into() }.encode_to_vec();
    let b64 = base64::engine::general_purpose::STANDARD;
    let resp = http1
        .post(&url)
        .header("content-type", "application/grpc-web-text")
        .header("x-grpc-web", "1")
        .header("origin", "https://login.example.com")
        .bearer_auth(&app.bootstrap)
        .body(b64.encode(frame(0, &msg)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://login.example.com");
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    // The error comes in the headers (a trailers-only answer) or in the trailer frame.
    let trailers = if headers.contains_key("grpc-status") {
        format!("grpc-status:{}", headers["grpc-status"].to_str().unwrap())
    } else {
        let bytes = b64.decode(text.trim()).expect("base64 frames");
        String::from_utf8_lossy(&bytes[5..]).to_string()
    };
    assert!(trailers.contains("grpc-status:5"), "{trailers:?}");
}
