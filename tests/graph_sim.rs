//! The Graph client against the real simulator (in-process, loopback):
//! batches with mixed item results, ghosts, throttling, faults, tokens.

use closeout::graph::{Client, ClientOptions, Endpoints, TenantClient};
use closeout::model::{Applied, FailureClass, Secret};
use closeout::ports::TenantApi;
use closeout::sim::{GenerateSpec, Options, Sim, SimHandle};
use std::time::Duration;

async fn sim(spec: &str, tweak: impl FnOnce(&mut Options)) -> SimHandle {
    let spec: GenerateSpec = spec.parse().unwrap();
    let mut o = Options {
        fixture: closeout::sim::generate::generate(&spec, 7),
        ..Options::default()
    };
    tweak(&mut o);
    Sim::start(o).await.unwrap()
}

fn client(sim: &SimHandle, tweak: impl FnOnce(&mut ClientOptions)) -> Client {
    let base = url::Url::parse(&sim.base_url()).unwrap();
    let mut o = ClientOptions {
        request_timeout: Duration::from_millis(500),
        ..ClientOptions::default()
    };
    tweak(&mut o);
    Client::new(Endpoints::all_at(&base), o).unwrap()
}

fn tenant(sim: &SimHandle, c: &Client, n: usize) -> TenantClient {
    let t = &sim.tenants()[n];
    c.tenant(
        &t.tenant_id,
        &t.client_id,
        Secret::new(t.client_secret.clone()),
    )
}

/// Ids of the users that are not kept.
async fn victims(sim: &SimHandle, t: &TenantClient) -> Vec<String> {
    let keep = &sim.tenants()[0].keep;
    t.list_users()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| !keep.contains(&u.user_principal_name))
        .map(|u| u.id)
        .collect()
}

#[tokio::test]
async fn batch_with_mixed_item_results() {
    let sim = sim("tenants=1,users=45,admins=1,unprivileged=1", |_| {}).await;
    let c = client(&sim, |_| {});
    let t = tenant(&sim, &c, 0);
    let mut ids = victims(&sim, &t).await;
    assert_eq!(ids.len(), 44);
    // One deleted beforehand: its batch item answers 404 = already done.
    let first = t.delete_user(&ids[0]).await;
    assert_eq!(first.result, Ok(Applied::Done));
    ids.push("odd id?x=1#y".into());
    let out = t.delete_users(&ids).await;
    assert_eq!(out.len(), ids.len());
    let mut done = 0;
    let mut denied = 0;
    for (n, (id, o)) in out.iter().enumerate() {
        assert_eq!(id, &ids[n], "outcomes in the order given");
        if n == 0 {
            assert_eq!(o.result, Ok(Applied::AlreadyDone));
            assert_eq!(o.http.status, 404);
        } else if n == ids.len() - 1 {
            // An id outside the usual alphabet is encoded as one path
            // segment and judged by the service: no such user, so a delete
            // is already done, and nothing else was touched.
            assert_eq!(o.result, Ok(Applied::AlreadyDone), "{o:?}");
            assert_eq!(o.http.path, "/v1.0/users/odd%20id%3Fx%3D1%23y");
        } else if o.http.status == 403 {
            denied += 1;
            let e = o.result.as_ref().unwrap_err();
            assert_eq!(
                (e.class, e.code.as_str()),
                (FailureClass::Permanent, "Authorization_RequestDenied")
            );
            assert!(
                e.message.contains(&sim.tenants()[0].tenant_id),
                "{}",
                e.message
            );
            assert_eq!(o.http.status, 403);
        } else {
            assert_eq!(o.result, Ok(Applied::Done), "{id}: {o:?}");
            done += 1;
        }
        if n < ids.len() - 1 {
            assert_eq!(o.http.method, "DELETE");
            assert_eq!(o.http.path, format!("/v1.0/users/{id}"));
            assert!(!o.http.request_id.is_empty());
        }
    }
    assert_eq!((done, denied), (42, 1), "one admin the app may not delete");
    // Every delete applied once, recorded with its own path.
    let effects = sim.effects(0);
    let deletes = effects.iter().filter(|e| e.method == "DELETE").count();
    assert_eq!(deletes, done + 1);
    let left = t.list_users().await.unwrap().len();
    assert_eq!(left, 45 - done - 1);
}

fn user_ids(sim: &SimHandle) -> Vec<String> {
    let info = &sim.tenants()[0];
    let t = sim.tenant(&info.tenant_id).unwrap();
    t.users
        .iter()
        .filter(|(_, u)| !info.keep.contains(&u.user_principal_name))
        .map(|(id, _)| id.clone())
        .collect()
}

#[tokio::test]
async fn ghost_failures_are_in_doubt() {
    let sim = sim("tenants=1,users=5", |o| o.ghost_rate = 1.0).await;
    let c = client(&sim, |_| {});
    let t = tenant(&sim, &c, 0);
    // A single write answered 429/5xx although applied: in doubt.
    let o = t.set_security_defaults(false).await;
    let e = o.result.unwrap_err();
    assert_eq!(e.class, FailureClass::InDoubt, "{e}");
    assert!(
        !sim.tenant(&sim.tenants()[0].tenant_id)
            .unwrap()
            .security_defaults
    );
    let ids = user_ids(&sim);
    let o = t.delete_user(&ids[0]).await;
    assert_eq!(o.result.unwrap_err().class, FailureClass::InDoubt);
    // In a batch, with reads failing too, nothing can be resolved: in doubt.
    let out = t.delete_users(&ids[1..]).await;
    for (id, o) in &out {
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(e.class, FailureClass::InDoubt, "{id}: {e}");
    }
}

/// Ghosts (deletes applied but answered 429/5xx) come back in doubt: the
/// client neither reads them back nor resends them (the saga does, from its
/// recorded intents).
#[tokio::test]
async fn ghost_batch_items_come_back_in_doubt_not_resent() {
    let sim = sim("tenants=1,users=120", |o| {
        o.ghost_rate = 0.3;
        o.seed = 11;
    })
    .await;
    let c = client(&sim, |_| {});
    let t = tenant(&sim, &c, 0);
    let ids = user_ids(&sim);
    let out = t.delete_users(&ids).await;
    let mut in_doubt = 0;
    for (id, o) in &out {
        match (&o.result, o.http.method.as_str(), o.http.status) {
            (Ok(Applied::Done), "DELETE", 204) => {}
            (Ok(Applied::AlreadyDone), "DELETE", 404) => {}
            (Err(e), _, _) if e.class == FailureClass::InDoubt => in_doubt += 1,
            other => panic!("{id}: unexpected {other:?}"),
        }
    }
    assert!(in_doubt > 0, "some ghosts were returned in doubt");
}

#[tokio::test]
async fn in_doubt_items_are_reported_unread() {
    let sim = sim("tenants=1,users=5", |o| o.error_rate = 1.0).await;
    let c = client(&sim, |_| {});
    let t = tenant(&sim, &c, 0);
    // Reads fail too (5xx): transient.
    let e = t.list_users().await.unwrap_err();
    assert_eq!(e.class, FailureClass::Transient, "{e}");
    assert!(e.message.contains("GET /v1.0/users"), "{e}");
    let ids: Vec<String> = sim
        .tenant(&sim.tenants()[0].tenant_id)
        .unwrap()
        .users
        .keys()
        .cloned()
        .collect();
    let out = t.delete_users(&ids).await;
    for (_, o) in &out {
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(e.class, FailureClass::InDoubt, "{e}");
    }
}

#[tokio::test]
async fn resets_and_hangs_are_transient_for_reads_and_in_doubt_for_writes() {
    let sim1 = sim("tenants=1,users=5", |o| o.reset_rate = 1.0).await;
    let c = client(&sim1, |_| {});
    let t = tenant(&sim1, &c, 0);
    let e = t.get_security_defaults().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Transient, "connection_reset"),
        "{e}"
    );
    let e = t.set_security_defaults(false).await.result.unwrap_err();
    assert_eq!(e.class, FailureClass::InDoubt, "{e}");

    let sim2 = sim("tenants=1,users=5", |o| o.hang_rate = 1.0).await;
    let c = client(&sim2, |o| o.request_timeout = Duration::from_millis(200));
    let t = tenant(&sim2, &c, 0);
    let e = t.get_security_defaults().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Transient, "timeout"),
        "{e}"
    );
    let o = t.set_security_defaults(false).await;
    let e = o.result.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::InDoubt, "timeout"),
        "{e}"
    );
    assert_eq!(o.http.status, 0);
}

#[tokio::test]
async fn wrong_secret_is_permanent_with_the_aadsts_code() {
    let sim = sim("tenants=1,users=5", |_| {}).await;
    let c = client(&sim, |_| {});
    let info = &sim.tenants()[0];
    let t = c.tenant(&info.tenant_id, &info.client_id, Secret::new("wrong"));
    let e = t.list_users().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (FailureClass::Permanent, "AADSTS7000215"),
        "{e}"
    );
    assert!(e.message.contains(&info.tenant_id), "{}", e.message);
    let gone = c.tenant(
        "00000000-0000-0000-0000-000000000001",
        &info.client_id,
        Secret::new("x"),
    );
    assert_eq!(gone.tenant_exists().await, Ok(false));
    assert_eq!(tenant(&sim, &c, 0).tenant_exists().await, Ok(true));
}

#[tokio::test]
async fn token_expiring_mid_run_is_renewed_once() {
    let sim = sim("tenants=1,users=5", |_| {}).await;
    let c = client(&sim, |_| {});
    let t = tenant(&sim, &c, 0);
    assert!(t.get_security_defaults().await.unwrap());
    // The cached token expires at the service before the client expected it.
    sim.with_world(|w| {
        for tok in w.tokens.values_mut() {
            tok.expires = tokio::time::Instant::now();
        }
    });
    assert_eq!(t.list_users().await.unwrap().len(), 5);
    let live = sim.with_world(|w| {
        let now = tokio::time::Instant::now();
        w.tokens.values().filter(|t| t.expires > now).count()
    });
    assert_eq!(live, 1, "exactly one renewal");
}

#[tokio::test]
async fn throttled_writes_carry_retry_after_in_whole_seconds_and_gate_the_next() {
    let sim = sim("tenants=1,users=8", |o| {
        o.write_limit = Some(closeout::sim::throttle::Budget::parse("2/1s").unwrap());
    })
    .await;
    let c = client(&sim, |_| {});
    let t = tenant(&sim, &c, 0);
    let ids = victims(&sim, &t).await;
    assert_eq!(t.delete_user(&ids[0]).await.result, Ok(Applied::Done));
    assert_eq!(t.delete_user(&ids[1]).await.result, Ok(Applied::Done));
    let o = t.delete_user(&ids[2]).await;
    assert_eq!(o.http.status, 429);
    let e = o.result.unwrap_err();
    assert_eq!(e.class, FailureClass::InDoubt);
    // The bucket refills in at most 500 ms; Retry-After is whole seconds
    // (RFC 9110 delay-seconds), rounded up.
    let ra = e.retry_after.expect("retry-after");
    assert_eq!(ra, Duration::from_secs(1), "{ra:?}");
    // The next write waits for it, then succeeds.
    let start = std::time::Instant::now();
    assert_eq!(t.delete_user(&ids[3]).await.result, Ok(Applied::Done));
    assert!(
        start.elapsed() >= ra.min(Duration::from_millis(200)),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn partner_center_status_changes_and_direct_customers() {
    use closeout::model::PartnerStatus;
    use closeout::ports::PartnerApi;
    use closeout::sim::state::Billing;
    let sim = sim("tenants=4,users=3,direct=0.5", |_| {}).await;
    let c = client(&sim, |_| {});
    let p = sim.partner();
    let partner = c.partner(
        &p.tenant_id,
        &p.client_id,
        Secret::new(p.client_secret.clone()),
    );
    let infos = sim.tenants();
    let billed = infos
        .iter()
        .find(|t| t.billing == Billing::Partner)
        .unwrap();
    let direct = infos.iter().find(|t| t.billing == Billing::Direct).unwrap();
    let t = c.tenant(
        &billed.tenant_id,
        &billed.client_id,
        Secret::new(billed.client_secret.clone()),
    );
    let sub = t
        .list_subscriptions()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.status.is_active())
        .unwrap();
    let o = partner
        .set_subscription_status(
            &billed.tenant_id,
            &sub.commerce_subscription_id,
            PartnerStatus::Suspended,
        )
        .await;
    assert_eq!(o.result, Ok(Applied::Done), "{o:?}");
    assert_eq!(o.http.method, "PATCH");
    assert_eq!(
        o.http.path,
        format!(
            "/v1/customers/{}/subscriptions/{}",
            billed.tenant_id, sub.commerce_subscription_id
        )
    );
    let after = t.list_subscriptions().await.unwrap();
    assert!(after
        .iter()
        .any(|s| s.id == sub.id && !s.status.is_active()));
    // Asked again (e.g. after an in-doubt answer): already done, no change.
    let o = partner
        .set_subscription_status(
            &billed.tenant_id,
            &sub.commerce_subscription_id,
            PartnerStatus::Suspended,
        )
        .await;
    assert_eq!(o.result, Ok(Applied::AlreadyDone));
    let d = c.tenant(
        &direct.tenant_id,
        &direct.client_id,
        Secret::new(direct.client_secret.clone()),
    );
    let dsub = d.list_subscriptions().await.unwrap().remove(0);
    let o = partner
        .set_subscription_status(
            &direct.tenant_id,
            &dsub.commerce_subscription_id,
            PartnerStatus::Suspended,
        )
        .await;
    let e = o.result.unwrap_err();
    assert_eq!(
        (e.class, o.http.status),
        (FailureClass::Permanent, 404),
        "{e}"
    );
}

#[tokio::test]
async fn restore_users_brings_deleted_users_back() {
    let sim = sim("tenants=1,users=30", |_| {}).await;
    let c = client(&sim, |_| {});
    let t = tenant(&sim, &c, 0);
    let ids = victims(&sim, &t).await;
    let out = t.delete_users(&ids).await;
    assert!(out.iter().all(|(_, o)| o.result == Ok(Applied::Done)));
    let deleted = t.list_deleted_users().await.unwrap();
    assert_eq!(deleted.len(), ids.len());
    let out = t.restore_users(&ids).await;
    for (id, o) in &out {
        assert_eq!(o.result, Ok(Applied::Done), "{id}: {o:?}");
        assert_eq!(o.http.method, "POST");
        assert_eq!(
            o.http.path,
            format!("/v1.0/directory/deletedItems/{id}/restore")
        );
    }
    assert_eq!(t.list_users().await.unwrap().len(), 30);
    assert!(t.list_deleted_users().await.unwrap().is_empty());
}

#[tokio::test]
async fn with_replication_lag_reads_trail_writes_and_a_second_restore_is_in_doubt() {
    let lag = Duration::from_millis(300);
    let sim = sim("tenants=1,users=4", |o| o.replication_lag = lag).await;
    let c = client(&sim, |_| {});
    let t = tenant(&sim, &c, 0);
    let id = user_ids(&sim)[0].clone();
    let began = tokio::time::Instant::now();
    assert_eq!(t.delete_user(&id).await.result, Ok(Applied::Done));
    // Within the lag, reads still show the user and an empty recycle bin.
    let seen = t.get_user(&id).await.unwrap();
    let bin = t.list_deleted_users().await.unwrap();
    if began.elapsed() < lag {
        assert!(seen.is_some(), "a read within the lag shows the user");
        assert!(bin.iter().all(|d| d.id != id), "{bin:?}");
    }
    // The restore (a `$batch` item with a body and a Content-Type), then a
    // second one: the object is no longer in the recycle bin (404), which a
    // lagging read cannot tell from "restored": in doubt, never permanent.
    let out = t.restore_users(std::slice::from_ref(&id)).await;
    assert_eq!(out[0].1.result, Ok(Applied::Done), "{:?}", out[0].1);
    let again = t.restore_users(std::slice::from_ref(&id)).await;
    let e = again[0].1.result.as_ref().unwrap_err();
    assert_eq!(
        (e.class, again[0].1.http.status),
        (FailureClass::InDoubt, 404),
        "{e}"
    );
    // After the lag, the user reads back by id, under its own UPN.
    tokio::time::sleep(lag).await;
    let u = t.get_user(&id).await.unwrap().expect("restored user");
    assert!(!u.user_principal_name.starts_with(&id.replace('-', "")));
    // One delete and one restore in the ledger: the second restore changed nothing.
    let effects = sim.effects(0);
    assert_eq!(effects.len(), 2, "{effects:?}");
}

#[tokio::test]
async fn a_deleted_user_reads_with_its_object_id_before_its_upn() {
    let sim = sim("tenants=1,users=3", |_| {}).await;
    let c = client(&sim, |_| {});
    let t = tenant(&sim, &c, 0);
    let id = user_ids(&sim)[0].clone();
    let upn = sim.tenant(&sim.tenants()[0].tenant_id).unwrap().users[&id]
        .user_principal_name
        .clone();
    assert_eq!(t.delete_user(&id).await.result, Ok(Applied::Done));
    let bin = t.list_deleted_users().await.unwrap();
    let d = bin.iter().find(|d| d.id == id).expect("in the recycle bin");
    assert_eq!(
        d.user_principal_name,
        format!("{}{upn}", id.replace('-', ""))
    );
}

/// Graph's sellers and Partner Center's list classify each subscription as
/// its documented kind; the partner's NCE subscriptions inside their window
/// are cancelled, everything it did not sell goes to a person.
#[tokio::test]
async fn subscriptions_are_classified_by_seller_and_partner_center_list() {
    use closeout::ports::PartnerApi;
    use closeout::saga::subscriptions::{classify, plan_for, Place, Plan};
    use closeout::sim::state::Billing;
    let sim = sim(
        "tenants=2,users=3,direct=0,trials=1,self_service=1,other_partner=1,legacy=1",
        |_| {},
    )
    .await;
    let c = client(&sim, |_| {});
    let p = sim.partner();
    let partner = c.partner(
        &p.tenant_id,
        &p.client_id,
        Secret::new(p.client_secret.clone()),
    );
    let info = &sim.tenants()[0];
    assert_eq!(info.billing, Billing::Partner);
    let t = c.tenant(
        &info.tenant_id,
        &info.client_id,
        Secret::new(info.client_secret.clone()),
    );
    let graph = t.list_subscription_details().await.unwrap();
    let list = partner
        .list_customer_subscriptions(&info.tenant_id)
        .await
        .unwrap()
        .expect("the partner's customer");
    assert_eq!(list.len(), 2, "only what the partner sold: {list:?}");
    let classes = classify(&graph, Some(&list), partner.partner_tenant_id());
    let now = closeout::model::Timestamp::from_system(std::time::SystemTime::now());
    let plans: Vec<Plan> = classes.iter().map(|c| plan_for(c, now)).collect();
    assert_eq!(
        plans,
        vec![
            Plan::SuspendThenDelete,
            Plan::Cancel,
            Plan::Operator(Place::AdminCenterProducts),
            Plan::Operator(Place::SelfServiceProducts),
            Plan::Operator(Place::SellingPartner),
        ],
        "{classes:#?}"
    );
}
