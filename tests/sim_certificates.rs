//! Certificate credentials and national-cloud scopes: closeout's Graph and
//! Partner Center clients against the real simulator (in-process,
//! loopback), real RSA signatures both ways.

use closeout::cert::{Assertion, Certificate, ASSERTION_TYPE};
use closeout::cloud::{Cloud, ALL};
use closeout::graph::{Client, ClientOptions, Credential, Endpoints};
use closeout::ports::PartnerApi;
use closeout::sim::{GenerateSpec, Options, Sim, SimHandle};
use serde_json::Value;
use std::sync::Arc;

const GOOD: &str = include_str!("fixtures/certs/closeout.pem");
const OTHER: &str = include_str!("fixtures/certs/other.pem");
const EXPIRED: &str = include_str!("fixtures/certs/expired.pem");
const GOOD_CRT: &str = include_str!("fixtures/certs/closeout.crt");
const EXPIRED_CRT: &str = include_str!("fixtures/certs/expired.crt");

async fn start_sim(registered: &str) -> SimHandle {
    let spec: GenerateSpec = "tenants=1,users=3".parse().unwrap();
    let fixture = closeout::sim::generate::generate(&spec, 7).with_certificate(registered);
    Sim::start(Options {
        fixture,
        ..Options::default()
    })
    .await
    .unwrap()
}

fn client(sim: &SimHandle, cloud: Cloud) -> Client {
    let base = url::Url::parse(&sim.base_url()).unwrap();
    let mut endpoints = Endpoints::all_at(&base);
    endpoints.cloud = cloud;
    Client::new(endpoints, ClientOptions::default()).unwrap()
}

fn cert(pem: &str) -> Credential {
    Credential::Certificate(Arc::new(Certificate::from_pem(pem).unwrap()))
}

async fn token_requests(sim: &SimHandle) -> Vec<Value> {
    reqwest::get(format!("{}/_sim/token-requests", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_certificate_signs_in_and_a_wrong_or_expired_one_is_refused() {
    let sim = start_sim(GOOD_CRT).await;
    let t = &sim.tenants()[0];
    let c = client(&sim, Cloud::Global);
    let (id, _) = c
        .tenant(&t.tenant_id, &t.client_id, cert(GOOD))
        .organization()
        .await
        .expect("certificate login");
    assert_eq!(id, t.tenant_id);

    let e = c
        .tenant(&t.tenant_id, &t.client_id, cert(OTHER))
        .organization()
        .await
        .unwrap_err();
    assert_eq!(e.code, "AADSTS700027", "{e:?}");

    // A certificate registered but expired: refused although the signature
    // is right.
    let old = start_sim(EXPIRED_CRT).await;
    let t2 = &old.tenants()[0];
    let e = client(&old, Cloud::Global)
        .tenant(&t2.tenant_id, &t2.client_id, cert(EXPIRED))
        .organization()
        .await
        .unwrap_err();
    assert_eq!(e.code, "AADSTS700027", "{e:?}");
    assert!(e.message.contains("expired"), "{e:?}");

    let log = token_requests(&sim).await;
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log.iter().all(|r| r["credential"] == "certificate"));
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[1]["error_code"], 700027);
}

/// Posts a hand-made assertion for tenant 0 and returns the AADSTS code.
async fn refusal(sim: &SimHandle, jwt: &str) -> u64 {
    let t = &sim.tenants()[0];
    let r: Value = reqwest::Client::new()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.base_url(),
            t.tenant_id
        ))
        .form(&[
            ("client_id", t.client_id.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", jwt),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["error_codes"][0].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn the_simulator_checks_the_assertion_claims() {
    let sim = start_sim(GOOD_CRT).await;
    let t = &sim.tenants()[0];
    let good = Certificate::from_pem(GOOD).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let aud = format!("{}/{}/oauth2/v2.0/token", sim.base_url(), t.tenant_id);
    let ok = good.assertion(&t.client_id, &aud, now, "j1").unwrap();
    assert_eq!(refusal(&sim, &ok).await, 0, "a right assertion is accepted");
    assert!(Assertion::parse(&ok)
        .unwrap()
        .header
        .get("x5t#S256")
        .is_some());
    // Another app's id as issuer and subject.
    let other_app = good.assertion("someone-else", &aud, now, "j2").unwrap();
    assert_eq!(refusal(&sim, &other_app).await, 700021);
    // Made for another tenant's token endpoint.
    let elsewhere = format!("{}/another/oauth2/v2.0/token", sim.base_url());
    let wrong_aud = good.assertion(&t.client_id, &elsewhere, now, "j3").unwrap();
    assert_eq!(refusal(&sim, &wrong_aud).await, 700023);
    // Expired an hour ago.
    let stale = good
        .assertion(&t.client_id, &aud, now - 3600, "j4")
        .unwrap();
    assert_eq!(refusal(&sim, &stale).await, 700024);
    // Not a JWT at all.
    assert_eq!(refusal(&sim, "not-a-jwt").await, 50027);
}

#[tokio::test]
async fn each_cloud_asks_for_its_own_scopes() {
    let sim = start_sim(GOOD_CRT).await;
    let t = sim.tenants()[0].clone();
    let p = sim.partner();
    for cloud in ALL {
        let c = client(&sim, cloud);
        c.tenant(&t.tenant_id, &t.client_id, cert(GOOD))
            .organization()
            .await
            .unwrap_or_else(|e| panic!("{cloud:?}: {e:?}"));
        let partner = c.partner(&p.tenant_id, &p.client_id, cert(GOOD));
        let _ = partner.list_customer_subscriptions(&t.tenant_id).await;
        let log = token_requests(&sim).await;
        let last_two: Vec<&str> = log[log.len() - 2..]
            .iter()
            .map(|r| r["scope"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            last_two,
            [
                format!("https://{}/.default", cloud.graph_host()),
                format!("https://{}/.default", cloud.partner_center_host()),
            ],
            "{cloud:?}"
        );
        assert!(log[log.len() - 2..].iter().all(|r| r["status"] == 200));
    }
}
