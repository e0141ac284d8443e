//! What closeout's app must hold in a tenant, and which of it a closure
//! needs: Microsoft Graph application permissions (app roles of the
//! Microsoft Graph service principal, granted by admin consent and read
//! through `GET /v1.0/servicePrincipals/{id}/appRoleAssignments`) and Entra
//! directory roles (read through the role assignments of step 1's
//! preflight, [`super::preflight`]).
//!
//! Permission names and ids are Microsoft's
//! (<https://learn.microsoft.com/graph/permissions-reference>); which call
//! needs which is on each call's API page (users: `user-delete`,
//! `directory-deleteditems-restore`; `organization-get`,
//! `rbacapplication-list-roleassignments`, `subscribedsku-list`,
//! `identitysecuritydefaultsenforcementpolicy-update`,
//! `conditionalaccesspolicy-update`, `authentication-update`
//! (per-user MFA), `application-list`, `serviceprincipal-list`).
//! `User.ReadWrite.All` alone cannot delete a user holding an administrator
//! role: that needs the Privileged Authentication Administrator role
//! (`super::preflight`, gate `AssignAppRole`), which this module names but
//! leaves to that gate.

use super::plan::Plan;

/// An application permission of Microsoft Graph that closeout uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// Microsoft's name (`User.ReadWrite.All`).
    pub name: &'static str,
    /// The app role id on the Microsoft Graph service principal.
    pub id: &'static str,
    /// What closeout does with it.
    pub what: &'static str,
    /// The step that needs it (0: the inventory, before step 1).
    pub step: u8,
}

/// Every Graph application permission closeout uses.
pub const ALL: &[Permission] = &[
    Permission {
        name: "Organization.Read.All",
        id: "498476ce-e0fe-48b0-b801-37ba7e2685c6",
        what: "confirm the tenant's id and initial domain; read directory sync",
        step: 0,
    },
    Permission {
        name: "Directory.Read.All",
        id: "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
        what: "inventory: users, Global Administrators, subscriptions, the recycle bin",
        step: 0,
    },
    Permission {
        name: "RoleManagement.Read.Directory",
        id: "483bed4a-2ad3-4361-a73b-c83ccdbdc53c",
        what: "step 1 preflight: who holds which directory role, closeout's own roles",
        step: 1,
    },
    Permission {
        name: "Policy.Read.All",
        id: "246dd0d5-5bd0-4def-940b-0421030a5b68",
        what: "inventory: security defaults and Conditional Access policies",
        step: 0,
    },
    Permission {
        name: "User.ReadWrite.All",
        id: "741f803b-c850-494e-b5df-cde7c675a1ca",
        what: "delete users, and restore them when a closure rolls back",
        step: 1,
    },
    Permission {
        name: "Policy.ReadWrite.AuthenticationMethod",
        id: "29c18626-4985-4dcd-85c0-193eef327366",
        what: "turn per-user MFA off",
        step: 4,
    },
    Permission {
        name: "Policy.ReadWrite.SecurityDefaults",
        id: "1c6e93a6-28e2-4cbb-9f64-1a46a821124d",
        what: "disable security defaults (when the operator opted in)",
        step: 4,
    },
    Permission {
        name: "Policy.ReadWrite.ConditionalAccess",
        id: "01c0a623-fc9b-48e9-b794-0756f8e8f067",
        what: "disable Conditional Access policies requiring MFA (when opted in)",
        step: 4,
    },
    Permission {
        name: "Application.Read.All",
        id: "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
        what: "step 5 preflight: app registrations and service principals",
        step: 5,
    },
    // The data at stake (`super::stake`): read, shown, never a gate.
    Permission {
        name: "Reports.Read.All",
        id: "230c1aed-a721-4c5d-9cb4-a90514e508ef",
        what: "the data at stake: mailbox, OneDrive and SharePoint usage reports \
               (without it they read as unavailable)",
        step: 0,
    },
    Permission {
        name: "ReportSettings.Read.All",
        id: "ee353f83-55ef-4b78-82da-555bfa2b4b95",
        what: "whether the usage reports conceal user names \
               (without it the reports are matched as they come)",
        step: 0,
    },
    Permission {
        name: "BackupRestore-Configuration.Read.All",
        id: "5fbb5982-3230-4882-93c0-2167523ce0c2",
        what: "Microsoft 365 Backup protection policies, whose copies go with the tenant \
               (without it the backup gate cannot warn of them)",
        step: 0,
    },
];

/// Whether a permission is needed only when the operator opts in to a
/// change (step 4's security defaults and Conditional Access).
pub fn opt_in(p: &Permission) -> bool {
    matches!(
        p.name,
        "Policy.ReadWrite.SecurityDefaults" | "Policy.ReadWrite.ConditionalAccess"
    )
}

/// Whether a permission only informs the operator (the data at stake and
/// Microsoft 365 Backup, `reportroot-getmailboxusagedetail`,
/// `adminreportsettings-get`, `backuprestoreroot-list-protectionpolicies`):
/// without it closeout says "unavailable" and changes nothing less, so it
/// is never a gate.
pub fn informational(p: &Permission) -> bool {
    matches!(
        p.name,
        "Reports.Read.All" | "ReportSettings.Read.All" | "BackupRestore-Configuration.Read.All"
    )
}

/// The informational permissions (see [`informational`]).
pub fn informational_ones() -> Vec<&'static Permission> {
    ALL.iter().filter(|p| informational(p)).collect()
}

/// A permission by name.
pub fn by_name(name: &str) -> Option<&'static Permission> {
    ALL.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// A permission by app role id.
pub fn by_id(id: &str) -> Option<&'static Permission> {
    ALL.iter().find(|p| p.id.eq_ignore_ascii_case(id))
}

/// The permissions a closure needs, from what its plan will do: reading
/// and the step 5 check always; deleting users only when some will be
/// deleted; each MFA change only when step 4 makes it; the informational
/// ones never.
pub fn required(plan: &Plan, per_user_mfa_changes: bool) -> Vec<&'static Permission> {
    ALL.iter()
        .filter(|p| !informational(p))
        .filter(|p| match p.name {
            "User.ReadWrite.All" | "RoleManagement.Read.Directory" => !plan.delete_users.is_empty(),
            "Policy.ReadWrite.AuthenticationMethod" => per_user_mfa_changes,
            "Policy.ReadWrite.SecurityDefaults" => plan.disable_security_defaults,
            "Policy.ReadWrite.ConditionalAccess" => !plan.disable_ca_policies.is_empty(),
            _ => true,
        })
        .collect()
}

/// The names of `required` permissions whose ids `granted` lacks, in table
/// order.
pub fn missing(required: &[&'static Permission], granted: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|p| !granted.iter().any(|g| g.eq_ignore_ascii_case(p.id)))
        .map(|p| p.name.to_string())
        .collect()
}

/// What a person does to grant `missing` in tenant `tenant`.
pub fn instructions(tenant: &str, missing: &[String]) -> String {
    format!(
        "In the Entra admin center of tenant {tenant} (Enterprise apps > closeout > \
         Permissions > Grant admin consent), grant closeout's app the Microsoft Graph \
         application permissions it lacks: {}. closeout re-reads the app's permissions \
         periodically and changes nothing until it holds them.",
        missing.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_closure_does_is_required() {
        let plan = Plan {
            keep: Ok(Vec::new()),
            delete_users: Vec::new(),
            cancel_subscriptions: Vec::new(),
            delete_subscriptions: Vec::new(),
            subscriptions: crate::model::SubscriptionMode::Manual,
            disable_security_defaults: false,
            disable_ca_policies: Vec::new(),
            applications: Vec::new(),
            warnings: Vec::new(),
        };
        let names: Vec<&str> = required(&plan, false).iter().map(|p| p.name).collect();
        assert!(!names.contains(&"User.ReadWrite.All"));
        assert!(
            !names.contains(&"Reports.Read.All"),
            "informational, never a gate"
        );
        assert_eq!(informational_ones().len(), 3);
        assert!(names.contains(&"Organization.Read.All"));
        let all_ids: Vec<String> = ALL.iter().map(|p| p.id.to_uppercase()).collect();
        assert!(missing(&required(&plan, true), &all_ids).is_empty());
        assert_eq!(
            missing(&required(&plan, true), &[])
                .first()
                .map(String::as_str),
            Some("Organization.Read.All")
        );
    }
}
