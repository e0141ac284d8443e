//! The login token endpoint, `POST /{tenant}/oauth2/v2.0/token`, client
//! credentials flow. Tokens are opaque random strings bound to (tenant, client,
//! audience) and expire after `--token-lifetime`. Errors carry the AADSTS
//! bodies of the real service: unknown or deleted tenant `AADSTS90002`, unknown
//! client `AADSTS700016`, wrong secret `AADSTS7000215`, closeout's service
//! principal removed from the tenant `AADSTS7000229`.

use super::http::{login_error, Req, Resp};
use super::state::{Audience, Token, World};
use rand::Rng;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

/// Scope of Graph tokens.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Scope of Partner Center tokens.
pub const PARTNER_SCOPE: &str = "https://api.partnercenter.microsoft.com/.default";

/// Answers a token request for `tenant` (id or initial domain).
pub fn token(
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
            ),
        )
    } else {
        match world.tenant_key(tenant).and_then(|k| world.tenants.get(&k)) {
            Some(t) if !t.deleted => (t.tenant_id.clone(), (t.client_id.clone(), t.client_secret.clone())),
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
    match field("client_secret") {
        Some(s) if s == expected.1 => {}
        Some(_) => {
            return err(401, "invalid_client", 7000215, &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."))
        }
        None => return err(401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type."),
    }
    let audience = match field("scope") {
        Some(GRAPH_SCOPE) => Audience::Graph,
        Some(PARTNER_SCOPE) => Audience::PartnerCenter,
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
