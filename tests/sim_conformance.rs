//! Conformance of the simulator with the documented behaviour of login,
//! Graph, `$batch`, throttling and Partner Center (docs/fidelity.md), run
//! in process over loopback.

mod sim_support;

use closeout::sim::{throttle::Budget, Options};
use serde_json::{json, Value};
use sim_support::{generated, Harness};
use std::time::Duration;

const GA_MEMBERS: &str =
    "/v1.0/directoryRoles(roleTemplateId='62e90394-69f5-4237-9190-012177145e10')/members";

fn assert_graph_error(a: &sim_support::Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["error"]["code"], code, "{}", a.body);
    let inner = &a.body["error"]["innerError"];
    assert!(
        inner["date"].is_string()
            && inner["request-id"].is_string()
            && inner["client-request-id"].is_string(),
        "{}",
        a.body
    );
    assert_eq!(a.header("request-id"), inner["request-id"].as_str());
}

#[tokio::test]
async fn login_issues_tokens_and_answers_aadsts_errors() {
    let h = Harness::start(generated("tenants=2,users=3", 1)).await;
    let t = h.tenant(0);
    let graph = "https://graph.microsoft.com/.default";
    let ok = h
        .token_for(&t.tenant_id, &t.client_id, &t.client_secret, graph)
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["token_type"], "Bearer");
    assert_eq!(ok.body["expires_in"], 3599);
    assert!(ok.body["access_token"].as_str().unwrap().len() > 20);
    let domain = h.sim.tenant(&t.tenant_id).unwrap().domain;
    assert_eq!(
        h.token_for(&domain, &t.client_id, &t.client_secret, graph)
            .await
            .status,
        200
    );

    let bad_secret = h
        .token_for(&t.tenant_id, &t.client_id, "wrong", graph)
        .await;
    assert_eq!(bad_secret.status, 401);
    assert_eq!(bad_secret.body["error"], "invalid_client");
    assert_eq!(bad_secret.body["error_codes"], json!([7000215]));
    assert!(bad_secret.body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215:"));
    for k in ["timestamp", "trace_id", "correlation_id"] {
        assert!(bad_secret.body[k].is_string(), "{k}");
    }
    let unknown = h
        .token_for(
            "00000000-0000-0000-0000-000000000001",
            &t.client_id,
            &t.client_secret,
            graph,
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["error_codes"], json!([90002]));
    let other_client = h
        .token_for(
            &t.tenant_id,
            &h.tenant(1).client_id,
            &t.client_secret,
            graph,
        )
        .await;
    assert_eq!(other_client.status, 400);
    assert_eq!(other_client.body["error_codes"], json!([700016]));
    let bad_scope = h
        .token_for(&t.tenant_id, &t.client_id, &t.client_secret, "User.Read")
        .await;
    assert_eq!(bad_scope.status, 400);
    assert_eq!(bad_scope.body["error"], "invalid_scope");
}

#[tokio::test]
async fn graph_rejects_missing_expired_and_foreign_tokens() {
    let h = Harness::start(generated("tenants=1,users=3", 1)).await;
    assert_graph_error(
        &h.get("/v1.0/users", "").await,
        401,
        "InvalidAuthenticationToken",
    );
    assert_graph_error(
        &h.get("/v1.0/users", "made-up").await,
        401,
        "InvalidAuthenticationToken",
    );
    let pc = h.partner_token().await;
    assert_graph_error(
        &h.get("/v1.0/users", &pc).await,
        401,
        "InvalidAuthenticationToken",
    );
    let expiring = Harness::start(Options {
        token_lifetime: Duration::ZERO,
        ..generated("tenants=1,users=3", 1)
    })
    .await;
    let tok = expiring.token(0).await;
    assert_graph_error(
        &expiring.get("/v1.0/users", &tok).await,
        401,
        "InvalidAuthenticationToken",
    );
}

#[tokio::test]
async fn users_page_with_absolute_next_links_top_limits_and_select() {
    let h = Harness::start(generated("tenants=1,users=250", 2)).await;
    let tok = h.token(0).await;
    let first = h.get("/v1.0/users", &tok).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.body["value"].as_array().unwrap().len(),
        100,
        "default page is 100"
    );
    let next = first.body["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&h.sim.base_url()), "{next}");
    assert!(first.body["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("$metadata#users"));
    let u = &first.body["value"][0];
    assert!(
        u["userPrincipalName"].is_string() && u["id"].is_string() && u["businessPhones"].is_array()
    );
    assert!(
        u.get("accountEnabled").is_none(),
        "not in the default property set"
    );
    let mut ids = h.all_user_ids(&tok, 999).await;
    assert_eq!(ids.len(), 250);
    let paged = h.all_user_ids(&tok, 7).await;
    assert_eq!(paged.len(), 250);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250);
    assert_graph_error(
        &h.get("/v1.0/users?$skiptoken=forged", &tok).await,
        400,
        "Request_BadRequest",
    );
    for bad in ["0", "1000", "x"] {
        assert_graph_error(
            &h.get(&format!("/v1.0/users?$top={bad}"), &tok).await,
            400,
            "Request_UnsupportedQuery",
        );
    }
    let sel = h
        .get(
            "/v1.0/users?$top=1&$select=id,accountEnabled,onPremisesSyncEnabled,userType",
            &tok,
        )
        .await;
    let u = sel.body["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = u.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["accountEnabled", "id", "onPremisesSyncEnabled", "userType"]
    );
    assert_eq!(sel.header("x-ms-resource-unit"), Some("1"));
    assert_eq!(first.header("x-ms-resource-unit"), Some("2"));
}

#[tokio::test]
async fn delete_restore_and_purge_users_are_recorded() {
    let h = Harness::start(generated("tenants=1,users=5", 3)).await;
    let tok = h.token(0).await;
    let tenant = h.tenant(0);
    let keep = &tenant.keep[0];
    let by_upn = h.get(&format!("/v1.0/users/{keep}"), &tok).await;
    assert_eq!(by_upn.status, 200);
    let victim = h
        .all_user_ids(&tok, 999)
        .await
        .into_iter()
        .find(|id| id.as_str() != by_upn.body["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        h.call("DELETE", &format!("/v1.0/users/{victim}"), &tok, None)
            .await
            .status,
        204
    );
    assert_graph_error(
        &h.call("DELETE", &format!("/v1.0/users/{victim}"), &tok, None)
            .await,
        404,
        "Request_ResourceNotFound",
    );
    assert_graph_error(
        &h.get(&format!("/v1.0/users/{victim}"), &tok).await,
        404,
        "Request_ResourceNotFound",
    );
    let bin = h
        .get("/v1.0/directory/deletedItems/microsoft.graph.user", &tok)
        .await;
    assert_eq!(bin.body["value"][0]["id"], victim.as_str());
    assert!(bin.body["value"][0]["deletedDateTime"].is_string());
    let restored = h
        .call(
            "POST",
            &format!("/v1.0/directory/deletedItems/{victim}/restore"),
            &tok,
            None,
        )
        .await;
    assert_eq!(restored.status, 200, "{}", restored.body);
    assert_eq!(restored.body["id"], victim.as_str());
    assert_eq!(
        h.get(&format!("/v1.0/users/{victim}"), &tok).await.status,
        200
    );
    assert_eq!(
        h.call("DELETE", &format!("/v1.0/users/{victim}"), &tok, None)
            .await
            .status,
        204
    );
    assert_eq!(
        h.call(
            "DELETE",
            &format!("/v1.0/directory/deletedItems/{victim}"),
            &tok,
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        h.call(
            "POST",
            &format!("/v1.0/directory/deletedItems/{victim}/restore"),
            &tok,
            None
        )
        .await
        .status,
        404
    );
    let effects = h.sim.effects(0);
    let got: Vec<(&str, String, u16)> = effects
        .iter()
        .map(|e| (e.method.as_str(), e.path.clone(), e.status))
        .collect();
    assert_eq!(
        got,
        vec![
            ("DELETE", format!("/v1.0/users/{victim}"), 204),
            (
                "POST",
                format!("/v1.0/directory/deletedItems/{victim}/restore"),
                200
            ),
            ("DELETE", format!("/v1.0/users/{victim}"), 204),
            (
                "DELETE",
                format!("/v1.0/directory/deletedItems/{victim}"),
                204
            ),
        ]
    );
    assert!(effects.iter().all(|e| e.tenant_id == tenant.tenant_id));
    assert_eq!(
        h.own("/_sim/effects?since=3")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn restore_fails_after_retention() {
    let h = Harness::start(Options {
        recycle_retention: Duration::ZERO,
        ..generated("tenants=1,users=3", 3)
    })
    .await;
    let tok = h.token(0).await;
    let ids = h.all_user_ids(&tok, 999).await;
    assert_eq!(
        h.call("DELETE", &format!("/v1.0/users/{}", ids[0]), &tok, None)
            .await
            .status,
        204
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    let a = h
        .call(
            "POST",
            &format!("/v1.0/directory/deletedItems/{}/restore", ids[0]),
            &tok,
            None,
        )
        .await;
    assert_graph_error(&a, 400, "Request_BadRequest");
}

#[tokio::test]
async fn admins_and_synced_users_cannot_be_deleted_by_an_unprivileged_app() {
    let h = Harness::start(generated(
        "tenants=1,users=6,admins=1,unprivileged=1,synced=1",
        4,
    ))
    .await;
    let tok = h.token(0).await;
    let state = h.sim.tenant(&h.tenant(0).tenant_id).unwrap();
    let admin = state
        .users
        .values()
        .find(|u| u.is_admin() && !h.tenant(0).keep.contains(&u.user_principal_name))
        .unwrap();
    assert_graph_error(
        &h.call("DELETE", &format!("/v1.0/users/{}", admin.id), &tok, None)
            .await,
        403,
        "Authorization_RequestDenied",
    );
    let synced = state
        .users
        .values()
        .find(|u| u.on_premises_sync_enabled)
        .unwrap();
    assert_graph_error(
        &h.call("DELETE", &format!("/v1.0/users/{}", synced.id), &tok, None)
            .await,
        400,
        "Request_BadRequest",
    );
    assert!(
        h.sim.effects(0).is_empty(),
        "rejected calls are not effects"
    );
    let ga = h.get(GA_MEMBERS, &tok).await;
    assert_eq!(ga.status, 200);
    let members: Vec<&str> = ga.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userPrincipalName"].as_str().unwrap())
        .collect();
    assert_eq!(members, vec![h.tenant(0).keep[0].as_str()]);
    assert_eq!(ga.body["value"][0]["@odata.type"], "#microsoft.graph.user");
}

#[tokio::test]
async fn preflight_reads_roles_organization_and_closeouts_own_principal() {
    let h = Harness::start(generated(
        "tenants=2,users=6,admins=1,unprivileged=1,synced=1",
        3,
    ))
    .await;
    for n in 0..2 {
        let tok = h.token(n).await;
        let t = h.tenant(n);
        let sp = h
            .get(
                &format!(
                    "/v1.0/servicePrincipals(appId='{}')?$select=id",
                    t.client_id
                ),
                &tok,
            )
            .await;
        assert_eq!(sp.status, 200, "{}", sp.body);
        let sp_id = sp.body["id"].as_str().unwrap().to_string();
        let roles = h
            .get("/v1.0/roleManagement/directory/roleAssignments", &tok)
            .await;
        assert_eq!(roles.status, 200, "{}", roles.body);
        let app_roles: Vec<&Value> = roles.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["principalId"] == sp_id.as_str())
            .collect();
        // Tenant 0's app lacks its role until the operator grants it.
        assert_eq!(app_roles.len(), usize::from(n == 1), "{}", roles.body);
        let org = h.get("/v1.0/organization", &tok).await;
        let sync = &org.body["value"][0]["onPremisesSyncEnabled"];
        assert_eq!(*sync == json!(true), n == 0, "{}", org.body);
    }
    let t0 = h.tenant(0).tenant_id;
    for fix in ["app-role", "dir-sync/off"] {
        let a = h
            .call(
                "POST",
                &format!("/_sim/tenants/{t0}/operator/{fix}"),
                "",
                None,
            )
            .await;
        assert_eq!((a.status, &a.body["changed"]), (200, &json!(true)), "{fix}");
    }
    let tok = h.token(0).await;
    let org = h.get("/v1.0/organization", &tok).await;
    assert!(org.body["value"][0]["onPremisesSyncEnabled"].is_null());
    let roles = h
        .get("/v1.0/roleManagement/directory/roleAssignments", &tok)
        .await;
    assert!(roles.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["roleDefinitionId"] == closeout::saga::preflight::PRIVILEGED_AUTH_ADMIN));
}

#[tokio::test]
async fn batch_rules_per_item_status_and_dependencies() {
    let h = Harness::start(generated("tenants=1,users=30", 5)).await;
    let tok = h.token(0).await;
    let ids = h.all_user_ids(&tok, 999).await;
    let del = |i: usize, id: &str| json!({"id": i.to_string(), "method": "DELETE", "url": format!("/users/{id}")});
    let too_many: Vec<Value> = (0..21).map(|i| del(i, &ids[i])).collect();
    assert_graph_error(
        &h.call(
            "POST",
            "/v1.0/$batch",
            &tok,
            Some(json!({"requests": too_many})),
        )
        .await,
        400,
        "BadRequest",
    );
    let dup = vec![del(1, &ids[0]), del(1, &ids[1])];
    assert_graph_error(
        &h.call("POST", "/v1.0/$batch", &tok, Some(json!({"requests": dup})))
            .await,
        400,
        "BadRequest",
    );
    // json-batching: `id` is "Required. String."
    let numeric =
        json!({"requests": [{"id": 1, "method": "DELETE", "url": format!("/users/{}", ids[0])}]});
    assert_graph_error(
        &h.call("POST", "/v1.0/$batch", &tok, Some(numeric)).await,
        400,
        "BadRequest",
    );
    let no_ct = json!({"requests": [{"id": "1", "method": "PATCH", "url": "/policies/identitySecurityDefaultsEnforcementPolicy", "body": {"isEnabled": false}}]});
    assert_graph_error(
        &h.call("POST", "/v1.0/$batch", &tok, Some(no_ct)).await,
        400,
        "BadRequest",
    );
    // A write item needs a body (an empty object at least) and a
    // Content-Type, or the whole batch is refused (json-batching).
    let restore = |extra: Value| {
        let mut item = json!({"id": "1", "method": "POST", "url": format!("/directory/deletedItems/{}/restore", ids[2])});
        if let (Value::Object(m), Value::Object(e)) = (&mut item, extra) {
            m.extend(e);
        }
        json!({"requests": [del(9, &ids[3]), item]})
    };
    for extra in [
        json!({}),
        json!({"headers": {"Content-Type": "application/json"}}),
        json!({"body": {}}),
    ] {
        let a = h
            .call("POST", "/v1.0/$batch", &tok, Some(restore(extra.clone())))
            .await;
        assert_graph_error(&a, 400, "BadRequest");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("does not contain Content-Type header or body"),
            "{extra}: {}",
            a.body
        );
    }
    assert!(
        h.sim.effects(0).is_empty(),
        "a refused batch changes nothing"
    );

    let reqs = json!({"requests": [
        del(1, &ids[0]),
        {"id": "2", "method": "DELETE", "url": "/users/no-such-user"},
        {"id": "3", "method": "DELETE", "url": format!("/users/{}", ids[1]), "dependsOn": ["2"]},
        {"id": "4", "method": "PATCH", "url": "/policies/identitySecurityDefaultsEnforcementPolicy", "headers": {"Content-Type": "application/json"}, "body": {"isEnabled": false}},
        {"id": "5", "method": "GET", "url": "/users?$top=2&$select=id"},
        // The url is relative to the version: "/users", not "/v1.0/users".
        {"id": "6", "method": "DELETE", "url": format!("/v1.0/users/{}", ids[4])},
    ]});
    let a = h.call("POST", "/v1.0/$batch", &tok, Some(reqs)).await;
    assert_eq!(a.status, 200);
    let by_id = |id: &str| {
        a.body["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("1")["status"], 204);
    assert_eq!(by_id("2")["status"], 404);
    assert_eq!(
        by_id("2")["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    assert_eq!(by_id("3")["status"], 424);
    assert_eq!(by_id("4")["status"], 204);
    assert_eq!(by_id("5")["status"], 200);
    assert_eq!(by_id("6")["status"], 400, "{}", by_id("6"));
    assert!(by_id("5")["body"]["@odata.nextLink"]
        .as_str()
        .unwrap()
        .starts_with(&h.sim.base_url()));
    assert!(by_id("1")["headers"]["request-id"].is_string());
    let paths: Vec<String> = h
        .sim
        .effects(0)
        .into_iter()
        .map(|e| format!("{} {} {}", e.method, e.path, e.status))
        .collect();
    assert_eq!(
        paths,
        vec![
            format!("DELETE /v1.0/users/{} 204", ids[0]),
            "PATCH /v1.0/policies/identitySecurityDefaultsEnforcementPolicy 204".to_string(),
        ]
    );
    assert_eq!(
        h.get(&format!("/v1.0/users/{}", ids[1]), &tok).await.status,
        200,
        "424 item not applied"
    );
}

#[tokio::test]
async fn writes_are_throttled_with_retry_after_in_whole_seconds_and_headers() {
    let h = Harness::start(Options {
        write_limit: Some(Budget::parse("3/2s").unwrap()),
        ..generated("tenants=1,users=20", 6)
    })
    .await;
    let tok = h.token(0).await;
    let ids = h.all_user_ids(&tok, 999).await;
    for (n, id) in ids[..3].iter().enumerate() {
        let a = h
            .call("DELETE", &format!("/v1.0/users/{id}"), &tok, None)
            .await;
        assert_eq!(a.status, 204);
        assert!(a.header("x-ms-resource-unit").is_some());
        // the budget is 3: above 80 % only on the third write
        assert_eq!(
            a.header("x-ms-throttle-limit-percentage").is_some(),
            n == 2,
            "write {n}"
        );
        // A fraction of the limit, 0.8 to 1.8 (throttling-limits), not a
        // percentage.
        if let Some(v) = a.header("x-ms-throttle-limit-percentage") {
            let f: f64 = v.parse().unwrap();
            assert!((0.8..=1.8).contains(&f), "{v}");
        }
    }
    let a = h
        .call("DELETE", &format!("/v1.0/users/{}", ids[3]), &tok, None)
        .await;
    assert_graph_error(&a, 429, "TooManyRequests");
    // Whole seconds, rounded up (RFC 9110 delay-seconds): the bucket
    // refills within 0.667 s.
    let ra: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(ra, 1);
    let ra = ra as f64;
    assert!(a
        .header("x-ms-throttle-scope")
        .unwrap()
        .starts_with("Tenant_Application/ReadWrite/"));
    assert_eq!(
        a.header("x-ms-throttle-information"),
        Some("WriteLimitExceeded")
    );
    assert_eq!(
        h.get(&format!("/v1.0/users/{}", ids[3]), &tok).await.status,
        200,
        "throttled delete not applied"
    );
    // inside a batch each item is throttled on its own
    tokio::time::sleep(Duration::from_secs_f64(ra)).await;
    let reqs: Vec<Value> = ids[4..9].iter().enumerate().map(|(i, id)| json!({"id": i.to_string(), "method": "DELETE", "url": format!("/users/{id}")})).collect();
    let b = h
        .call(
            "POST",
            "/v1.0/$batch",
            &tok,
            Some(json!({"requests": reqs})),
        )
        .await;
    let items = b.body["responses"].as_array().unwrap();
    let ok = items.iter().filter(|r| r["status"] == 204).count();
    let throttled: Vec<&Value> = items.iter().filter(|r| r["status"] == 429).collect();
    assert!(
        ok >= 1 && !throttled.is_empty() && ok + throttled.len() == 5,
        "{}",
        b.body
    );
    assert!(
        throttled[0]["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    assert_eq!(h.sim.effects(0).len(), 3 + ok);
}

#[tokio::test]
async fn conditional_access_is_limited_per_tenant_without_retry_after() {
    let h = Harness::start(generated("tenants=1,users=3", 7)).await;
    let tok = h.token(0).await;
    let mut throttled = None;
    for _ in 0..5 {
        let a = h
            .get("/v1.0/identity/conditionalAccess/policies", &tok)
            .await;
        if a.status == 429 {
            throttled = Some(a);
            break;
        }
        assert_eq!(
            a.body["value"][0]["grantControls"]["builtInControls"],
            json!(["mfa"])
        );
    }
    let a = throttled.expect("throttled within 5 rapid calls");
    assert_eq!(a.body["error"]["code"], "TooManyRequests");
    assert!(a.header("retry-after").is_none());
}

#[tokio::test]
async fn mfa_settings_read_and_change() {
    let h = Harness::start(generated("tenants=2,users=3", 8)).await;
    let tok = h.token(0).await;
    let other = h.token(1).await;
    assert_eq!(
        h.call(
            "PATCH",
            "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy",
            &tok,
            Some(json!({"isEnabled": false}))
        )
        .await
        .status,
        204
    );
    assert_eq!(
        h.get(
            "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy",
            &tok
        )
        .await
        .body["isEnabled"],
        false
    );
    let pols = h
        .get("/v1.0/identity/conditionalAccess/policies", &tok)
        .await;
    let id = pols.body["value"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        h.call(
            "PATCH",
            &format!("/v1.0/identity/conditionalAccess/policies/{id}"),
            &tok,
            Some(json!({"state": "disabled"}))
        )
        .await
        .status,
        204
    );
    // conditional access allows ~1 request/s per tenant: use the other tenant
    let pols = h
        .get("/v1.0/identity/conditionalAccess/policies", &other)
        .await;
    let id = pols.body["value"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        h.call(
            "PATCH",
            &format!("/v1.0/identity/conditionalAccess/policies/{id}"),
            &other,
            Some(json!({"state": "bogus"}))
        )
        .await
        .status,
        400
    );
    let user = &h.tenant(0).keep[0];
    let uid = h.get(&format!("/v1.0/users/{user}"), &tok).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/beta/users/{uid}/authentication/requirements");
    assert_eq!(h.get(&path, &tok).await.body["perUserMfaState"], "enforced");
    assert_eq!(
        h.call(
            "PATCH",
            &path,
            &tok,
            Some(json!({"perUserMfaState": "disabled"}))
        )
        .await
        .status,
        204
    );
    assert_eq!(h.get(&path, &tok).await.body["perUserMfaState"], "disabled");
    assert_eq!(
        h.get(
            &format!("/v1.0/users/{uid}/authentication/requirements"),
            &tok
        )
        .await
        .status,
        400,
        "beta only"
    );
}

#[tokio::test]
async fn directory_reads_have_documented_shapes() {
    let h = Harness::start(generated("tenants=1,users=3,subscriptions=3,apps=1", 9)).await;
    let tok = h.token(0).await;
    let subs = h.get("/v1.0/directory/subscriptions", &tok).await;
    let s = &subs.body["value"][0];
    for k in [
        "id",
        "commerceSubscriptionId",
        "skuId",
        "skuPartNumber",
        "status",
        "isTrial",
        "totalLicenses",
        "createdDateTime",
    ] {
        assert!(!s[k].is_null(), "{k}");
    }
    let skus = h.get("/v1.0/subscribedSkus", &tok).await;
    assert_eq!(skus.body["value"].as_array().unwrap().len(), 3);
    assert!(skus.body["value"][0]["prepaidUnits"]["enabled"].is_number());
    let org = h.get("/v1.0/organization", &tok).await;
    assert_eq!(org.body["value"][0]["id"], h.tenant(0).tenant_id.as_str());
    assert_eq!(
        h.get("/v1.0/applications", &tok).await.body["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let sps = h.get("/v1.0/servicePrincipals", &tok).await;
    assert!(sps.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["appId"] == h.tenant(0).client_id.as_str()));
    assert_eq!(h.get("/v1.0/me", &tok).await.status, 400);
}
