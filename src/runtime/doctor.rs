//! The checks of `closeout doctor`, shared by the CLI (which reads the
//! credentials itself) and the daemon (which answers them over its control
//! socket with its own credentials, as under systemd only the service may
//! read them). They change nothing.

use crate::graph;
use serde::{Deserialize, Serialize};

/// Clock skew beyond which a line fails: Entra ID's assertions and tokens
/// carry second-granular times, and a client assertion's `nbf` ahead of the
/// service's clock is refused.
pub const MAX_SKEW_SECS: i64 = 60;

/// What was found for one tenant (or the partner).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// What failed, in order (entries starting `note: ` fail nothing).
    pub problems: Vec<String>,
}

impl Finding {
    /// A finding with nothing wrong yet.
    pub fn new(tenant: &str) -> Finding {
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

    /// Records a problem.
    pub fn fail(&mut self, problem: String) {
        self.ok = false;
        self.problems.push(problem);
    }

    /// Records the clock skew, failing beyond [`MAX_SKEW_SECS`].
    pub fn skew(&mut self, skew: Option<i64>) {
        self.skew_secs = skew;
        if let Some(s) = skew.filter(|s| s.abs() > MAX_SKEW_SECS) {
            self.fail(format!(
                "this machine's clock is {s:+} s off the token endpoint's: fix its time (NTP)"
            ));
        }
    }

    /// The finding as one line of text, everything in it that others
    /// control (the tenant as written, its guid, any message) escaped.
    pub fn line(&self) -> String {
        let mut parts = vec![format!(
            "{} {}",
            if self.ok { "ok  " } else { "FAIL" },
            crate::escape::text(&self.tenant)
        )];
        if let Some(g) = &self.guid {
            parts.push(format!("guid={}", crate::escape::text(g)));
        }
        if let Some(c) = &self.credential {
            parts.push(format!("credential={}", crate::escape::text(c)));
        }
        if let Some(s) = self.skew_secs {
            parts.push(format!("skew={s:+}s"));
        }
        if self.problems.iter().all(|p| p.starts_with("note: ")) {
            parts.push("token, permissions and reachability fine".into());
        }
        if !self.problems.is_empty() {
            parts.push(crate::escape::text(&self.problems.join("; ")).into_owned());
        }
        parts.join("  ")
    }
}

/// How a credential is shown: `secret` or the certificate's thumbprint.
pub fn credential_name(c: &graph::Credential) -> String {
    match c.thumbprint() {
        Some(t) => format!("certificate SHA256:{t}"),
        None => "secret".into(),
    }
}

/// Checks one tenant.
pub async fn tenant(
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
            use crate::saga::permissions::{informational, missing, opt_in, ALL};
            let (optional, always): (Vec<_>, Vec<_>) = ALL
                .iter()
                .filter(|p| !informational(p))
                .partition(|p| opt_in(p));
            let lacking = missing(&always, &granted);
            let lacking_optional = missing(&optional, &granted);
            let lacking_informational =
                missing(&crate::saga::permissions::informational_ones(), &granted);
            if !lacking.is_empty() {
                f.fail(format!("closeout's app lacks {}", lacking.join(", ")));
            }
            if !lacking_optional.is_empty() {
                // Not a failure: only a closure that opts in to these
                // step 4 changes needs them (`plan` says which).
                f.problems.push(format!(
                    "note: lacks {} (needed only to turn those policies off when opted in)",
                    lacking_optional.join(", ")
                ));
            }
            if !lacking_informational.is_empty() {
                // Not a failure either: the data at stake then reads as
                // unavailable.
                f.problems.push(format!(
                    "note: lacks {} (the data at stake reads as unavailable without them)",
                    lacking_informational.join(", ")
                ));
            }
            f.missing_permissions = lacking
                .into_iter()
                .chain(lacking_optional)
                .chain(lacking_informational)
                .collect();
        }
        Err(e) => f.fail(format!("permissions: {} ({})", e.message, e.code)),
    }
    f
}

/// Checks the partner's app (already built from its credential): a Partner
/// Center token.
pub async fn partner(api: &graph::PartnerClient, credential: Option<String>) -> Finding {
    let mut f = Finding::new("partner");
    f.credential = credential;
    match api.check_token().await {
        Ok(skew) => f.skew(skew),
        Err(e) => f.fail(format!(
            "token ({}): {} ({})",
            api.token_scope(),
            e.message,
            e.code
        )),
    }
    f
}

#[cfg(test)]
mod tests {
    use super::Finding;

    #[test]
    fn a_line_escapes_what_others_control() {
        let mut f = Finding::new("evil\u{1b}[31m.example");
        f.guid = Some("not a guid\u{1b}[31m".into());
        f.credential = Some("secret\n".into());
        f.fail("login: \u{1b}]0;pwned\u{7}".into());
        let line = f.line();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(
            line.contains("evil\\x1b[31m.example")
                && line.contains("guid=not a guid\\x1b[31m")
                && line.contains("credential=secret\\n")
                && line.contains("\\x1b]0;pwned\\x07"),
            "{line}"
        );
    }
}
