//! The table-driven hostile-input test (docs/API.md §1): every route (REST,
//! Connect, admin, ZITADEL's provider routes and notification endpoint, service) fed control characters and NUL, 5,000-character ids,
//! bytes that are not UTF-8, JSON of the wrong types, nesting 100,000 deep, an 8 MiB
//! body and malformed `Authorization` headers. No answer is a 5xx, and herald is
//! healthy after: `/healthz` answers and a normal resend works.

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{ok_json, spawn_app, TestApp};
use crate::ops_helpers::concurrently;

/// One request to make.
struct Probe {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    auth: Option<HeaderValue>,
    /// What it is, for the failure message.
    what: String,
}

/// A route: its method, its path with `{id}` where an id goes, and a valid body.
struct Route {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    /// The id of the valid path (a user's, or a ZITADEL provider's).
    id: String,
}

/// What the routes act on: an organization, a user with a code, and two ZITADEL
/// providers (one for the operators' routes, which may delete it; one that takes
/// unsigned posts, so hostile bodies reach the parser).
struct Fixture {
    org: String,
    user: String,
    provider: String,
    receiver: String,
}

fn routes(f: &Fixture) -> Vec<Route> {
    let (org, user) = (f.org.as_str(), f.user.as_str());
    let send_code =
        json!({"urlTemplate": "https://a.example/?c={{.Code}}", "applicationName": "Acme", "channel": "email"});
    let human = json!({"userId": "chosen-1", "username": "u1", "organization": {"orgId": org},
        "profile": {"givenName": "Ada", "familyName": "L", "displayName": "Ada L", "preferredLanguage": "en"},
        "email": {"email": "ada@example.com", "isVerified": false}, "phone": {"phone": "+41791234567"}});
    let route = |method: Method, path: &'static str, body: Option<Value>| Route { method, path, body, id: user.into() };
    let provider = |method: Method, path: &'static str, body: Option<Value>, id: &str| Route {
        method,
        path,
        body,
        id: id.to_string(),
    };
    let new_provider = json!({"orgId": org, "channel": "email", "signingKeys": [crate::zitadel::KEY],
                              "requireSignature": false, "description": "ZITADEL"});
    vec![
        route(Method::POST, "/admin/v1/zitadel/providers", Some(new_provider)),
        route(Method::GET, "/admin/v1/zitadel/providers", None),
        provider(Method::GET, "/admin/v1/zitadel/providers/{id}", None, &f.provider),
        provider(
            Method::PATCH,
            "/admin/v1/zitadel/providers/{id}",
            Some(json!({"description": "d", "requireSignature": false, "signingKeys": [crate::zitadel::KEY]})),
            &f.provider,
        ),
        provider(Method::DELETE, "/admin/v1/zitadel/providers/{id}", None, &f.provider),
        provider(
            Method::POST,
            "/zitadel/v1/notifications/{id}",
            Some(crate::zitadel::invite_message("ada@example.com", "K3M9QX")),
            &f.receiver,
        ),
        route(Method::POST, "/v2/users/{id}/invite_code", Some(json!({"sendCode": send_code}))),
        route(Method::POST, "/v2/users/{id}/invite_code/resend", None),
        route(Method::POST, "/v2/users/{id}/invite_code/verify", Some(json!({"verificationCode": "ABC123"}))),
        route(Method::GET, "/v2/users/{id}", None),
        route(Method::POST, "/v2/users/human", Some(human.clone())),
        route(
            Method::POST,
            "/v2/organizations",
            Some(json!({"name": "Acme", "defaultLanguage": "en", "loginMethods": ["password"]})),
        ),
        route(Method::GET, "/v2/organizations/{id}", None),
        route(
            Method::POST,
            "/admin/v1/tokens",
            Some(
                json!({"orgId": org, "permissions": ["user.read"], "description": "d", "expiresAt": "2099-01-01T00:00:00Z"}),
            ),
        ),
        route(Method::DELETE, "/admin/v1/tokens/{id}", None),
        route(Method::POST, "/admin/v1/bulk/resend", Some(json!({"orgId": org, "userIds": [user]}))),
        route(Method::GET, "/admin/v1/bulk/{id}", None),
        route(
            Method::GET,
            "/admin/v1/deliveries?userId={id}&orgId={id}&status={id}&channel={id}&since={id}&limit={id}&cursor={id}",
            None,
        ),
        route(
            Method::POST,
            "/admin/v1/deliveries/replay",
            Some(
                json!({"filter": {"orgId": org, "channel": "email", "since": "2020-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z", "errorContains": "550"}, "dryRun": true, "reissue": false}),
            ),
        ),
        route(Method::GET, "/admin/v1/deliveries/{id}", None),
        route(Method::POST, "/admin/v1/deliveries/{id}/replay", Some(json!({"reissue": false}))),
        route(
            Method::POST,
            "/zitadel.user.v2.UserService/CreateInviteCode",
            Some(json!({"userId": user, "sendCode": send_code})),
        ),
        route(Method::POST, "/zitadel.user.v2.UserService/ResendInviteCode", Some(json!({"userId": user}))),
        route(
            Method::POST,
            "/zitadel.user.v2.UserService/VerifyInviteCode",
            Some(json!({"userId": user, "verificationCode": "ABC123"})),
        ),
        route(Method::POST, "/zitadel.user.v2.UserService/AddHumanUser", Some(human)),
        route(Method::POST, "/zitadel.user.v2.UserService/GetUserByID", Some(json!({"userId": user}))),
        route(Method::POST, "/zitadel.org.v2.OrganizationService/AddOrganization", Some(json!({"name": "Acme"}))),
        route(Method::GET, "/healthz", None),
        route(Method::GET, "/readyz", None),
        route(Method::GET, "/metrics", None),
    ]
}

/// Path ids, percent-encoded: NUL, control characters, 5,000 characters, bytes
/// that are not UTF-8, and a valid one for the other probes.
fn hostile_ids() -> Vec<String> {
    let long = "9".repeat(5_000);
    ["%00", "a%00b", "%0D%0A", "x%09y", "%1F", "%7F", "%C2%85", "%FF%FE", "%C0%80", "..", "%2F", &long]
        .map(str::to_string)
        .to_vec()
}

/// Strings a JSON body may carry in place of any of its strings.
fn hostile_strings() -> Vec<Value> {
    ["a\u{0}b", "\u{0}", "x\r\nBcc: y@example.com", "\u{1}\u{7f}\u{85}", "\t"]
        .map(|s| json!(s))
        .into_iter()
        .chain([json!("9".repeat(5_000))])
        .collect()
}

/// Values of the wrong type for any field.
fn wrong_types() -> Vec<Value> {
    vec![json!(5), json!(-1.5e300), json!(true), json!(null), json!([]), json!({}), json!([null, {"a": 1}])]
}

/// Every body that differs from `valid` in one place: each value (objects and
/// arrays too, each array element) replaced by each hostile string and each wrong
/// type.
fn body_variants(valid: &Value) -> Vec<(String, Value)> {
    /// JSON pointers of every value under `v`.
    fn pointers(v: &Value, path: String, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => map.iter().for_each(|(k, child)| pointers(child, format!("{path}/{k}"), out)),
            Value::Array(items) => {
                items.iter().enumerate().for_each(|(i, child)| pointers(child, format!("{path}/{i}"), out))
            }
            _ => {}
        }
        if !path.is_empty() {
            out.push(path);
        }
    }
    let mut places = Vec::new();
    pointers(valid, String::new(), &mut places);
    let mut out = Vec::new();
    for place in &places {
        for v in hostile_strings().into_iter().chain(wrong_types()) {
            let what = format!("{place} = {}", short(&v));
            let mut body = valid.clone();
            *body.pointer_mut(place).expect("a pointer of this body") = v;
            out.push((what, body));
        }
    }
    out
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!("{}…", &s[..40])
    } else {
        s
    }
}

/// Whole bodies no route expects.
fn hostile_bodies() -> Vec<(String, Vec<u8>)> {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    vec![
        ("nesting 100,000 deep".into(), deep.into_bytes()),
        ("objects 100,000 deep".into(), deep_object.into_bytes()),
        ("8 MiB".into(), vec![b' '; 8 * 1024 * 1024]),
        ("8 MiB of JSON".into(), format!("{{\"name\": \"{}\"}}", "a".repeat(8 * 1024 * 1024)).into_bytes()),
        ("not UTF-8".into(), b"{\"name\": \"\xff\xfe\xc0\x80\"}".to_vec()),
        ("raw bytes".into(), vec![0, 159, 146, 150, 255]),
        ("NUL in a key".into(), b"{\"na\\u0000me\": \"x\", \"\\u0000\": 1}".to_vec()),
        ("not JSON".into(), b"{\"name\": ".to_vec()),
        ("an array".into(), b"[]".to_vec()),
        ("a string".into(), b"\"x\"".to_vec()),
        ("a number".into(), b"1e999999".to_vec()),
        ("null".into(), b"null".to_vec()),
        ("a lone surrogate".into(), b"{\"name\": \"\\ud800\"}".to_vec()),
    ]
}

/// `Authorization` values that are not a valid bearer token.
fn hostile_auth(token: &str) -> Vec<HeaderValue> {
    let mut out: Vec<HeaderValue> = ["Bearer", "Bearer ", "bearer  ", "Basic YTpi", "Bearer a b c", "Token x", "B"]
        .into_iter()
        .map(HeaderValue::from_static)
        .collect();
    out.push(HeaderValue::from_str(&format!("Bearer {}", "x".repeat(5_000))).unwrap());
    out.push(HeaderValue::from_bytes(b"Bearer \xff\xfe\x80").unwrap());
    out.push(HeaderValue::from_bytes(format!("Bearer {token}\t").as_bytes()).unwrap());
    out.push(HeaderValue::from_bytes(b"Bearer\t\x01x").unwrap_or(HeaderValue::from_static("Bearer\tx")));
    out
}

fn probes(app: &TestApp, f: &Fixture) -> Vec<Probe> {
    let bootstrap = HeaderValue::from_str(&format!("Bearer {}", app.bootstrap)).unwrap();
    let mut out = Vec::new();
    for r in routes(f) {
        let valid_path = r.path.replace("{id}", &r.id);
        let valid_body = r.body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
        let probe = |path: String, body: Option<Vec<u8>>, auth: Option<HeaderValue>, what: String| Probe {
            method: r.method.clone(),
            path,
            body,
            auth,
            what: format!("{} {}: {what}", r.method, r.path),
        };
        if r.path.contains("{id}") {
            for id in hostile_ids() {
                let what = format!("id {}", &id[..id.len().min(20)]);
                out.push(probe(r.path.replace("{id}", &id), valid_body.clone(), Some(bootstrap.clone()), what));
            }
        }
        if let Some(valid) = &r.body {
            for (what, body) in body_variants(valid) {
                let bytes = serde_json::to_vec(&body).unwrap();
                out.push(probe(valid_path.clone(), Some(bytes), Some(bootstrap.clone()), what));
            }
        }
        for (what, bytes) in hostile_bodies() {
            out.push(probe(valid_path.clone(), Some(bytes), Some(bootstrap.clone()), what));
        }
        for auth in hostile_auth(&app.bootstrap) {
            let what = format!("Authorization {:?}", String::from_utf8_lossy(&auth.as_bytes()[..auth.len().min(20)]));
            out.push(probe(valid_path.clone(), valid_body.clone(), Some(auth), what));
        }
        out.push(probe(valid_path.clone(), valid_body.clone(), None, "no Authorization".into()));
    }
    out
}

#[actix_web::test]
async fn no_hostile_request_gets_a_5xx_and_herald_stays_healthy() {
    // Arrange: an organization, a user with a sent code.
    let app = spawn_app().await;
    let (org, user) = app.org_and_user().await;
    ok_json(app.create_code(&user, &json!({})).await).await;
    let fixture = Fixture {
        provider: crate::zitadel::provider(&app, &org, "email", &[crate::zitadel::KEY], false).await,
        receiver: crate::zitadel::provider(&app, &org, "email", &[crate::zitadel::KEY], false).await,
        org: org.clone(),
        user: user.clone(),
    };
    let probes = probes(&app, &fixture);
    assert!(probes.len() > 1_000, "{} probes", probes.len());

    // Act: every probe, 16 at a time.
    let answers = concurrently(probes, |p| {
        let app = &app;
        async move {
            let mut req =
                app.client.request(p.method.clone(), app.url(&p.path)).header(CONTENT_TYPE, "application/json");
            if let Some(auth) = p.auth.clone() {
                req = req.header(AUTHORIZATION, auth);
            }
            if let Some(body) = p.body.clone() {
                req = req.body(body);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    (p.what, Some(status), text)
                }
                // A body past the limit may be cut off while it is still being
                // sent; that is a refusal, not a server error.
                Err(e) => (p.what, None, e.to_string()),
            }
        }
    })
    .await;

    // Assert: no 5xx, and only the 8 MiB bodies may be cut off.
    let failures: Vec<String> = answers
        .iter()
        .filter(|(what, status, _)| match status {
            Some(s) => *s >= 500 && !(what.contains("/readyz") && *s == 503),
            None => !what.contains("8 MiB"),
        })
        .map(|(what, status, text)| format!("{what} → {status:?} {}", &text[..text.len().min(200)]))
        .collect();
    assert!(failures.is_empty(), "{} of {} answered a 5xx:\n{}", failures.len(), answers.len(), failures.join("\n"));

    // Assert: herald is healthy, and a normal resend still works.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // (A user of its own: the probes used up the first one's codes for the hour.)
    let fresh = app.create_user(&org, Some("fresh@example.com"), None).await;
    ok_json(app.create_code(&fresh, &json!({})).await).await;
    ok_json(app.resend(&fresh).await).await;
}
