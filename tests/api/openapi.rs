//! API.md §7: the OpenAPI document. Served without a token, equal to the committed
//! docs/openapi.json (`herald openapi` rewrites it), naming every route of
//! docs/API.md; and the Swagger UI at /docs, served from the binary.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::spawn_app;

const COMMITTED: &str = include_str!("../../docs/openapi.json");

#[actix_web::test]
async fn the_served_document_is_the_committed_one() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "no token needed");
    let served: Value = resp.json().await.unwrap();
    let committed: Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(
        served == committed,
        "docs/openapi.json is not what herald serves: run `cargo run -- openapi` and commit the file"
    );
    assert_eq!(served["openapi"], "3.1.0");
}

/// Every `METHOD /path` docs/API.md names (in backticks), with `{…}` as the
/// document spells it, e.g. `POST /v2/users/{userId}/invite_code`.
fn routes_of_api_md() -> BTreeSet<(String, String)> {
    let md = include_str!("../../docs/API.md");
    let mut out = BTreeSet::new();
    for chunk in md.split('`').skip(1).step_by(2) {
        let mut words = chunk.split_whitespace();
        let (Some(method), Some(path)) = (words.next(), words.next()) else { continue };
        // `/docs` is the document's own viewer, not an operation of it.
        if ["GET", "POST", "DELETE"].contains(&method) && path.starts_with('/') && path != "/docs" {
            out.insert((method.to_lowercase(), path.split(['?', '[']).next().unwrap().to_string()));
        }
    }
    out
}

#[test]
fn the_document_names_every_route_of_api_md() {
    let doc: Value = serde_json::from_str(COMMITTED).unwrap();
    let routes = routes_of_api_md();
    assert!(routes.len() >= 15, "{routes:?}");
    for (method, path) in &routes {
        // API.md shortens one: `GET /v2/users/{id}` in a table stands for {userId}.
        let path = path.replace("/v2/users/{id}", "/v2/users/{userId}");
        let op = &doc["paths"][&path][method];
        assert!(op.is_object(), "{method} {path} is not in docs/openapi.json");
        let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        assert!(statuses.iter().any(|s| s.starts_with('2')), "{method} {path}: no success");
        if path.starts_with("/v2/") || path.starts_with("/admin/") {
            for status in ["400", "401", "403", "404", "429", "503"] {
                assert!(statuses.iter().any(|s| *s == status), "{method} {path}: no {status}");
            }
        }
    }
    // The Connect paths of §6 too.
    for method in ["CreateInviteCode", "ResendInviteCode", "VerifyInviteCode", "AddHumanUser", "GetUserByID"] {
        assert!(doc["paths"][format!("/zitadel.user.v2.UserService/{method}")]["post"].is_object(), "{method}");
    }
    assert!(doc["paths"]["/zitadel.org.v2.OrganizationService/AddOrganization"]["post"].is_object());
}

#[actix_web::test]
async fn swagger_ui_is_served_from_the_binary() {
    let app = spawn_app().await;
    let redirect = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/docs/");
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");
    // The scripts come from herald, not a CDN, and point at herald's document.
    let bundle = app.client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    let init = app.client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
}
