//! Helpers shared by the simulator's integration tests: start a sim in
//! process, get tokens, make Graph calls with reqwest over loopback.
#![allow(dead_code)]

use closeout::sim::{self, Options, SimHandle, TenantInfo};
use serde_json::Value;

/// A started simulator and an HTTP client for it.
pub struct Harness {
    /// The running simulator.
    pub sim: SimHandle,
    /// The HTTP client.
    pub http: reqwest::Client,
}

/// A response: status, headers, JSON body (Null when empty).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Harness {
    pub async fn start(options: Options) -> Harness {
        let sim = sim::Sim::start(options).await.expect("sim starts");
        Harness {
            sim,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.base_url(), path)
    }

    pub fn tenant(&self, i: usize) -> TenantInfo {
        self.sim.tenants()[i].clone()
    }

    pub async fn token_for(
        &self,
        tenant: &str,
        client_id: &str,
        secret: &str,
        scope: &str,
    ) -> Answer {
        let r = self
            .http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .form(&[
                ("client_id", client_id),
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
                ("scope", scope),
            ])
            .send()
            .await
            .expect("token request");
        answer(r).await
    }

    /// A Graph token for tenant `i`.
    pub async fn token(&self, i: usize) -> String {
        let t = self.tenant(i);
        let a = self
            .token_for(
                &t.tenant_id,
                &t.client_id,
                &t.client_secret,
                "https://graph.microsoft.com/.default",
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// The partner's Partner Center token.
    pub async fn partner_token(&self) -> String {
        let p = self.sim.partner();
        let a = self
            .token_for(
                &p.tenant_id,
                &p.client_id,
                &p.client_secret,
                "https://api.partnercenter.microsoft.com/.default",
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn call(
        &self,
        method: &str,
        path_or_url: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            self.url(path_or_url)
        };
        let mut rb = self
            .http
            .request(method.parse().expect("method"), url)
            .bearer_auth(token);
        // Partner Center: "MS-Contract-Version: Required".
        if path_or_url.contains("/v1/customers/") {
            rb = rb.header("MS-Contract-Version", "v1");
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        answer(rb.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, token, None).await
    }

    /// `GET /_sim/...`.
    pub async fn own(&self, path: &str) -> Answer {
        answer(
            self.http
                .get(self.url(path))
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    /// Every user id across pages of `GET /v1.0/users?$top=N`.
    pub async fn all_user_ids(&self, token: &str, top: usize) -> Vec<String> {
        let mut ids = Vec::new();
        let mut next = Some(format!(
            "/v1.0/users?$top={top}&$select=id,userPrincipalName"
        ));
        while let Some(url) = next {
            let a = self.get(&url, token).await;
            assert_eq!(a.status, 200, "{}", a.body);
            for u in a.body["value"].as_array().expect("value") {
                ids.push(u["id"].as_str().expect("id").to_string());
            }
            next = a.body["@odata.nextLink"].as_str().map(String::from);
        }
        ids
    }
}

pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("json body")
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Options with a generated fixture.
pub fn generated(spec: &str, seed: u64) -> Options {
    let spec: sim::GenerateSpec = spec.parse().expect("spec");
    Options {
        fixture: sim::fixture::generate(&spec, seed),
        seed,
        ..Options::default()
    }
}
