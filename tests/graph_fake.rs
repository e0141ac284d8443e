//! The Graph client against a tiny axum fake, for answers the simulator does
//! not give: HTML error pages from a proxy, malformed JSON, exact
//! `Retry-After` values, endless 401s, foreign next links; and proof that
//! secrets and tokens never reach `Debug` output or logs, nor an error's
//! message when a reply echoes the request.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use closeout::graph::{Client, ClientOptions, Credential, Endpoints};
use closeout::model::{Applied, FailureClass, Secret};
use closeout::ports::{PartnerApi, TenantApi};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "s3cr3t-value-never-logged";
const TOKEN: &str = "tok-SECRET-123-never-logged";

/// One request the fake received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    body: String,
}

type Handler = dyn Fn(&Method, &Uri, &str, &str) -> Response + Send + Sync;

struct Fake {
    base: url::Url,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Every log line of this test binary (all tests share the client's log
/// callsites, so one global subscriber, installed before the first call,
/// sees them all; a per-test subscriber misses lines whose callsite another
/// thread registered first).
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> Buf {
    static LOGS: std::sync::OnceLock<Buf> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
    .clone()
}

impl Fake {
    async fn start(
        graph: impl Fn(&Method, &Uri, &str, &str) -> Response + Send + Sync + 'static,
    ) -> Fake {
        logs();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let graph: Arc<Handler> = Arc::new(graph);
        let (s, b) = (seen.clone(), base.to_string());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, _h: HeaderMap, body: Bytes| {
                let (seen, graph, base) = (s.clone(), graph.clone(), b.clone());
                async move {
                    let body = String::from_utf8_lossy(&body).to_string();
                    seen.lock().unwrap().push(Seen {
                        method: method.to_string(),
                        uri: uri.to_string(),
                        body: body.clone(),
                    });
                    // A tenant named `t-login-...` has its token requests
                    // answered by the test's handler.
                    if uri.path().ends_with("/oauth2/v2.0/token")
                        && !uri.path().starts_with("/t-login-")
                    {
                        // A tenant named so gets a lifetime no clock can hold.
                        let expires_in = if uri.path().contains("t-huge-expiry") {
                            u64::MAX
                        } else {
                            3599
                        };
                        return axum::Json(serde_json::json!({
                            "token_type": "Bearer", "expires_in": expires_in, "access_token": TOKEN
                        }))
                        .into_response();
                    }
                    graph(&method, &uri, &body, base.trim_end_matches('/'))
                }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { base, seen }
    }

    fn client(&self, tweak: impl FnOnce(&mut ClientOptions)) -> Client {
        let mut o = ClientOptions::default();
        tweak(&mut o);
        Client::new(Endpoints::all_at(&self.base), o).unwrap()
    }

    fn seen(&self, needle: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.uri.contains(needle))
            .cloned()
            .collect()
    }
}

fn json(status: u16, v: serde_json::Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response()
}

fn raw(status: u16, ctype: &str, body: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", ctype.to_string())],
        body.to_string(),
    )
        .into_response()
}

#[tokio::test]
async fn html_pages_and_malformed_json_are_classified() {
    let fake = Fake::start(|_, uri, _, _| match uri.path() {
        "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy" => raw(
            502,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        "/v1.0/users" => raw(200, "application/json", "{\"value\": [ {\"id\": "),
        "/v1.0/applications" => json(200, serde_json::json!({"value": [{"noid": 1}]})),
        "/v1.0/$batch" => raw(200, "application/json", "<html>oops</html>"),
        _ => raw(400, "application/json", "{\"error\": 42}"),
    })
    .await;
    let c = fake.client(|_| {});
    let t = c.tenant("t-html", "app", Secret::new(SECRET));
    let e = t.get_security_defaults().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Transient, "http_502")
    );
    assert!(
        e.message.contains("html") && e.message.contains("t-html"),
        "{}",
        e.message
    );
    let e = t.list_users().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Transient, "bad_response"),
        "{e}"
    );
    let e = t.list_applications().await.unwrap_err();
    assert_eq!(e.code, "bad_response", "{e}");
    let e = t.list_subscriptions().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Permanent, "http_400"),
        "{e}"
    );
    let c = fake.client(|_| {});
    let t = c.tenant("t-html", "app", Secret::new(SECRET));
    let out = t.delete_users(&["u1".to_string()]).await;
    let e = out[0].1.result.as_ref().unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::InDoubt, "bad_response"),
        "{e}"
    );
}

#[tokio::test]
async fn a_401_renews_the_token_once_then_is_permanent() {
    let fake = Fake::start(|_, _, _, _| {
        json(401, serde_json::json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired."}}))
    })
    .await;
    let t = fake
        .client(|_| {})
        .tenant("t401", "app", Secret::new(SECRET));
    let e = t.list_users().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Permanent, "InvalidAuthenticationToken")
    );
    let tokens = fake.seen("/oauth2/v2.0/token");
    assert_eq!(tokens.len(), 2, "one renewal");
    assert!(tokens.iter().all(|s| s.method == "POST"));
    assert_eq!(fake.seen("/v1.0/users").len(), 2, "one retry, no loop");
}

#[tokio::test]
async fn retry_after_is_honoured_exactly_in_both_forms() {
    let fake = Fake::start(|_, uri, _, _| {
        let mut r = json(
            429,
            serde_json::json!({"error": {"code": "TooManyRequests", "message": "slow down"}}),
        );
        let v = if uri.path() == "/v1.0/users" {
            "2.128".to_string()
        } else {
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30))
        };
        r.headers_mut().insert("retry-after", v.parse().unwrap());
        r
    })
    .await;
    let c = fake.client(|_| {});
    let e = c
        .tenant("a", "app", Secret::new(SECRET))
        .list_users()
        .await
        .unwrap_err();
    assert_eq!(e.class, FailureClass::Transient);
    assert_eq!(e.retry_after, Some(Duration::from_millis(2128)));
    let e = c
        .tenant("b", "app", Secret::new(SECRET))
        .list_applications()
        .await
        .unwrap_err();
    let ra = e.retry_after.unwrap();
    assert!(
        ra > Duration::from_secs(28) && ra <= Duration::from_secs(30),
        "{ra:?}"
    );
}

#[tokio::test]
async fn paging_follows_absolute_next_links_and_refuses_foreign_hosts() {
    let fake = Fake::start(|_, uri, _, base| {
        let q = uri.query().unwrap_or("");
        match uri.path() {
            "/v1.0/users" if q.contains("skiptoken=2") => json(200, serde_json::json!({"value": [{"id": "u3"}]})),
            "/v1.0/users" if q.contains("skiptoken=1") => json(200, serde_json::json!({
                "value": [{"id": "u2"}], "@odata.nextLink": format!("{base}/v1.0/users?$skiptoken=2")})),
            "/v1.0/users" => json(200, serde_json::json!({
                "value": [{"id": "u1", "userPrincipalName": "a@x"}], "@odata.nextLink": format!("{base}/v1.0/users?$skiptoken=1")})),
            _ => json(200, serde_json::json!({
                "value": [{"id": "app1"}], "@odata.nextLink": "http://elsewhere.invalid/v1.0/applications?$skiptoken=1"})),
        }
    })
    .await;
    let t = fake.client(|_| {}).tenant("tp", "app", Secret::new(SECRET));
    let users = t.list_users().await.unwrap();
    let ids: Vec<_> = users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["u1", "u2", "u3"]);
    assert_eq!(users[0].user_principal_name, "a@x");
    let e = t.list_applications().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Permanent, "bad_next_link")
    );
}

/// The client sends each item once: a `$batch` answered 503, or items
/// answered 429, come back classified (in doubt for deletes, with the
/// service's `Retry-After`) for the saga to read back and resend, and a 404
/// on a delete counts as applied. No unrecorded read-back or resend here.
#[tokio::test]
async fn batch_items_are_sent_once_and_returned_classified() {
    let calls = Arc::new(Mutex::new(0));
    let n = calls.clone();
    let fake = Fake::start(move |_, uri, body, _| {
        if uri.path() != "/v1.0/$batch" {
            return raw(404, "text/plain", "");
        }
        let k = {
            let mut c = n.lock().unwrap();
            *c += 1;
            *c
        };
        if k == 1 {
            return json(503, serde_json::json!({"error": {"code": "serviceNotAvailable", "message": "busy"}}));
        }
        let req: serde_json::Value = serde_json::from_str(body).unwrap();
        let items = req["requests"].as_array().unwrap();
        let responses: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(n, i)| match n {
                0 => serde_json::json!({"id": i["id"], "status": 429, "headers": {"Retry-After": "7"}, "body": {"error": {"code": "TooManyRequests", "message": "slow down"}}}),
                1 => serde_json::json!({"id": i["id"], "status": 404, "headers": {}, "body": {"error": {"code": "Request_ResourceNotFound", "message": "gone"}}}),
                _ => serde_json::json!({"id": i["id"], "status": 204, "headers": {"request-id": "r-del"}}),
            })
            .collect();
        json(200, serde_json::json!({ "responses": responses }))
    })
    .await;
    let t = fake.client(|_| {}).tenant("tb", "app", Secret::new(SECRET));
    let ids: Vec<String> = ["u1", "u2", "u3"]
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    let out = t.delete_users(&ids).await;
    for (_, o) in &out {
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(e.class, FailureClass::InDoubt, "{e}");
    }
    assert_eq!(
        fake.seen("/v1.0/$batch").len(),
        1,
        "sent once, nothing read back"
    );
    let out = t.delete_users(&ids).await;
    let e = out[0].1.result.as_ref().unwrap_err();
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)), "{e}");
    assert_eq!(
        out[1].1.result,
        Ok(Applied::AlreadyDone),
        "a 404 on a delete is applied"
    );
    assert_eq!(out[2].1.result, Ok(Applied::Done));
    assert_eq!(fake.seen("/v1.0/$batch").len(), 2);
    assert!(fake
        .seen("/v1.0/$batch")
        .iter()
        .all(|s| !s.body.contains("\"GET\"")));
}

/// A token reply with an absurd `expires_in` neither panics nor overflows:
/// the token is used, and kept no longer than a day.
#[tokio::test]
async fn a_huge_expires_in_is_clamped() {
    let fake = Fake::start(|_, uri, _, _| match uri.path() {
        "/v1.0/users" => json(
            200,
            serde_json::json!({"value": [{"id": "u1", "userPrincipalName": "a@x"}]}),
        ),
        _ => raw(404, "text/plain", ""),
    })
    .await;
    let t = fake
        .client(|_| {})
        .tenant("t-huge-expiry", "app", Secret::new(SECRET));
    let users = t.list_users().await.unwrap();
    assert_eq!(users.len(), 1);
    let users = t.list_users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(
        fake.seen("/oauth2/v2.0/token").len(),
        1,
        "one token, reused"
    );
}

#[test]
fn secrets_and_tokens_never_reach_debug_or_logs() {
    let buf = logs();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let debug = rt.block_on(async {
        let fake = Fake::start(|_, uri, _, _| match uri.path() {
            "/v1.0/users" => json(401, serde_json::json!({"error": {"code": "InvalidAuthenticationToken", "message": "no"}})),
            _ => json(200, serde_json::json!({"isEnabled": true})),
        })
        .await;
        let c = fake.client(|_| {});
        let t = c.tenant("tsecret", "app", Secret::new(SECRET));
        assert!(t.get_security_defaults().await.unwrap());
        let e = t.list_users().await.unwrap_err();
        let p = c.partner("partner", "papp", Secret::new(SECRET));
        format!("{c:?} {t:?} {p:?} {e:?} {e}")
    });
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("graph call"), "logs were captured: {logs}");
    assert!(debug.contains("tsecret"), "debug shows the client: {debug}");
    for text in [&debug, &logs] {
        assert!(!text.contains(SECRET), "secret leaked: {text}");
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
}

/// A fractional `Retry-After` on a throttled item is returned exactly, as
/// data: the client neither sleeps on it nor reads the item back.
#[tokio::test]
async fn a_retry_after_is_returned_exactly_as_data() {
    let fake = Fake::start(|_, _, body, _| {
        let req: serde_json::Value = serde_json::from_str(body).unwrap();
        let responses: Vec<_> = req["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                serde_json::json!({"id": i["id"], "status": 429, "headers": {"Retry-After": "60.5"},
                    "body": {"error": {"code": "TooManyRequests", "message": "later"}}})
            })
            .collect();
        json(200, serde_json::json!({ "responses": responses }))
    })
    .await;
    let t = fake.client(|_| {}).tenant("tl", "app", Secret::new(SECRET));
    let started = std::time::Instant::now();
    let out = t.delete_users(&["u1".to_string()]).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the client did not sleep"
    );
    let e = out[0].1.result.as_ref().unwrap_err();
    // A 429 to a write may hide a ghost: in doubt, for the saga to read.
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::InDoubt, "TooManyRequests")
    );
    assert_eq!(e.retry_after, Some(Duration::from_millis(60_500)));
    assert_eq!(fake.seen("/v1.0/$batch").len(), 1, "the delete only");
}

/// A read changes nothing, so one failed `GET` is repeated where it failed
/// (a page is never fetched again because a later one failed), up to three
/// attempts, after the service's short `Retry-After` or a short backoff;
/// what still fails is returned for the saga to record and retry.
#[tokio::test]
async fn a_failed_get_is_repeated_in_place_up_to_three_attempts() {
    let second_page = Arc::new(Mutex::new(0));
    let seen = second_page.clone();
    let fake = Fake::start(move |_, uri, _, base| {
        let q = uri.query().unwrap_or("");
        match uri.path() {
            "/v1.0/users" if q.contains("skiptoken=1") => {
                let mut n = seen.lock().unwrap();
                *n += 1;
                match *n {
                    // First a 503 with a short Retry-After, then one without.
                    1 => {
                        let mut r = json(503, serde_json::json!({"error": {"code": "serviceNotAvailable", "message": "busy"}}));
                        r.headers_mut().insert("retry-after", "0.05".parse().unwrap());
                        r
                    }
                    2 => json(502, serde_json::json!({"error": {"code": "badGateway", "message": "proxy"}})),
                    _ => json(200, serde_json::json!({"value": [{"id": "u2"}]})),
                }
            }
            "/v1.0/users" => json(200, serde_json::json!({
                "value": [{"id": "u1"}], "@odata.nextLink": format!("{base}/v1.0/users?$skiptoken=1")})),
            _ => json(500, serde_json::json!({"error": {"code": "generalException", "message": "down"}})),
        }
    })
    .await;
    let t = fake.client(|_| {}).tenant("tr", "app", Secret::new(SECRET));
    let started = std::time::Instant::now();
    let users = t.list_users().await.unwrap();
    let ids: Vec<_> = users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["u1", "u2"]);
    assert_eq!(
        *second_page.lock().unwrap(),
        3,
        "the failed page, three times"
    );
    assert_eq!(
        fake.seen("/v1.0/users").len(),
        4,
        "the first page once, the second three times"
    );
    // 50 ms (its Retry-After), then 500 ms (the backoff's second step).
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "{:?}",
        started.elapsed()
    );
    // A read that fails three times is returned, classified, after three.
    let e = t.list_applications().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Transient, "generalException")
    );
    assert_eq!(fake.seen("/v1.0/applications").len(), 3);
}

/// A tenant whose Graph answers every request whose path and query start
/// with `blank` with `200 {}` (no `value` array), and a small good tenant
/// otherwise: empty collections, one organization, closeout's own service
/// principal, and 403 for the usage reports (which the data at stake then
/// calls unavailable).
async fn tenant_answering_empty_objects_to(blank: &'static str) -> closeout::graph::TenantClient {
    let fake = Fake::start(move |_, uri, _, _| {
        let target = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let target = target.replace("%27", "'");
        if target.starts_with(blank) {
            return json(200, serde_json::json!({}));
        }
        let path = uri.path().replace("%27", "'");
        if path.starts_with("/v1.0/servicePrincipals(") {
            json(200, serde_json::json!({"id": "sp1"}))
        } else if path == "/v1.0/organization" {
            json(
                200,
                serde_json::json!({"value": [{
                    "id": "22222222-2222-4222-8222-222222222222",
                    "verifiedDomains": [{"name": "a.onmicrosoft.com", "isInitial": true}]
                }]}),
            )
        } else if path.starts_with("/v1.0/reports") || path.starts_with("/v1.0/admin") {
            json(
                403,
                serde_json::json!({"error": {"code": "Authorization_RequestDenied", "message": "no"}}),
            )
        } else {
            json(200, serde_json::json!({"value": []}))
        }
    })
    .await;
    fake.client(|_| {})
        .tenant("t-empty", "app", Secret::new(SECRET))
}

/// A collection page answered `200 {}` (no `value` array) is a malformed
/// reply (`bad_response`, naming the request), never an empty listing:
/// otherwise a plan says "cancel 0 subscriptions", the step 5 preflight
/// sees no app registrations and step 1's gates stay shut. Every listing
/// closeout makes, each against a Graph that blanks that one listing.
#[tokio::test]
async fn a_collection_page_without_a_value_array_is_a_bad_response() {
    use futures::future::{BoxFuture, FutureExt};
    use std::future::Future;
    fn case<T, F>(f: F) -> BoxFuture<'static, Result<(), closeout::model::CallError>>
    where
        F: Future<Output = Result<T, closeout::model::CallError>> + Send + 'static,
    {
        f.map(|r| r.map(|_| ())).boxed()
    }
    const MEMBERS: &str = "/v1.0/directoryRoles(roleTemplateId=";
    let mut cases: Vec<(&str, &str, BoxFuture<'static, _>)> = Vec::new();
    macro_rules! listing {
        ($blank:expr, $call:ident) => {{
            let t = tenant_answering_empty_objects_to($blank).await;
            cases.push((
                stringify!($call),
                $blank,
                case(async move { t.$call().await }),
            ));
        }};
    }
    listing!("/v1.0/users", list_users);
    listing!(MEMBERS, list_global_admins);
    listing!(MEMBERS, global_admin_members);
    listing!(
        "/v1.0/roleManagement/directory/roleAssignments",
        read_preflight
    );
    listing!("/v1.0/organization", read_preflight);
    listing!("/v1.0/organization", organization_id);
    listing!("/v1.0/directory/subscriptions", list_subscriptions);
    listing!("/v1.0/directory/subscriptions", list_subscription_details);
    listing!("/v1.0/applications", list_applications);
    listing!("/v1.0/servicePrincipals?", deletion_check);
    listing!("/v1.0/applications", deletion_check);
    listing!("/v1.0/directory/subscriptions", deletion_check);
    listing!(
        "/v1.0/servicePrincipals/sp1/appRoleAssignments",
        app_permissions
    );
    listing!("/v1.0/directory/deletedItems", list_deleted_users);
    listing!(
        "/v1.0/identity/conditionalAccess/policies",
        list_ca_policies
    );
    listing!(
        "/v1.0/solutions/backupRestore/protectionPolicies",
        data_at_stake
    );
    // The good tenant reads fine: each failure below is its blanked listing's.
    let good = tenant_answering_empty_objects_to("/nothing").await;
    good.deletion_check().await.unwrap();
    good.read_preflight().await.unwrap();
    assert!(good.app_permissions().await.unwrap().is_empty());
    let names: Vec<(&str, &str)> = cases.iter().map(|(n, b, _)| (*n, *b)).collect();
    let results = futures::future::join_all(cases.into_iter().map(|(_, _, f)| f)).await;
    let mut wrong = Vec::new();
    for ((name, blank), r) in names.into_iter().zip(results) {
        let path = blank.split(['?', '(']).next().unwrap_or(blank);
        match r {
            Err(e) if e.code == "bad_response" && e.message.contains(path) => {}
            other => wrong.push(format!("{name} with {blank} answered {{}}: {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What a login endpoint or a proxy answers when it echoes the request in
/// its error: the form as received, secret or assertion included.
fn login_echo(body: &str) -> Response {
    json(
        401,
        serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS7000215: Invalid client secret provided. request was: {body}"),
            "error_codes": [7000215],
        }),
    )
}

/// The logs of this binary so far, as text.
fn logged() -> String {
    String::from_utf8(logs().0.lock().unwrap().clone()).unwrap()
}

/// A token endpoint that echoes the token request (its form body, as sent)
/// in its 401: the secret never reaches the error's message or code, nor a
/// log line, whichever client asked (a tenant's Graph calls, `doctor`'s
/// token check, the partner's Partner Center calls).
#[tokio::test]
async fn a_login_error_echoing_the_secret_is_redacted() {
    let fake = Fake::start(|_, uri, body, _| match uri.path() {
        p if p.ends_with("/oauth2/v2.0/token") => login_echo(body),
        _ => raw(500, "text/plain", "no token, no call"),
    })
    .await;
    let c = fake.client(|_| {});
    let t = c.tenant("t-login-echo", "app", Secret::new(SECRET));
    let p = c.partner("t-login-partner", "papp", Secret::new(SECRET));
    let errors = [
        t.list_users().await.unwrap_err(),
        t.check_token().await.unwrap_err(),
        p.check_token().await.unwrap_err(),
        p.list_customer_subscriptions("c1").await.unwrap_err(),
    ];
    assert!(
        fake.seen("/oauth2/v2.0/token")
            .iter()
            .all(|s| s.body.contains(&format!("client_secret={SECRET}"))),
        "the fake echoed the secret as sent"
    );
    for e in &errors {
        assert_eq!(
            (e.class, e.code.as_str()),
            (FailureClass::Permanent, "AADSTS7000215")
        );
        assert!(e.message.contains("client_secret=[redacted]&scope="), "{e}");
        assert!(!format!("{e} {e:?}").contains(SECRET), "secret leaked: {e}");
    }
    assert!(!logged().contains(SECRET), "secret logged");
}

/// A secret with characters a form percent-encodes (Entra ID's secrets have
/// `~`) is echoed as sent, encoded, and also decoded: neither form remains.
#[tokio::test]
async fn a_login_error_echoing_the_percent_encoded_secret_is_redacted() {
    const ODD: &str = "Xy8Q~s3cr3t+odd/value=";
    const ENCODED: &str = "Xy8Q%7Es3cr3t%2Bodd%2Fvalue%3D";
    let fake = Fake::start(|_, uri, body, _| match uri.path() {
        p if p.ends_with("/oauth2/v2.0/token") => {
            let decoded: String = form_urlencoded::parse(body.as_bytes())
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            login_echo(&format!("{body} (decoded: {decoded})"))
        }
        _ => raw(500, "text/plain", "no token, no call"),
    })
    .await;
    let t = fake
        .client(|_| {})
        .tenant("t-login-encoded", "app", Secret::new(ODD));
    let e = t.check_token().await.unwrap_err();
    let sent = fake.seen("/oauth2/v2.0/token");
    assert!(
        sent[0].body.contains(&format!("client_secret={ENCODED}")),
        "{sent:?}"
    );
    assert_eq!(e.code, "AADSTS7000215");
    assert!(
        e.message.contains("client_secret=[redacted]&scope=")
            && e.message.contains("client_secret=[redacted] scope="),
        "{e}"
    );
    for leak in [ODD, ENCODED, "s3cr3t"] {
        assert!(!e.message.contains(leak), "{leak} leaked: {e}");
    }
    assert!(!logged().contains("s3cr3t+odd"), "secret logged");
}

/// A certificate's signed client assertion is a credential too (valid for
/// minutes): echoed by the token endpoint, it is redacted.
#[tokio::test]
async fn a_login_error_echoing_the_client_assertion_is_redacted() {
    let pem = include_str!("fixtures/certs/closeout.pem");
    let cert = closeout::cert::Certificate::from_pem(pem).unwrap();
    let fake = Fake::start(|_, uri, body, _| match uri.path() {
        p if p.ends_with("/oauth2/v2.0/token") => login_echo(body),
        _ => raw(500, "text/plain", "no token, no call"),
    })
    .await;
    let t = fake.client(|_| {}).tenant(
        "t-login-cert",
        "app",
        Credential::Certificate(Arc::new(cert)),
    );
    let e = t.check_token().await.unwrap_err();
    let sent = fake.seen("/oauth2/v2.0/token");
    let assertion = form_urlencoded::parse(sent[0].body.as_bytes())
        .find(|(k, _)| k == "client_assertion")
        .map(|(_, v)| v.to_string())
        .expect("an assertion was sent");
    assert!(e.message.contains("client_assertion=[redacted]"), "{e}");
    // Not even the signature (the assertion's last part) is left.
    let signature = assertion.rsplit('.').next().unwrap();
    assert!(!e.message.contains(signature), "assertion leaked: {e}");
}

/// Graph answering 500 with a body echoing the request's `Authorization`
/// header (the bearer access token the fake issued): neither a single
/// write's message nor a `$batch` item's holds the token.
#[tokio::test]
async fn a_graph_error_echoing_the_access_token_is_redacted() {
    let echo = || {
        format!("internal error handling request with headers Authorization: Bearer {TOKEN}; Accept: */*")
    };
    let fake = Fake::start(move |method, uri, body, _| match uri.path() {
        "/v1.0/$batch" => {
            let req: serde_json::Value = serde_json::from_str(body).unwrap();
            let responses: Vec<_> = req["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| serde_json::json!({"id": i["id"], "status": 500, "headers": {},
                    "body": {"error": {"code": "InternalServerError", "message": echo()}}}))
                .collect();
            json(200, serde_json::json!({ "responses": responses }))
        }
        _ => json(
            500,
            serde_json::json!({"error": {"code": "InternalServerError", "message": format!("{method} {}: {}", uri.path(), echo())}}),
        ),
    })
    .await;
    let c = fake.client(|_| {});
    let t = c.tenant("t-echo", "app", Secret::new(SECRET));
    let single = t.delete_user("u1").await.result.unwrap_err();
    let batched = t.delete_users(&["u2".to_string()]).await;
    let batched = batched[0].1.result.clone().unwrap_err();
    let p = c.partner("p-echo", "papp", Secret::new(SECRET));
    let partner = p.list_customer_subscriptions("c1").await.unwrap_err();
    for e in [&single, &batched] {
        assert_eq!(
            (e.class, e.code.as_str()),
            (FailureClass::InDoubt, "InternalServerError")
        );
    }
    assert_eq!(partner.class, FailureClass::Transient);
    for e in [&single, &batched, &partner] {
        assert!(
            e.message
                .contains("Authorization: Bearer [redacted]; Accept"),
            "{e}"
        );
        assert!(!e.message.contains(TOKEN), "token leaked: {e}");
    }
    assert!(!logged().contains(TOKEN), "token logged");
}

/// A token endpoint answering 200 with something that is not a usable
/// token is named as such, not as a connection failure or an error code
/// missing.
#[tokio::test]
async fn a_token_reply_that_is_not_a_usable_token_is_named_so() {
    for (tenant, body) in [
        (
            "t-login-expiry",
            r#"{"access_token":"abc","expires_in":"abc","token_type":"Bearer"}"#,
        ),
        (
            "t-login-negative",
            r#"{"access_token":"abc","expires_in":-5,"token_type":"Bearer"}"#,
        ),
        (
            "t-login-crlf",
            "{\"access_token\":\"abc\\r\\nX-Evil: 1\",\"expires_in\":3599}",
        ),
        ("t-login-empty", r#"{"access_token":"","expires_in":3599}"#),
    ] {
        let body = body.to_string();
        let fake = Fake::start(move |_, uri, _, _| match uri.path() {
            p if p.ends_with("/oauth2/v2.0/token") => raw(200, "application/json", &body),
            _ => raw(500, "text/plain", "no token, no call"),
        })
        .await;
        let c = fake.client(|_| {});
        let e = c
            .tenant(tenant, "app", Secret::new(SECRET))
            .list_users()
            .await
            .unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str()),
            (FailureClass::Transient, "bad_response"),
            "{tenant}: {e}"
        );
        assert!(e.message.contains("not a usable token"), "{tenant}: {e}");
        assert!(fake.seen("/users").is_empty(), "{tenant}: a call was sent");
    }
}
