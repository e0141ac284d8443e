//! Subscription lifecycle through Partner Center and the admin center
//! (operator API, auto-operator), deprovisioning by the sim's clock, and
//! tenant deletion with the portal's preconditions.

mod sim_support;

use closeout::sim::Options;
use serde_json::{json, Value};
use sim_support::{generated, Harness};
use std::time::Duration;

/// Polls `cond` every 5 ms for up to 5 s (the sim's clock runs on its own).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

fn subs_status(h: &Harness, tenant: &str) -> Vec<String> {
    h.sim
        .tenant(tenant)
        .unwrap()
        .subscriptions
        .iter()
        .map(|s| s.status.clone())
        .collect()
}

/// Deletes every non-keep user and turns MFA off, as closeout's steps 1 and 4 do.
/// What closeout's step 5 reads before its gate opens: the service
/// principals (the portal's list) and the tenant's discovery document (the
/// baseline); the auto-operator acts on step 5 only after both.
async fn step5_reads(h: &Harness, i: usize) {
    let tok = h.token(i).await;
    let t = h.tenant(i);
    assert_eq!(h.get("/v1.0/servicePrincipals", &tok).await.status, 200);
    let doc = sim_support::answer(
        h.http
            .get(h.url(&format!(
                "/{}/v2.0/.well-known/openid-configuration",
                t.tenant_id
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(doc.status, 200, "{}", doc.body);
}

async fn clean_directory(h: &Harness, i: usize) {
    let tok = h.token(i).await;
    let keep = h.tenant(i).keep;
    let users = h
        .get("/v1.0/users?$top=999&$select=id,userPrincipalName", &tok)
        .await;
    for u in users.body["value"].as_array().unwrap() {
        if !keep
            .iter()
            .any(|k| k == u["userPrincipalName"].as_str().unwrap())
        {
            let a = h
                .call(
                    "DELETE",
                    &format!("/v1.0/users/{}", u["id"].as_str().unwrap()),
                    &tok,
                    None,
                )
                .await;
            assert_eq!(a.status, 204);
        }
    }
    let a = h
        .call(
            "PATCH",
            "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy",
            &tok,
            Some(json!({"isEnabled": false})),
        )
        .await;
    assert_eq!(a.status, 204);
    let pols = h
        .get("/v1.0/identity/conditionalAccess/policies", &tok)
        .await;
    let id = pols.body["value"][0]["id"].as_str().unwrap();
    let a = h
        .call(
            "PATCH",
            &format!("/v1.0/identity/conditionalAccess/policies/{id}"),
            &tok,
            Some(json!({"state": "disabled"})),
        )
        .await;
    assert_eq!(a.status, 204);
}

#[tokio::test]
async fn partner_center_cancels_reactivates_and_deletes_with_deprovisioning() {
    let h = Harness::start(Options {
        deprovision_after: Duration::from_millis(40),
        ..generated("tenants=1,users=3,direct=0", 10)
    })
    .await;
    let t = h.tenant(0);
    let pc = h.partner_token().await;
    let sub = h.sim.tenant(&t.tenant_id).unwrap().subscriptions[0]
        .commerce_subscription_id
        .clone();
    let path = format!("/v1/customers/{}/subscriptions/{sub}", t.tenant_id);
    let got = h.get(&path, &pc).await;
    assert_eq!(
        (got.status, got.body["status"].clone()),
        (200, json!("active"))
    );
    let a = h
        .call("PATCH", &path, &pc, Some(json!({"status": "suspended"})))
        .await;
    assert_eq!(
        (a.status, a.body["status"].clone()),
        (200, json!("suspended"))
    );
    let tok = h.token(0).await;
    let graph = h.get("/v1.0/directory/subscriptions", &tok).await;
    let s = graph.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["commerceSubscriptionId"] == sub.as_str())
        .unwrap()
        .clone();
    assert_eq!(s["status"], "Suspended");
    assert_eq!(
        h.call("PATCH", &path, &pc, Some(json!({"status": "active"})))
            .await
            .status,
        200
    );
    assert_eq!(subs_status(&h, &t.tenant_id)[0], "Enabled");
    assert_eq!(
        h.call("PATCH", &path, &pc, Some(json!({"status": "deleted"})))
            .await
            .status,
        200
    );
    assert_eq!(
        subs_status(&h, &t.tenant_id)[0],
        "Suspended",
        "disabled until deprovisioned"
    );
    eventually("deprovisioning", || {
        subs_status(&h, &t.tenant_id)[0] == "Deleted"
    })
    .await;
    let a = h
        .call("PATCH", &path, &pc, Some(json!({"status": "active"})))
        .await;
    assert_eq!(a.status, 400, "no reactivation after deprovisioning");
    let effects: Vec<String> = h
        .sim
        .effects(0)
        .into_iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert_eq!(
        effects,
        vec![
            format!("PATCH {path}"),
            format!("PATCH {path}"),
            format!("PATCH {path}"),
            format!(
                "POST /_sim/tenants/{}/clock/subscriptions/{sub}/deprovision",
                t.tenant_id
            ),
        ]
    );
}

#[tokio::test]
async fn partner_center_refuses_direct_customers_foreign_tokens_and_closed_windows() {
    let h = Harness::start(generated(
        "tenants=3,users=3,direct=0.5,outside_window=3",
        11,
    ))
    .await;
    let pc = h.partner_token().await;
    for t in h.sim.tenants() {
        let state = h.sim.tenant(&t.tenant_id).unwrap();
        let locked = state
            .subscriptions
            .iter()
            .find(|s| !s.cancellable())
            .unwrap();
        let path = format!(
            "/v1/customers/{}/subscriptions/{}",
            t.tenant_id, locked.commerce_subscription_id
        );
        // Cancelling a new-commerce subscription is `deleted`, refused past
        // its window (suspending is accepted, and does not end billing).
        let a = h
            .call("PATCH", &path, &pc, Some(json!({"status": "deleted"})))
            .await;
        match t.billing {
            closeout::sim::state::Billing::Direct => assert_eq!(a.status, 404, "direct customer"),
            closeout::sim::state::Billing::Partner => {
                assert_eq!(a.status, 400, "outside the cancellation window");
                assert!(a.body["code"].is_number() && a.body["description"].is_string());
            }
        }
    }
    let customer_token = h.token(0).await;
    let t = h.tenant(0);
    let a = h
        .call(
            "PATCH",
            &format!("/v1/customers/{}/subscriptions/x", t.tenant_id),
            &customer_token,
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(a.status, 401);
    assert!(h.sim.effects(0).is_empty());
}

#[tokio::test]
async fn operator_deletes_tenant_only_when_the_portal_would() {
    let h = Harness::start(Options {
        deprovision_after: Duration::from_millis(20),
        ..generated("tenants=1,users=4,direct=1", 12)
    })
    .await;
    let t = h.tenant(0);
    let tok = h.token(0).await;
    let op = |p: String| {
        let http = h.http.clone();
        let url = h.url(&p);
        async move { sim_support::answer(http.post(url).send().await.unwrap()).await }
    };
    let refused = op(format!("/_sim/tenants/{}/operator/delete", t.tenant_id)).await;
    assert_eq!(refused.status, 409);
    let msg = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("users remain") && msg.contains("subscriptions are not deprovisioned"),
        "{msg}"
    );
    clean_directory(&h, 0).await;
    let subs: Vec<String> = h
        .sim
        .tenant(&t.tenant_id)
        .unwrap()
        .subscriptions
        .iter()
        .map(|s| s.commerce_subscription_id.clone())
        .collect();
    for s in &subs {
        assert_eq!(
            op(format!(
                "/_sim/tenants/{}/operator/subscriptions/{s}/cancel",
                t.tenant_id
            ))
            .await
            .status,
            200
        );
        assert_eq!(
            op(format!(
                "/_sim/tenants/{}/operator/subscriptions/{s}/delete",
                t.tenant_id
            ))
            .await
            .status,
            200
        );
    }
    assert_eq!(
        op(format!("/_sim/tenants/{}/operator/delete", t.tenant_id))
            .await
            .status,
        409,
        "not deprovisioned yet"
    );
    eventually("deprovisioning", || {
        subs_status(&h, &t.tenant_id).iter().all(|s| s == "Deleted")
    })
    .await;
    // closeout's own enterprise app is one the portal wants gone too
    // (https://learn.microsoft.com/entra/identity/users/directory-delete-howto).
    let refused = op(format!("/_sim/tenants/{}/operator/delete", t.tenant_id)).await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("enterprise apps remain"),
        "{}",
        refused.body
    );
    assert_eq!(
        op(format!(
            "/_sim/tenants/{}/operator/service-principals/{}/delete",
            t.tenant_id, t.client_id
        ))
        .await
        .status,
        200
    );
    // Without its service principal, closeout's app gets no token.
    let refused = h
        .token_for(
            &t.tenant_id,
            &t.client_id,
            &t.client_secret,
            "https://graph.microsoft.com/.default",
        )
        .await;
    assert_eq!(
        refused.body["error_codes"],
        json!([7000229]),
        "{}",
        refused.body
    );
    assert_eq!(
        op(format!("/_sim/tenants/{}/operator/delete", t.tenant_id))
            .await
            .status,
        200
    );
    let gone = h
        .token_for(
            &t.tenant_id,
            &t.client_id,
            &t.client_secret,
            "https://graph.microsoft.com/.default",
        )
        .await;
    assert_eq!(gone.status, 400);
    assert_eq!(gone.body["error_codes"], json!([90002]));
    // The credential-free discovery document: not found once deleted.
    let doc = sim_support::answer(
        h.http
            .get(h.url(&format!(
                "/{}/v2.0/.well-known/openid-configuration",
                t.tenant_id
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(doc.status, 400, "{}", doc.body);
    assert_eq!(doc.body["error"], "invalid_tenant");
    assert_eq!(doc.body["error_codes"], json!([90002]));
    assert_eq!(h.get("/v1.0/users", &tok).await.status, 401);
    assert!(h.sim.tenants().is_empty());
    let last = h.sim.effects(0).pop().unwrap();
    assert_eq!(
        last.path,
        format!("/_sim/tenants/{}/operator/delete", t.tenant_id)
    );
}

#[tokio::test]
async fn operator_cannot_cancel_partner_managed_subscriptions() {
    let h = Harness::start(generated("tenants=1,users=2,direct=0", 13)).await;
    let t = h.tenant(0);
    let sub = h.sim.tenant(&t.tenant_id).unwrap().subscriptions[0]
        .commerce_subscription_id
        .clone();
    let a = sim_support::answer(
        h.http
            .post(h.url(&format!(
                "/_sim/tenants/{}/operator/subscriptions/{sub}/cancel",
                t.tenant_id
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 409);
}

#[tokio::test]
async fn auto_operator_finishes_a_direct_tenant_once_closeout_did_its_part() {
    let opts = Options {
        deprovision_after: Duration::from_millis(30),
        auto_operator: Some(Duration::from_millis(20)),
        ..generated("tenants=2,users=5,direct=1", 14)
    };
    let h = Harness::start(opts).await;
    let t = h.tenant(0);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        subs_status(&h, &t.tenant_id),
        vec!["Enabled", "Enabled"],
        "nothing before the users are gone"
    );
    clean_directory(&h, 0).await;
    step5_reads(&h, 0).await;
    eventually("tenant deleted", || {
        h.sim.tenant(&t.tenant_id).unwrap().deleted
    })
    .await;
    let mine: Vec<String> = h
        .sim
        .effects(0)
        .into_iter()
        .filter(|e| e.path.starts_with("/_sim/"))
        .map(|e| e.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        mine,
        vec![
            "cancel",
            "cancel",
            "delete",
            "delete",
            "deprovision",
            "deprovision",
            "delete",
            "delete"
        ]
    );
    assert!(
        !h.sim.tenant(&h.tenant(0).tenant_id).unwrap().deleted,
        "the other tenant is untouched"
    );
    let v: Value = h.own("/_sim/tenants").await.body;
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_correct_client_closes_a_partner_billed_tenant_completely() {
    let opts = Options {
        deprovision_after: Duration::from_millis(20),
        auto_operator: Some(Duration::from_millis(10)),
        ..generated("tenants=1,users=12,direct=0,subscriptions=3", 15)
    };
    let h = Harness::start(opts).await;
    let t = h.tenant(0);
    clean_directory(&h, 0).await;
    let pc = h.partner_token().await;
    let subs: Vec<String> = h
        .sim
        .tenant(&t.tenant_id)
        .unwrap()
        .subscriptions
        .iter()
        .map(|s| s.commerce_subscription_id.clone())
        .collect();
    for s in &subs {
        let path = format!("/v1/customers/{}/subscriptions/{s}", t.tenant_id);
        assert_eq!(
            h.call("PATCH", &path, &pc, Some(json!({"status": "suspended"})))
                .await
                .status,
            200
        );
        assert_eq!(
            h.call("PATCH", &path, &pc, Some(json!({"status": "deleted"})))
                .await
                .status,
            200
        );
    }
    step5_reads(&h, 0).await;
    eventually("tenant deleted", || {
        h.sim.tenant(&t.tenant_id).unwrap().deleted
    })
    .await;
    let gone = h
        .token_for(
            &t.tenant_id,
            &t.client_id,
            &t.client_secret,
            "https://graph.microsoft.com/.default",
        )
        .await;
    assert_eq!(gone.body["error_codes"], json!([90002]));
    let state = h.own(&format!("/_sim/tenants/{}", t.tenant_id)).await.body;
    assert_eq!(state["deleted"], true);
    assert_eq!(state["users"].as_object().unwrap().len(), 1);
    assert_eq!(state["deleted_users"].as_object().unwrap().len(), 11);
}

/// Partner Center's headers as documented: `MS-Contract-Version` required;
/// `If-Match` must carry the resource's current ETag; a repeated
/// `MS-RequestId` is the same request (its first answer, no second change).
#[tokio::test]
async fn partner_center_checks_its_headers_and_repeats_a_request_once() {
    let h = Harness::start(generated("tenants=1,users=3,direct=0", 21)).await;
    let pc = h.partner_token().await;
    let t = h.tenant(0);
    let sub = h.sim.tenant(&t.tenant_id).unwrap().subscriptions[0]
        .commerce_subscription_id
        .clone();
    let path = format!("/v1/customers/{}/subscriptions/{sub}", t.tenant_id);
    let url = h.url(&path);
    let bare = h
        .http
        .get(&url)
        .bearer_auth(&pc)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(bare.as_u16(), 400, "MS-Contract-Version is required");
    let got = h.get(&path, &pc).await;
    let etag = got.body["attributes"]["etag"].as_str().unwrap().to_string();
    let patch = |rid: &str, etag: &str, on: bool| {
        h.http
            .patch(&url)
            .bearer_auth(&pc)
            .header("MS-Contract-Version", "v1")
            .header("MS-RequestId", rid)
            .header("If-Match", etag)
            .json(&serde_json::json!({"autoRenewEnabled": on}))
            .send()
    };
    let stale = patch("r0", "stale", false).await.unwrap().status();
    assert_eq!(stale.as_u16(), 412, "If-Match not the current ETag");
    let first = patch("r1", &etag, false).await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let first: serde_json::Value = first.json().await.unwrap();
    // The retry after a timeout: same id, same answer, nothing changed again
    // (the ETag has moved, yet the repeat is not refused).
    let again = patch("r1", &etag, false).await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, first);
    let changes = h
        .sim
        .effects(0)
        .into_iter()
        .filter(|e| e.path == path)
        .count();
    assert_eq!(changes, 1, "one change for one request id");
    assert!(!h.sim.tenant(&t.tenant_id).unwrap().subscriptions[0].auto_renew);
}
