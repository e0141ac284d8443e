//! The login token endpoint, `POST /{tenant}/oauth2/v2.0/token`, client
//! credentials flow. Tokens are opaque random strings bound to (tenant, client,
//! audience) and expire after `--token-lifetime`. Errors carry the AADSTS
//! bodies of the real service: unknown or deleted tenant `AADSTS90002`, unknown
//! client `AADSTS700016`, wrong secret `AADSTS7000215`.

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

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`: the tenant's OpenID
/// Connect discovery document, served without credentials for the tenant's id
/// or its initial domain (case-insensitive), naming the tenant by its GUID in
/// `issuer` and every endpoint, as
/// <https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc>
/// ("Fetch the OpenID configuration document": `{tenant}` may be "the domain
/// name of the Microsoft Entra tenant or the tenant ID in GUID format").
/// That page does not say what an unknown tenant gets: the sim answers as the
/// token endpoint does, 400 with `AADSTS90002` (the service's observed
/// behaviour), and a client treats anything but a document naming a GUID as
/// "not resolved", never as a tenant.
pub fn openid_configuration(world: &World, req: &Req, tenant: &str, now: Instant) -> Resp {
    let date = world.clock.rfc3339(now);
    if req.method != "GET" {
        return login_error(
            405,
            "invalid_request",
            900561,
            "The endpoint only accepts GET requests.",
            &date,
            &req.request_id,
        );
    }
    let Some(t) = world
        .tenant_key(tenant)
        .and_then(|k| world.tenants.get(&k))
        .filter(|t| !t.deleted)
    else {
        return login_error(
            400,
            "invalid_tenant",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
            &date,
            &req.request_id,
        );
    };
    let base = format!("{}/{}", req.base, t.tenant_id);
    Resp::json(
        200,
        json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{}/{}/discovery/v2.0/keys", req.base, t.tenant_id),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "tenant_region_scope": "EU",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid"],
        }),
    )
}
