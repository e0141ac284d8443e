//! Model-based test of the saga: for each seed, a small in-memory tenant with
//! random faults (transient, permanent, ghost, lost responses) is closed once
//! without interruption and once cut after a random event and resumed from the
//! recorded prefix only (bincode round trip), performing through the real
//! `runtime::perform`. Invariants are checked on every call and every run.
//!
//! `CLOSEOUT_SAGA_SEEDS=N` raises the number of seeds (default 2000).

#[path = "saga_model/fake.rs"]
mod fake;

use closeout::model::{
    Application, CaPolicy, CaPolicyState, PartnerStatus, PerUserMfaState, SagaId, SecretSource,
    Subscription, SubscriptionMode, SubscriptionStatus, TenantSpec, Timestamp, User,
};
use closeout::retry::{Jitter, RetryPolicy};
use closeout::runtime::perform::perform;
use closeout::saga::{
    apply, decide, fold, handle, Change, Command, Ending, Event, FailurePolicy, SagaPolicy, State,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake::{Fake, World};

const T0: u64 = 1_800_000_000_000;

/// One seed's tenant, spec and policy.
struct Scenario {
    fake: Fake,
    spec: TenantSpec,
    policy: SagaPolicy,
    /// Abort once this step has started (if any).
    abort_at_step: Option<u8>,
    /// Pause (and later resume) once this step has started (if any).
    pause_at_step: Option<u8>,
    /// Whether the operator confirms gates after acting (an immediate re-check).
    confirms: bool,
}

fn scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tenant_id = format!("tenant-{seed}");
    let n_users = rng.gen_range(2..12);
    let mut users = BTreeMap::new();
    let mut mfa = BTreeMap::new();
    for i in 0..n_users {
        let id = format!("u{i:02}-{seed}");
        users.insert(
            id.clone(),
            User {
                id: id.clone(),
                user_principal_name: format!("user{i}@{tenant_id}.example"),
                display_name: format!("User {i}"),
                account_enabled: true,
                on_premises_sync_enabled: false,
                user_type: "Member".to_string(),
            },
        );
        if rng.gen_bool(0.3) {
            mfa.insert(id, PerUserMfaState::Enforced);
        }
    }
    let ids: Vec<String> = users.keys().cloned().collect();
    let admin = ids[0].clone();
    let mut admins = BTreeSet::from([admin.clone()]);
    if rng.gen_bool(0.3) {
        admins.insert(ids[1].clone());
    }
    // Keep: the admin (by UPN), sometimes another user by id; rarely a keep list
    // without a Global Administrator (the saga must fail before any change).
    let bad_keep = rng.gen_bool(0.04);
    let mut keep = if bad_keep {
        vec![ids[ids.len() - 1].clone()]
    } else {
        vec![users[&admin].user_principal_name.to_uppercase()]
    };
    if !bad_keep && ids.len() > 2 && rng.gen_bool(0.4) {
        keep.push(ids[2].clone());
    }
    if bad_keep {
        admins.remove(&ids[ids.len() - 1]);
    }
    let keep_ids: BTreeSet<String> = ids
        .iter()
        .filter(|id| {
            keep.iter()
                .any(|k| k == *id || k.eq_ignore_ascii_case(&users[*id].user_principal_name))
        })
        .cloned()
        .collect();
    let mut subs = BTreeMap::new();
    for i in 0..rng.gen_range(0..4) {
        let id = format!("cs{i}-{seed}");
        let status = if rng.gen_bool(0.8) {
            SubscriptionStatus::Enabled
        } else {
            SubscriptionStatus::Warning
        };
        subs.insert(
            id.clone(),
            (
                Subscription {
                    id: format!("g{i}"),
                    commerce_subscription_id: id,
                    sku_id: "sku".to_string(),
                    sku_part_number: "O365_BUSINESS".to_string(),
                    status,
                    is_trial: false,
                    total_licenses: 10,
                },
                None,
            ),
        );
    }
    let ca = (0..rng.gen_range(0..3))
        .map(|i| CaPolicy {
            id: format!("ca{i}"),
            display_name: format!("Require MFA {i}"),
            state: CaPolicyState::Enabled,
            requires_mfa: rng.gen_bool(0.7),
        })
        .collect();
    let mut poisoned = BTreeSet::new();
    if rng.gen_bool(0.1) {
        let victims: Vec<&String> = ids.iter().filter(|i| !keep_ids.contains(*i)).collect();
        if let Some(v) = victims.first() {
            poisoned.insert((*v).clone());
        }
    }
    // After the pivot: a failure there must pause, never compensate.
    if rng.gen_bool(0.15) {
        poisoned.insert("ca0".to_string());
    }
    if rng.gen_bool(0.1) {
        poisoned.insert("securityDefaults".to_string());
    }
    if rng.gen_bool(0.05) {
        if let Some(id) = subs.keys().next() {
            poisoned.insert(id.clone());
        }
    }
    let faulty = rng.gen_bool(0.7);
    let world = World {
        seed,
        tenant_id: tenant_id.clone(),
        users,
        deleted: BTreeMap::new(),
        admins,
        keep_ids,
        subs,
        security_defaults: rng.gen_bool(0.6),
        ca,
        mfa,
        apps: vec![Application {
            id: "app".to_string(),
            app_id: "closeout".to_string(),
            display_name: "closeout".to_string(),
        }],
        exists: true,
        poisoned,
        transient_rate: if faulty { 0.15 } else { 0.0 },
        ghost_rate: if faulty { 0.08 } else { 0.0 },
        lost_rate: if faulty { 0.05 } else { 0.0 },
        calls: BTreeMap::new(),
        now: T0,
        log: Vec::new(),
        violations: Vec::new(),
        destructive: Vec::new(),
    };
    let spec = TenantSpec {
        tenant_id,
        client_id: "client".to_string(),
        secret: SecretSource::Credential("secret".to_string()),
        keep,
        subscriptions: if rng.gen_bool(0.5) {
            SubscriptionMode::PartnerCenter
        } else {
            SubscriptionMode::Manual
        },
    };
    let policy = SagaPolicy {
        failure: if rng.gen_bool(0.5) {
            FailurePolicy::Compensate
        } else {
            FailurePolicy::Pause
        },
        retry: RetryPolicy {
            initial_interval: Duration::from_millis(200),
            multiplier: 2.0,
            max_interval: Duration::from_secs(30),
            jitter: Jitter::Full,
            give_up_after: Duration::from_secs(6 * 3600),
        },
        intent_size: rng.gen_range(1..6),
        deprovision_poll: Duration::from_secs(rng.gen_range(8..30) * 3600),
        ..SagaPolicy::default()
    };
    let abort_at_step = rng.gen_bool(0.15).then(|| rng.gen_range(1..=5));
    let pause_at_step = rng.gen_bool(0.15).then(|| rng.gen_range(1..=5));
    let confirms = rng.gen_bool(0.5);
    Scenario {
        fake: Fake(Arc::new(Mutex::new(world))),
        spec,
        policy,
        abort_at_step,
        pause_at_step,
        confirms,
    }
}

/// How a run ended.
#[derive(Debug, PartialEq)]
enum RunEnd {
    /// The saga reached a terminal state.
    Ended(Ending),
    /// The run was cut after the given number of events.
    Cut,
}

/// Drives decide / record / perform until the saga ends, or until `cut` events
/// have been appended to the log in total (a crash).
fn drive(sc: &Scenario, mut state: State, cut: Option<usize>) -> (RunEnd, State) {
    let fake = &sc.fake;
    let append = |state: State, e: Event| -> (State, bool) {
        let crashed = fake.with(|w| {
            w.log.push(e.clone());
            cut.is_some_and(|c| w.log.len() >= c)
        });
        (apply(state, &e), crashed)
    };
    for _ in 0..5000 {
        if let Some(ending) = &state.ending() {
            return (RunEnd::Ended((*ending).clone()), state);
        }
        let now = Timestamp(fake.with(|w| w.now));
        // The operator: acts behind open gates, aborts once, heals and resumes pauses.
        let mut commands = Vec::new();
        if let Some((gate, _)) = &state.gate {
            fake.with(|w| w.operator(*gate));
            // The backup gate (these sagas record no backup policy, so they
            // get it, as sagas recorded before the setting did): the
            // operator attests once.
            if *gate == closeout::saga::Gate::AttestBackup && state.backup_attested.is_none() {
                commands.push(Command::AttestBackup {
                    who: "op".into(),
                    why: "copied to the archive".into(),
                });
            }
            // Confirm once per opened gate: it only triggers a re-check.
            let unconfirmed = fake.with(|w| {
                let opened = w
                    .log
                    .iter()
                    .rposition(|e| matches!(e, Event::GateOpened { .. }));
                let confirmed = w
                    .log
                    .iter()
                    .rposition(|e| matches!(e, Event::GateConfirmed { .. }));
                opened > confirmed
            });
            if sc.confirms && unconfirmed {
                commands.push(Command::ConfirmGate {
                    who: "op".into(),
                    why: "done in the portal".into(),
                });
            }
        }
        let paused_once = fake.with(|w| {
            w.log
                .iter()
                .any(|e| matches!(e, Event::Paused { who, .. } if who == "op"))
        });
        if sc.pause_at_step.is_some_and(|s| state.step >= s)
            && !paused_once
            && state.paused.is_none()
        {
            commands.push(Command::Pause {
                who: "op".into(),
                why: "model".into(),
            });
        }
        let aborted = fake.with(|w| {
            w.log
                .iter()
                .any(|e| matches!(e, Event::AbortRequested { .. } | Event::AbortRefused { .. }))
        });
        if sc.abort_at_step.is_some_and(|s| state.step >= s) && !aborted {
            commands.push(Command::Abort {
                who: "op".into(),
                why: "model".into(),
            });
        }
        if state.paused.is_some() {
            fake.with(|w| w.poisoned.clear());
            commands.push(Command::Resume {
                who: "op".into(),
                why: "healed".into(),
            });
        }
        for c in commands {
            let events = match handle(&state, c, now) {
                Ok(events) => events,
                Err(refusal) => refusal.record,
            };
            for e in events {
                let (s, crashed) = append(state, e);
                state = s;
                if crashed {
                    return (RunEnd::Cut, state);
                }
            }
        }
        if state.paused.is_some() || state.ending().is_some() {
            continue;
        }
        // What the runtime executes: the records first, then the calls.
        let decision = decide(&state, now);
        assert_eq!(decision, decide(&state, now), "decide is not deterministic");
        assert!(
            !decision.is_idle() || decision.wake_at.is_some(),
            "saga stuck: {:?}",
            state.status()
        );
        for e in decision.record {
            let (s, crashed) = append(state, e);
            state = s;
            if crashed {
                return (RunEnd::Cut, state);
            }
        }
        for call in &decision.perform {
            let events = futures::executor::block_on(perform(
                call,
                fake,
                Some(fake),
                &sc.spec.tenant_id,
                now,
            ));
            fake.with(|w| w.now += 10);
            for e in events {
                let (s, crashed) = append(state, e);
                state = s;
                if crashed {
                    return (RunEnd::Cut, state);
                }
            }
        }
        let woke = decision.wake_at;
        fake.with(|w| w.now = w.now.max(woke.map(|t| t.0).unwrap_or(0)) + 1);
    }
    panic!("saga did not end in 5000 rounds: {:?}", state.status());
}

fn started(sc: &Scenario, seed: u64) -> Event {
    Event::SagaStarted {
        saga_id: SagaId(format!("saga-{seed}")),
        spec: sc.spec.clone(),
        policy: sc.policy.clone(),
        at: Timestamp(T0),
        submitted_by: "operator".into(),
    }
}

/// The world as the comparison sees it.
fn summary(fake: &Fake) -> (Vec<String>, bool, Vec<String>) {
    fake.with(|w| {
        (
            w.users.keys().cloned().collect(),
            w.exists,
            w.violations.clone(),
        )
    })
}

/// Checks the log-level invariants of one run.
fn check_log(log: &[Event], keep: &BTreeSet<String>) {
    let mut pivot = false;
    for e in log {
        match e {
            Event::PivotPassed { .. } => pivot = true,
            Event::ChangeIntended {
                change: Change::DeleteUser,
                targets,
                ..
            } => {
                for t in targets {
                    assert!(!keep.contains(t), "keep account {t} in a delete intent");
                }
            }
            Event::ChangeIntended {
                change:
                    Change::RestoreUser
                    | Change::SetSubscription {
                        status: PartnerStatus::Active,
                    },
                ..
            }
            | Event::CompensationStarted { .. }
            | Event::AbortRequested { .. }
            | Event::SagaRolledBack
                if pivot =>
            {
                panic!("{} after the pivot", e.kind())
            }
            _ => {}
        }
    }
}

fn run_seed(seed: u64) -> (Ending, usize) {
    // Uninterrupted.
    let sc = scenario(seed);
    let first = started(&sc, seed);
    sc.fake.with(|w| w.log.push(first.clone()));
    let (end, _) = drive(&sc, State::begin(&first).expect("saga_started"), None);
    let RunEnd::Ended(ending) = end else {
        unreachable!()
    };
    let full = summary(&sc.fake);
    let full_len = sc.fake.with(|w| w.log.len());
    assert!(full.2.is_empty(), "seed {seed}: {:?}", full.2);
    let keep = sc.fake.with(|w| w.keep_ids.clone());
    sc.fake.with(|w| check_log(&w.log, &keep));

    // Cut after one or two random events, resuming each time from the
    // recorded prefix only (decoded from its bytes).
    let sc2 = scenario(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut cuts = vec![rng.gen_range(2..=full_len.max(2))];
    if rng.gen_bool(0.5) {
        cuts.push(rng.gen_range(2..=full_len.max(2)) + cuts[0]);
    }
    sc2.fake.with(|w| w.log.push(first.clone()));
    let mut state = State::begin(&first).expect("saga_started");
    let mut ending2 = None;
    for cut in cuts.iter().map(|c| Some(*c)).chain([None]) {
        let (end, _) = drive(&sc2, state, cut);
        if let RunEnd::Ended(e) = end {
            ending2 = Some(e);
            break;
        }
        let prefix: Vec<Vec<u8>> = sc2
            .fake
            .with(|w| w.log.iter().map(|e| e.encode().expect("encode")).collect());
        let events: Vec<Event> = prefix
            .iter()
            .map(|b| Event::decode(b).expect("decode"))
            .collect();
        let replayed = fold(&events).expect("the events begin with saga_started");
        // The snapshot survives the codec and replays to the same decisions.
        let snap = State::decode(&replayed.encode().expect("snapshot")).expect("snapshot");
        assert_eq!(snap, replayed, "seed {seed}: snapshot round trip");
        let now = Timestamp(sc2.fake.with(|w| w.now));
        assert_eq!(decide(&snap, now), decide(&replayed, now));
        state = snap;
    }
    let ending2 = ending2.expect("the last run is not cut");
    let cut = format!("{cuts:?}");
    let resumed = summary(&sc2.fake);
    assert!(
        resumed.2.is_empty(),
        "seed {seed} cut {cut}: {:?}",
        resumed.2
    );
    sc2.fake.with(|w| check_log(&w.log, &keep));
    assert_eq!(
        ending, ending2,
        "seed {seed} cut {cut}: resumed run ended differently"
    );
    assert_eq!(
        full.0, resumed.0,
        "seed {seed} cut {cut}: remaining users differ"
    );
    assert_eq!(full.1, resumed.1, "seed {seed} cut {cut}: tenant existence");
    if ending == Ending::Completed {
        let users_left: BTreeSet<String> = full.0.iter().cloned().collect();
        assert_eq!(users_left, keep, "seed {seed}: only keep accounts remain");
        assert!(!full.1, "seed {seed}: tenant deleted");
    }
    (ending, full_len)
}

#[test]
fn thousands_of_seeds_keep_the_invariants() {
    let seeds: u64 = std::env::var("CLOSEOUT_SAGA_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut endings: BTreeMap<String, usize> = BTreeMap::new();
    let mut events = 0;
    for seed in 0..seeds {
        let (ending, n) = run_seed(seed);
        let key = match ending {
            Ending::Failed(_) => "failed".to_string(),
            other => format!("{other:?}"),
        };
        *endings.entry(key).or_default() += 1;
        events += n;
    }
    eprintln!("saga model: {seeds} seeds, {events} events, endings {endings:?}");
    // The seeds must exercise every ending, or the test proves little.
    assert!(endings.get("Completed").copied().unwrap_or(0) > 0);
    if seeds >= 500 {
        assert!(endings.get("RolledBack").copied().unwrap_or(0) > 0);
        assert!(endings.get("failed").copied().unwrap_or(0) > 0);
    }
}
