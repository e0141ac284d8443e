//! `closeout doctor`: checks that a batch can run, changing nothing: the
//! config and batch parse, every tenant resolves (login reachable), its
//! credential reads and gets a token (Graph reachable, its organization the
//! id and `domain` the batch names), the token endpoint's clock agrees with
//! this machine's (`Date` header; a client assertion or token is judged by
//! the service's clock), and the app holds the Microsoft Graph application
//! permissions closeout uses; the partner's app too when configured. One
//! line per tenant; exit 0 when every line is `ok`, 1 otherwise, 2 for an
//! invalid config or batch.
//!
//! It reads credentials itself, so under systemd run it as the service's
//! user with the same credentials (`systemd-run -p LoadCredential=...`);
//! the running daemon does not answer it over its socket yet.

use super::common::{block_on, ConfigArg};
use super::Error;
use crate::config::{BatchFile, Config};
use crate::graph;
use serde::Serialize;
use std::path::PathBuf;

/// Clock skew beyond which a line fails: Entra ID's assertions and tokens
/// carry second-granular times, and a client assertion's `nbf` ahead of the
/// service's clock is refused.
const MAX_SKEW_SECS: i64 = 60;

/// Arguments of `closeout doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// The batch file.
    #[arg(value_name = "BATCH")]
    batch: PathBuf,
}

/// What was found for one tenant (or the partner).
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The tenant as the batch names it, or `partner`.
    pub tenant: String,
    /// Whether everything checked is fine.
    pub ok: bool,
    /// Its GUID, when resolved.
    pub guid: Option<String>,
    /// `secret` or `certificate SHA256:…`.
    pub credential: Option<String>,
    /// The token endpoint's clock minus ours, in seconds.
    pub skew_secs: Option<i64>,
    /// The Graph application permissions closeout uses that the app lacks.
    pub missing_permissions: Vec<String>,
    /// What failed, in order.
    pub problems: Vec<String>,
}

impl Finding {
    fn new(tenant: &str) -> Finding {
        Finding {
            tenant: tenant.to_string(),
            ok: true,
            guid: None,
            credential: None,
            skew_secs: None,
            missing_permissions: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn fail(&mut self, problem: String) {
        self.ok = false;
        self.problems.push(problem);
    }

    fn skew(&mut self, skew: Option<i64>) {
        self.skew_secs = skew;
        if let Some(s) = skew.filter(|s| s.abs() > MAX_SKEW_SECS) {
            self.fail(format!(
                "this machine's clock is {s:+} s off the token endpoint's: fix its time (NTP)"
            ));
        }
    }

    fn line(&self) -> String {
        let mut parts = vec![format!(
            "{} {}",
            if self.ok { "ok  " } else { "FAIL" },
            crate::escape::text(&self.tenant)
        )];
        if let Some(g) = &self.guid {
            parts.push(format!("guid={g}"));
        }
        if let Some(c) = &self.credential {
            parts.push(format!("credential={c}"));
        }
        if let Some(s) = self.skew_secs {
            parts.push(format!("skew={s:+}s"));
        }
        if self.problems.is_empty() {
            parts.push("token, permissions and reachability fine".into());
        } else {
            parts.push(crate::escape::text(&self.problems.join("; ")).into_owned());
        }
        parts.join("  ")
    }
}

fn credential_name(c: &graph::Credential) -> String {
    match c.thumbprint() {
        Some(t) => format!("certificate SHA256:{t}"),
        None => "secret".into(),
    }
}

/// Checks one tenant.
async fn tenant(
    client: &graph::Client,
    spec: &crate::model::TenantSpec,
    domain: Option<&str>,
) -> Finding {
    let mut f = Finding::new(&spec.tenant_id);
    match client.resolve_tenant(&spec.tenant_id).await {
        Ok(g) => f.guid = Some(g),
        Err(e) => {
            f.fail(format!("login: {} ({})", e.message, e.code));
            return f;
        }
    }
    let credential = match graph::read_credential_async(&spec.secret).await {
        Ok(c) => c,
        Err(e) => {
            f.fail(e.to_string());
            return f;
        }
    };
    f.credential = Some(credential_name(&credential));
    let api = client.tenant(&spec.tenant_id, &spec.client_id, credential);
    match api.check_token().await {
        Ok(skew) => f.skew(skew),
        Err(e) => {
            f.fail(format!(
                "token ({}): {} ({})",
                api.token_scope(),
                e.message,
                e.code
            ));
            return f;
        }
    }
    let guid = f.guid.clone().unwrap_or_default();
    let identity = match domain {
        Some(d) => api.check_identity(&guid, d).await,
        None => api.organization().await.map(|_| ()),
    };
    if let Err(e) = identity {
        f.fail(format!("graph: {} ({})", e.message, e.code));
    }
    match api.app_permissions().await {
        Ok(granted) => {
            let all: Vec<&'static crate::saga::permissions::Permission> =
                crate::saga::permissions::ALL.iter().collect();
            f.missing_permissions = crate::saga::permissions::missing(&all, &granted);
            if !f.missing_permissions.is_empty() {
                f.fail(format!(
                    "closeout's app lacks {}",
                    f.missing_permissions.join(", ")
                ));
            }
        }
        Err(e) => f.fail(format!("permissions: {} ({})", e.message, e.code)),
    }
    f
}

/// Checks the partner's app: a Partner Center token.
async fn partner(client: &graph::Client, config: &Config) -> Option<Finding> {
    let pc = config.partner_center.as_ref()?;
    let mut f = Finding::new("partner");
    f.guid = Some(pc.tenant_id.clone());
    let credential = match graph::read_credential_async(&pc.secret).await {
        Ok(c) => c,
        Err(e) => {
            f.fail(e.to_string());
            return Some(f);
        }
    };
    f.credential = Some(credential_name(&credential));
    let api = client.partner(&pc.tenant_id, &pc.client_id, credential);
    match api.check_token().await {
        Ok(skew) => f.skew(skew),
        Err(e) => f.fail(format!(
            "token ({}): {} ({})",
            api.token_scope(),
            e.message,
            e.code
        )),
    }
    Some(f)
}

/// Runs `closeout doctor`.
pub fn run(args: Args) -> Result<(), Error> {
    let (_, config) = args.config.load()?;
    let batch = BatchFile::load(&args.batch).map_err(|e| Error::Invalid(e.into()))?;
    batch
        .check_secret_files()
        .map_err(|e| Error::Invalid(e.into()))?;
    let findings = block_on(check(&config, &batch))??;
    if args.json {
        let text = serde_json::to_string_pretty(&findings)
            .map_err(|e| Error::Failed(anyhow::anyhow!("cannot encode the findings: {e}")))?;
        println!("{text}");
    } else {
        for f in &findings {
            println!("{}", f.line());
        }
    }
    let failed = findings.iter().filter(|f| !f.ok).count();
    if failed > 0 {
        return Err(Error::Failed(anyhow::anyhow!(
            "{failed} of {} checks failed",
            findings.len()
        )));
    }
    Ok(())
}

/// Every tenant's finding in batch order, then the partner's.
pub async fn check(config: &Config, batch: &BatchFile) -> Result<Vec<Finding>, Error> {
    let endpoints = graph::Endpoints {
        graph: config.endpoints.graph.clone(),
        login: config.endpoints.login.clone(),
        partner_center: config.endpoints.partner_center.clone(),
        cloud: config.cloud,
    };
    let client = graph::Client::new(endpoints, crate::runtime::executor::client_options(config))
        .map_err(|e| Error::Failed(e.into()))?;
    let mut out = Vec::with_capacity(batch.tenants.len() + 1);
    for (i, spec) in batch.tenants.iter().enumerate() {
        let domain = batch.domains.get(i).cloned().flatten();
        out.push(tenant(&client, spec, domain.as_deref()).await);
    }
    if let Some(p) = partner(&client, config).await {
        out.push(p);
    }
    Ok(out)
}
