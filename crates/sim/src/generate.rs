//! The fixture generator behind `--generate tenants=N,users=M[,...]`: many
//! tenants, thousands of users, admins, subscriptions in several states, CA
//! policies, per-user MFA. By default every tenant can be closed completely by
//! a correct client (its app holds a privileged role, no synced users, every
//! subscription cancellable, no app registrations besides closeout's own
//! service principal). Hard cases are counts of tenants (the first ones) that
//! get them: `unprivileged` and `synced` (preflight findings: closeout's gates
//! ask for the fix), `outside_window`, `apps`, `restricted` (a user closeout
//! cannot delete: a permanent failure after deletions), `backup`
//! (Microsoft 365 Backup protection policies), `concealed` (usage reports
//! that hash user names). Mailbox and OneDrive sizes are derived from each
//! user's id (`fixture::derived`), so they never shift the seed's draws.

use super::fixture::{
    AppFixture, CaPolicyFixture, Error, Fixture, SubscriptionFixture, TenantFixture, UserFixture,
};
use super::state::Billing;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateSpec {
    /// Number of tenants (`tenants=N`, default 1).
    pub tenants: usize,
    /// Users per tenant, the keep admin included.
    pub users: usize,
    /// Fraction of tenants billed directly (the rest through the partner).
    pub direct: f64,
    /// Subscriptions per tenant (`subscriptions=N`, default 2).
    pub subscriptions: usize,
    /// Non-keep users holding an admin role, per tenant.
    pub admins: usize,
    /// Tenants whose app may not delete admins (hard case).
    pub unprivileged: usize,
    /// Tenants with two users synced from on-premises (hard case).
    pub synced: usize,
    /// Tenants with a new-commerce subscription outside its cancellation window (hard case).
    pub outside_window: usize,
    /// Tenants with an app registration besides closeout's (hard case).
    pub apps: usize,
    /// Tenants whose last user is in a restricted management administrative
    /// unit: its delete fails with 403 whatever closeout's role (hard case:
    /// a permanent failure in the middle of step 1).
    pub restricted: usize,
    /// Tenants with a free trial besides their other subscriptions (hard
    /// case: only a person ends it, in the admin center).
    pub trials: usize,
    /// Tenants with a self-service sign-up product (hard case: Entra admin
    /// center > Billing > Licenses > Self-service sign-up products).
    pub self_service: usize,
    /// Tenants with a subscription sold by another partner (hard case: only
    /// that partner can cancel it).
    pub other_partner: usize,
    /// Tenants whose first subscription is a legacy one (suspended, then
    /// deleted); the others are new commerce.
    pub legacy: usize,
    /// Tenants whose first subscription is the partner's new-commerce one,
    /// found suspended in Partner Center past its cancellation window (a
    /// hard case: suspended, it goes on billing; only a person can decide
    /// to reactivate it and let it run out). Its term ends `term_ends_in`.
    pub suspended: usize,
    /// Tenants with Microsoft 365 Backup protection policies (whose copies
    /// live inside the tenant).
    pub backup: usize,
    /// Tenants whose reports conceal user names (anonymised usage reports).
    pub concealed: usize,
    /// Lifecycle time until the term of an `outside_window` subscription
    /// ends (`term_ends_in=DURATION`, default 30 days; see `--clock-speed`).
    pub term_ends_in: std::time::Duration,
}

impl Default for GenerateSpec {
    fn default() -> Self {
        GenerateSpec {
            tenants: 1,
            users: 10,
            direct: 0.5,
            subscriptions: 2,
            admins: 1,
            unprivileged: 0,
            synced: 0,
            outside_window: 0,
            apps: 0,
            restricted: 0,
            trials: 0,
            self_service: 0,
            other_partner: 0,
            legacy: 0,
            suspended: 0,
            backup: 0,
            concealed: 0,
            term_ends_in: std::time::Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl std::str::FromStr for GenerateSpec {
    type Err = Error;

    /// Parses `tenants=N,users=M,direct=F,subscriptions=N,admins=N,unprivileged=K,synced=K,outside_window=K,apps=K,restricted=K,trials=K,self_service=K,other_partner=K,legacy=K,suspended=K,backup=K,concealed=K,term_ends_in=DURATION`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let mut spec = GenerateSpec::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| Error::Spec(format!("{part:?}: expected key=value")))?;
            let n = || {
                v.parse::<usize>()
                    .map_err(|_| Error::Spec(format!("{k}: {v:?} is not a count")))
            };
            match k {
                "tenants" => spec.tenants = n()?,
                "users" => spec.users = n()?.max(1),
                "subscriptions" => spec.subscriptions = n()?,
                "admins" => spec.admins = n()?,
                "unprivileged" => spec.unprivileged = n()?,
                "synced" => spec.synced = n()?,
                "outside_window" => spec.outside_window = n()?,
                "apps" => spec.apps = n()?,
                "restricted" => spec.restricted = n()?,
                "trials" => spec.trials = n()?,
                "self_service" => spec.self_service = n()?,
                "other_partner" => spec.other_partner = n()?,
                "legacy" => spec.legacy = n()?,
                "suspended" => spec.suspended = n()?,
                "backup" => spec.backup = n()?,
                "concealed" => spec.concealed = n()?,
                "term_ends_in" => {
                    spec.term_ends_in = humantime::parse_duration(v).map_err(|_| {
                        Error::Spec(format!("term_ends_in: {v:?} is not a duration"))
                    })?;
                }
                "direct" => {
                    spec.direct = v
                        .parse::<f64>()
                        .ok()
                        .filter(|f| (0.0..=1.0).contains(f))
                        .ok_or_else(|| {
                            Error::Spec(format!("direct: {v:?} is not a fraction from 0 to 1"))
                        })?;
                }
                _ => return Err(Error::Spec(format!("unknown key {k:?}"))),
            }
        }
        Ok(spec)
    }
}

fn guid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.gen())
        .into_uuid()
        .to_string()
}

const SKUS: [&str; 4] = [
    "O365_BUSINESS_PREMIUM",
    "SPE_E3",
    "EXCHANGESTANDARD",
    "POWER_BI_PRO",
];

/// Generates a fixture; the same spec and seed give the same fixture.
pub fn generate(spec: &GenerateSpec, seed: u64) -> Fixture {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tenants = Vec::with_capacity(spec.tenants);
    for i in 0..spec.tenants {
        let tenant_id = guid(&mut rng);
        let domain = format!("tenant{i:04}.onmicrosoft.com");
        let admin = format!("admin@{domain}");
        let mut users = vec![UserFixture {
            id: guid(&mut rng),
            upn: admin.clone(),
            display_name: Some("Global Admin".into()),
            roles: vec!["global_administrator".into()],
            synced: false,
            mfa: Some("enforced".into()),
            guest: false,
            restricted: false,
            disabled: false,
            mailbox_bytes: None,
            mailbox_items: None,
            onedrive_bytes: None,
        }];
        for j in 1..spec.users {
            let role = if j <= spec.admins {
                vec!["user_administrator".into()]
            } else {
                vec![]
            };
            let synced = i < spec.synced && j > spec.admins && j <= spec.admins + 2;
            let mfa = ["disabled", "enabled", "enforced"][rng.gen_range(0..3usize)];
            users.push(UserFixture {
                id: guid(&mut rng),
                upn: format!("user{j:05}@{domain}"),
                display_name: Some(format!("User {j}")),
                roles: role,
                synced,
                mfa: Some(mfa.into()),
                guest: j % 17 == 0,
                restricted: i < spec.restricted && j + 1 == spec.users,
                disabled: false,
                mailbox_bytes: None,
                mailbox_items: None,
                onedrive_bytes: None,
            });
        }
        let mut subscriptions = Vec::new();
        for k in 0..spec.subscriptions {
            subscriptions.push(SubscriptionFixture {
                id: guid(&mut rng),
                commerce_id: guid(&mut rng),
                sku: SKUS[k % SKUS.len()].into(),
                status: Some(if i < spec.suspended && k == 0 {
                    "Suspended".into()
                } else if k % 3 == 2 {
                    "Warning".into()
                } else {
                    "Enabled".into()
                }),
                // New commerce, as nearly every CSP subscription is since
                // the migration; `legacy=K` makes the first one legacy.
                new_commerce: !(i < spec.legacy && k == 0),
                in_window: !((i < spec.outside_window || i < spec.suspended) && k == 0),
                trial: false,
                licenses: Some(rng.gen_range(1..300)),
                seller: None,
                term_ends_in: ((i < spec.outside_window || i < spec.suspended) && k == 0)
                    .then(|| humantime::format_duration(spec.term_ends_in).to_string()),
                auto_renew: None,
            });
        }
        let extras = [
            (i < spec.trials, "O365_BUSINESS_PREMIUM", true, "direct"),
            (i < spec.self_service, "FLOW_FREE", false, "direct"),
            (i < spec.other_partner, "SPE_E3", false, "other"),
        ];
        for (wanted, sku, trial, seller) in extras {
            if wanted {
                subscriptions.push(SubscriptionFixture {
                    id: guid(&mut rng),
                    commerce_id: guid(&mut rng),
                    sku: sku.into(),
                    status: Some("Enabled".into()),
                    new_commerce: true,
                    in_window: true,
                    trial,
                    licenses: Some(rng.gen_range(1..300)),
                    seller: Some(seller.into()),
                    term_ends_in: None,
                    auto_renew: None,
                });
            }
        }
        let billing = if rng.gen_bool(spec.direct) {
            Billing::Direct
        } else {
            Billing::Partner
        };
        tenants.push(TenantFixture {
            tenant_id: tenant_id.clone(),
            domain: Some(domain),
            client_id: guid(&mut rng),
            client_secret: format!("s{:032x}", rng.gen::<u128>()),
            certificate: None,
            billing,
            keep: vec![admin],
            app_permissions: None,
            app_privileged: i >= spec.unprivileged,
            directory_sync: None,
            security_defaults: rng.gen_bool(0.5),
            users,
            subscriptions,
            ca_policies: vec![
                CaPolicyFixture {
                    id: guid(&mut rng),
                    name: "Require MFA for admins".into(),
                    state: "enabled".into(),
                    mfa: true,
                },
                CaPolicyFixture {
                    id: guid(&mut rng),
                    name: "Block legacy auth".into(),
                    state: "enabledForReportingButNotEnforced".into(),
                    mfa: false,
                },
            ],
            applications: if i < spec.apps {
                vec![AppFixture {
                    id: guid(&mut rng),
                    app_id: guid(&mut rng),
                    name: "Line-of-business app".into(),
                }]
            } else {
                vec![]
            },
            backup: i < spec.backup,
            concealed_names: i < spec.concealed,
        });
    }
    Fixture {
        partner: None,
        tenants,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_generation_is_reproducible() {
        let spec: GenerateSpec = "tenants=3,users=50,synced=1,apps=2".parse().unwrap();
        assert_eq!(spec.tenants, 3);
        assert_eq!(spec.apps, 2);
        assert!("tenants=x".parse::<GenerateSpec>().is_err());
        assert!("bogus=1".parse::<GenerateSpec>().is_err());
        let a = generate(&spec, 5);
        let b = generate(&spec, 5);
        assert_eq!(toml::to_string(&a).unwrap(), toml::to_string(&b).unwrap());
        assert_ne!(
            toml::to_string(&a).unwrap(),
            toml::to_string(&generate(&spec, 6)).unwrap()
        );
        assert_eq!(a.tenants[0].users.len(), 50);
        assert_eq!(a.tenants[0].users.iter().filter(|u| u.synced).count(), 2);
        assert_eq!(a.tenants[2].applications.len(), 0);
        assert!(a.build("2026-01-01T00:00:00Z").is_ok());
    }
}
