//! Step 1's preflight: what a person must do before closeout may delete the
//! tenant's users, judged from a [`Preflight`] read.
//!
//! Two things stop deletions on Microsoft's side, and both are found before
//! the first delete instead of by a 403/400 in the middle of step 1:
//!
//! - **Roles.** With an app-only token, `User.ReadWrite.All` alone cannot
//!   delete a user who holds an administrator role: "the calling app must be
//!   assigned a higher privileged administrator role as indicated in Who can
//!   perform sensitive actions"
//!   (<https://learn.microsoft.com/graph/api/user-delete>). That table
//!   (<https://learn.microsoft.com/entra/identity/role-based-access-control/privileged-roles-permissions#who-can-perform-sensitive-actions>,
//!   sensitive action "Delete or restore users") is [`deleters_of`].
//! - **Directory synchronization.** Users synced from on-premises are mastered
//!   there: "first turn off directory synchronization" before deleting them
//!   (<https://learn.microsoft.com/microsoft-365/commerce/close-your-account>,
//!   and <https://learn.microsoft.com/microsoft-365/enterprise/turn-off-directory-synchronization>).

use super::event::Gate;
use crate::model::{Preflight, GLOBAL_ADMIN_ROLE_TEMPLATE};

/// Privileged Authentication Administrator: may delete and restore any user
/// ("Yes for all users" in the table above), the role closeout asks for.
pub const PRIVILEGED_AUTH_ADMIN: &str = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13";
/// User Administrator.
pub const USER_ADMIN: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
/// Authentication Administrator.
pub const AUTH_ADMIN: &str = "c4e39bd9-1100-46d3-8c65-fb160da0071f";

/// A role's display name, for instructions (template id when unknown).
pub fn role_name(template: &str) -> &str {
    match template {
        GLOBAL_ADMIN_ROLE_TEMPLATE => "Global Administrator",
        PRIVILEGED_AUTH_ADMIN => "Privileged Authentication Administrator",
        USER_ADMIN => "User Administrator",
        AUTH_ADMIN => "Authentication Administrator",
        other => other,
    }
}

/// The roles that may delete a user holding role `target`, from "Who can
/// perform sensitive actions". Roles the table does not list (other built-in
/// roles, custom roles: "All custom roles") fall to its last rows: only
/// Privileged Authentication Administrator and Global Administrator.
pub fn deleters_of(target: &str) -> &'static [&'static str] {
    const ALL: &[&str] = &[
        AUTH_ADMIN,
        USER_ADMIN,
        PRIVILEGED_AUTH_ADMIN,
        GLOBAL_ADMIN_ROLE_TEMPLATE,
    ];
    const NOT_AUTH: &[&str] = &[
        USER_ADMIN,
        PRIVILEGED_AUTH_ADMIN,
        GLOBAL_ADMIN_ROLE_TEMPLATE,
    ];
    const AUTH: &[&str] = &[
        AUTH_ADMIN,
        PRIVILEGED_AUTH_ADMIN,
        GLOBAL_ADMIN_ROLE_TEMPLATE,
    ];
    const TOP: &[&str] = &[PRIVILEGED_AUTH_ADMIN, GLOBAL_ADMIN_ROLE_TEMPLATE];
    match target {
        // Directory Readers, Guest Inviter, Message Center Reader, Password
        // Administrator, Reports Reader, Usage Summary Reports Reader.
        "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"
        | "95e79109-95c0-4d8e-aee3-d01accf2d47b"
        | "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b"
        | "966707d0-3269-4727-9be2-8c3a10f19b9d"
        | "4a5d8f65-41da-4de4-8968-e035b65339cf"
        | "75934031-6c7e-415a-99d7-48dbd49e875e" => ALL,
        // Groups Administrator, Helpdesk Administrator, User Administrator.
        "fdd7a751-b60b-444a-984c-02652fe8fa1c"
        | "729827e3-9c14-49f7-bb1b-9608f156bbb8"
        | USER_ADMIN => NOT_AUTH,
        AUTH_ADMIN => AUTH,
        _ => TOP,
    }
}

/// Whether a principal holding `app_roles` may delete a user holding
/// `target_roles` (a user without roles: any app with `User.ReadWrite.All`).
pub fn may_delete<'a>(app_roles: &[&str], mut target_roles: impl Iterator<Item = &'a str>) -> bool {
    target_roles.all(|t| deleters_of(t).iter().any(|d| app_roles.contains(d)))
}

/// One thing a person must do before step 1 deletes anyone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The gate it opens.
    pub gate: Gate,
    /// What the person must do, and how closeout will see it done.
    pub instructions: String,
    /// The users it holds back (UPNs), for `plan`.
    pub users: Vec<String>,
}

/// What stops the deletion of `targets` ((object id, UPN) pairs), in the
/// order the gates open: closeout's role first, then directory sync.
pub fn findings(tenant: &str, pf: &Preflight, targets: &[(String, String)]) -> Vec<Finding> {
    let mut out = Vec::new();
    let app_roles: Vec<&str> = pf.roles_of(&pf.app_principal).collect();
    let blocked: Vec<String> = targets
        .iter()
        .filter(|(id, _)| !may_delete(&app_roles, pf.roles_of(id)))
        .map(|(_, upn)| upn.clone())
        .collect();
    if !blocked.is_empty() {
        out.push(Finding {
            gate: Gate::AssignAppRole,
            instructions: format!(
                "In the Entra admin center of tenant {tenant} (Roles & admins > Privileged \
                 Authentication Administrator > Add assignments), assign closeout's app the \
                 Privileged Authentication Administrator role: it may not delete {} users \
                 holding administrator roles ({}). closeout re-reads the app's role \
                 assignments periodically and deletes no one until it holds the role.",
                blocked.len(),
                sample(&blocked)
            ),
            users: blocked,
        });
    }
    let synced: Vec<String> = targets
        .iter()
        .filter(|(id, _)| pf.synced_users.contains(id))
        .map(|(_, upn)| upn.clone())
        .collect();
    if pf.directory_sync || !synced.is_empty() {
        let which = if synced.is_empty() {
            String::new()
        } else {
            format!(
                " ({} users are synced from on-premises: {})",
                synced.len(),
                sample(&synced)
            )
        };
        out.push(Finding {
            gate: Gate::TurnOffDirectorySync,
            instructions: format!(
                "Turn off directory synchronization in tenant {tenant}{which} (Microsoft Graph \
                 PowerShell: Update-MgBetaOrganization -OnPremisesSyncEnabled:$false; it can \
                 take up to 72 hours). closeout re-reads the organization and its users until \
                 sync is off and no user to delete is synced, and deletes no one before."
            ),
            users: synced,
        });
    }
    out
}

/// Up to five names, then how many more.
fn sample(names: &[String]) -> String {
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s.push_str(&format!(" and {} more", names.len() - 5));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(assign: &[(&str, &str)], synced: &[&str], sync: bool) -> Preflight {
        Preflight {
            role_assignments: assign
                .iter()
                .map(|(p, r)| (p.to_string(), r.to_string()))
                .collect(),
            synced_users: synced
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            directory_sync: sync,
            app_principal: "sp".into(),
        }
    }

    fn targets() -> Vec<(String, String)> {
        vec![("u1".into(), "u1@x".into()), ("u2".into(), "u2@x".into())]
    }

    #[test]
    fn the_sensitive_actions_table_decides_who_may_delete() {
        assert!(may_delete(&[], std::iter::empty()));
        assert!(!may_delete(&[], [USER_ADMIN].into_iter()));
        assert!(may_delete(&[USER_ADMIN], [USER_ADMIN].into_iter()));
        assert!(!may_delete(&[USER_ADMIN], [AUTH_ADMIN].into_iter()));
        assert!(!may_delete(
            &[USER_ADMIN],
            [GLOBAL_ADMIN_ROLE_TEMPLATE].into_iter()
        ));
        assert!(may_delete(
            &[PRIVILEGED_AUTH_ADMIN],
            [GLOBAL_ADMIN_ROLE_TEMPLATE, "custom-role"].into_iter()
        ));
        assert!(!may_delete(&[USER_ADMIN], ["custom-role"].into_iter()));
    }

    #[test]
    fn findings_name_the_role_and_the_sync() {
        let none = findings("t", &pf(&[("sp", USER_ADMIN)], &[], false), &targets());
        assert!(none.is_empty(), "{none:?}");
        let role = findings("t", &pf(&[("u2", USER_ADMIN)], &[], false), &targets());
        assert_eq!(role.len(), 1);
        assert_eq!(role[0].gate, Gate::AssignAppRole);
        assert_eq!(role[0].users, vec!["u2@x".to_string()]);
        assert!(role[0]
            .instructions
            .contains("assign closeout's app the Privileged Authentication Administrator role"));
        let sync = findings("t", &pf(&[], &["u1"], true), &targets());
        assert_eq!(sync.len(), 1);
        assert_eq!(sync[0].gate, Gate::TurnOffDirectorySync);
        assert!(sync[0]
            .instructions
            .starts_with("Turn off directory synchronization in tenant t"));
        let both = findings("t", &pf(&[("u1", AUTH_ADMIN)], &[], true), &targets());
        assert_eq!(
            both.iter().map(|f| f.gate).collect::<Vec<_>>(),
            vec![Gate::AssignAppRole, Gate::TurnOffDirectorySync]
        );
    }
}
