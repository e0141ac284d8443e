//! The login token endpoint, `POST /{tenant}/oauth2/v2.0/token`, client
//! credentials flow. Tokens are opaque random strings bound to (tenant, client,
//! audience) and expire after `--token-lifetime`. Errors carry the AADSTS
//! bodies of the real service: unknown or deleted tenant `AADSTS90002`, unknown
//! client `AADSTS700016`, wrong secret `AADSTS7000215`, closeout's service
//! principal removed from the tenant `AADSTS7000229`.
//!
//! A certificate credential (`client_assertion`) is checked as
//! https://learn.microsoft.com/entra/identity-platform/certificate-credentials
//! describes it: a JWT whose `x5t#S256` (or legacy `x5t`) names the app's
//! registered certificate, whose PS256/RS256 signature verifies against that
//! certificate's key (real RSA, `crate::cert`), with `iss` = `sub` = the
//! client id, `aud` the token endpoint of the tenant, `exp`/`nbf` around
//! now and a `jti`. Codes: a wrong or unregistered certificate or a bad
//! signature `AADSTS700027` ("Client assertion failed signature
//! validation", https://learn.microsoft.com/entra/identity-platform/reference-error-codes),
//! an expired registered certificate the same code with the reason "The key
//! used is expired" (as quoted in
//! https://learn.microsoft.com/azure-stack/hci/deploy/troubleshoot-hci-registration),
//! `iss`/`sub` not the client `AADSTS700021`, `aud` wrong `AADSTS700023`
//! (both from https://learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal),
//! outside `nbf`..`exp` `AADSTS700024` (the client-assertion time-range code
//! the Azure SDK troubleshooting guides name), a token that is not a JWT
//! `AADSTS50027` (reference-error-codes: InvalidJwtToken). The pages give
//! codes, not HTTP statuses: 401 `invalid_client` is used as for a wrong
//! secret. Reuse of a `jti` is not modelled (the page asks for unique ones
//! but does not say the service refuses a repeat).

use super::http::{login_error, Req, Resp};
use super::state::{Audience, Token, World};
use rand::Rng;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

/// Scope of Graph tokens (global cloud).
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Scope of Partner Center tokens (global cloud).
pub const PARTNER_SCOPE: &str = "https://api.partnercenter.microsoft.com/.default";

/// How far `nbf` may lie ahead of the simulator's clock (clock skew).
const ASSERTION_SKEW_SECS: u64 = 300;

/// Checks a client assertion for `client_id` at the token endpoint of
/// `tenant` (as named in the path) against the app's registered
/// certificate; `Err((status, error, code, description))` refuses it.
fn check_assertion(
    jwt: &str,
    tenant: &str,
    client_id: &str,
    registered: Option<&str>,
    now_secs: u64,
) -> Result<(), (u16, &'static str, u32, String)> {
    let bad_sig = |why: &str| {
        (
            401,
            "invalid_client",
            700027,
            format!("Client assertion failed signature validation. [Reason - {why}]"),
        )
    };
    let Some(a) = crate::cert::Assertion::parse(jwt) else {
        return Err((
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.".into(),
        ));
    };
    let cert = registered
        .and_then(|pem| crate::cert::Registered::from_pem(pem).ok())
        .ok_or_else(|| bad_sig("The key was not found."))?;
    if !cert.verify(&a) {
        return Err(bad_sig(&format!(
            "The key was not found. Thumbprint of key used by client: '{}'",
            a.header
                .get("x5t#S256")
                .or_else(|| a.header.get("x5t"))
                .and_then(|v| v.as_str())
                .unwrap_or("")
        )));
    }
    if now_secs > cert.not_after || now_secs < cert.not_before {
        return Err(bad_sig(&format!(
            "The key used is expired. Thumbprint of key used by client: '{}'",
            cert.thumbprint_hex()
        )));
    }
    if a.claim("iss") != Some(client_id) || a.claim("sub") != Some(client_id) {
        return Err((
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .".to_string(),
        ));
    }
    let aud_ok = a
        .claim("aud")
        .and_then(|aud| url::Url::parse(aud).ok())
        .is_some_and(|u| {
            u.path()
                .eq_ignore_ascii_case(&format!("/{tenant}/oauth2/v2.0/token"))
        });
    if !aud_ok {
        return Err((
            401,
            "invalid_client",
            700023,
            "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .".to_string(),
        ));
    }
    match (a.time("nbf"), a.time("exp"), a.claim("jti")) {
        (Some(nbf), Some(exp), Some(jti))
            if !jti.is_empty() && exp > now_secs && nbf <= now_secs + ASSERTION_SKEW_SECS => {}
        _ => {
            return Err((
                401,
                "invalid_client",
                700024,
                format!("Client assertion is not within its valid time range. Current time: {now_secs}, assertion valid from {:?} to {:?}.", a.time("nbf"), a.time("exp")),
            ))
        }
    }
    Ok(())
}

/// Answers a token request for `tenant` (id or initial domain), and notes
/// it in the token log (scope and kind of credential, never the secret).
pub fn token(
    world: &mut World,
    req: &Req,
    tenant: &str,
    now: Instant,
    lifetime: Duration,
    rng: &mut impl Rng,
) -> Resp {
    let resp = answer(world, req, tenant, now, lifetime, rng);
    let form: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let credential = if field("client_assertion").is_some() {
        "certificate"
    } else if field("client_secret").is_some() {
        "secret"
    } else {
        "none"
    };
    let error_code = resp
        .body
        .as_ref()
        .and_then(|b| b.get("error_codes")?.get(0)?.as_u64())
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0);
    // Bounded: a long soak must not grow the simulator without end.
    if world.token_log.len() >= 10_000 {
        world.token_log.pop_front();
    }
    world.token_log.push_back(super::state::TokenRequest {
        tenant: tenant.to_string(),
        client_id: field("client_id").unwrap_or_default(),
        scope: field("scope").unwrap_or_default(),
        credential,
        status: resp.status,
        error_code,
    });
    resp
}

fn answer(
    world: &mut World,
    req: &Req,
    tenant: &str,
    now: Instant,
    lifetime: Duration,
    rng: &mut impl Rng,
) -> Resp {
    let date = world.clock.rfc3339(now);
    let trace = req.request_id.clone();
    let err = |status, error: &str, code, desc: &str| {
        login_error(status, error, code, desc, &date, &trace)
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if req.method != "POST" {
        return err(
            405,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
    }
    // Which tenant, and whose app.
    let (tenant_id, expected) = if tenant.eq_ignore_ascii_case(&world.partner.tenant_id) {
        (
            world.partner.tenant_id.clone(),
            (
                world.partner.client_id.clone(),
                world.partner.client_secret.clone(),
                world.partner.certificate.clone(),
            ),
        )
    } else {
        match world.tenant_key(tenant).and_then(|k| world.tenants.get(&k)) {
            Some(t) if !t.deleted => (t.tenant_id.clone(), (t.client_id.clone(), t.client_secret.clone(), t.certificate.clone())),
            _ => {
                return err(
                    400,
                    "invalid_request",
                    90002,
                    &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
                )
            }
        }
    };
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return err(
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            )
        }
        None => {
            return err(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        }
    }
    let Some(client_id) = field("client_id") else {
        return err(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    if client_id != expected.0 {
        return err(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant_id}'."),
        );
    }
    // closeout's app is multi-tenant: its service principal in the customer
    // tenant is what lets it in. Removed (the deletion page's cleanup), the
    // token endpoint refuses with AADSTS7000229
    // (https://learn.microsoft.com/entra/identity-platform/reference-error-codes;
    // the page lists codes, not statuses: 401 `invalid_client` is how the
    // service answers in practice).
    let own_missing = world
        .tenants
        .get(&tenant_id)
        .is_some_and(|t| t.own_principal().is_none());
    if own_missing {
        return err(
            401,
            "invalid_client",
            7000229,
            &format!("The client application {client_id} is missing service principal in the tenant {tenant_id}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"),
        );
    }
    match (field("client_secret"), field("client_assertion_type"), field("client_assertion")) {
        (Some(s), None, None) if s == expected.1 => {}
        (Some(_), None, None) => {
            return err(401, "invalid_client", 7000215, &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."))
        }
        (None, Some(crate::cert::ASSERTION_TYPE), Some(jwt)) => {
            let now_secs = world.clock.ms(now) / 1000;
            if let Err((status, error, code, desc)) =
                check_assertion(jwt, tenant, client_id, expected.2.as_deref(), now_secs)
            {
                return err(status, error, code, &desc);
            }
        }
        (None, Some(t), _) if t != crate::cert::ASSERTION_TYPE => {
            return err(400, "invalid_request", 50027, &format!("Invalid client_assertion_type '{t}'."))
        }
        (None, None, None) => return err(401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type."),
        _ => return err(400, "invalid_request", 90014, "The request must carry either client_secret or client_assertion with client_assertion_type, not both and not one half."),
    }
    // Each national cloud's Graph and Partner Center scope
    // (https://learn.microsoft.com/graph/deployments): one simulator
    // stands in for every cloud.
    let audience = match field("scope") {
        Some(s) if crate::cloud::graph_scopes().any(|g| g == s) => Audience::Graph,
        Some(s) if crate::cloud::partner_scopes().any(|p| p == s) => Audience::PartnerCenter,
        Some(s) if !s.ends_with("/.default") => {
            return err(400, "invalid_scope", 1002012, &format!("The provided value for scope {s} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."))
        }
        Some(s) => {
            return err(400, "invalid_resource", 500011, &format!("The resource principal named {s} was not found in the tenant named {tenant_id}."))
        }
        None => return err(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."),
    };
    let value: String = {
        let bytes: [u8; 24] = rng.gen();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let access_token = format!("sim.{value}");
    world.tokens.insert(
        access_token.clone(),
        Token {
            tenant_id,
            client_id: client_id.to_string(),
            audience,
            expires: now + lifetime,
        },
    );
    let secs = lifetime.as_secs();
    Resp::json(
        200,
        json!({"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": access_token}),
    )
}

/// The token presented with a request, if valid now for `audience`.
pub fn authenticate<'w>(
    world: &'w World,
    req: &Req,
    now: Instant,
    audience: Audience,
) -> Option<&'w Token> {
    let t = world.tokens.get(req.bearer.as_deref()?)?;
    if t.expires <= now || t.audience != audience {
        return None;
    }
    if audience == Audience::Graph && world.tenants.get(&t.tenant_id).is_none_or(|x| x.deleted) {
        return None;
    }
    Some(t)
}
