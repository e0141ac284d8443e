//! The keep invariant's check, shared by `decide` (before it intends to
//! delete Global Administrators), the runtime's last-line guard (before it
//! sends any user delete) and `plan`: a tenant keeps at least one keep
//! account that exists, is enabled and holds the Global Administrator role.

use crate::model::RoleMember;

/// Judges a fresh read of the Global Administrator role against the keep
/// accounts (`keep_ids`: object ids; `keep_entries`: the batch's entries,
/// object ids or UPNs, matched case-insensitively). Returns the keep
/// accounts that are enabled Global Administrators, or why there is none.
pub fn judge(
    tenant: &str,
    keep_ids: &[String],
    keep_entries: &[String],
    members: &[RoleMember],
) -> Result<Vec<String>, String> {
    let is_keep = |m: &RoleMember| {
        keep_ids.contains(&m.id)
            || keep_entries
                .iter()
                .any(|k| *k == m.id || k.eq_ignore_ascii_case(&m.user_principal_name))
    };
    let keep: Vec<&RoleMember> = members.iter().filter(|m| is_keep(m)).collect();
    let mut ok: Vec<String> = keep
        .iter()
        .filter(|m| m.account_enabled)
        .map(|m| m.id.clone())
        .collect();
    ok.sort();
    ok.dedup();
    if !ok.is_empty() {
        return Ok(ok);
    }
    let disabled: Vec<String> = keep.iter().map(|m| name(m)).collect();
    Err(if disabled.is_empty() {
        format!("tenant {tenant}: no keep account holds the Global Administrator role now")
    } else {
        format!(
            "tenant {tenant}: the keep Global Administrator {} is disabled (accountEnabled = false)",
            disabled.join(", ")
        )
    })
}

fn name(m: &RoleMember) -> String {
    if m.user_principal_name.is_empty() {
        m.id.clone()
    } else {
        m.user_principal_name.clone()
    }
}
