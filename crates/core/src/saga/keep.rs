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
            || keep_entries.iter().any(|k| {
                k.eq_ignore_ascii_case(&m.id) || k.eq_ignore_ascii_case(&m.user_principal_name)
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, enabled: bool) -> RoleMember {
        RoleMember {
            id: id.into(),
            user_principal_name: format!("{id}@t1"),
            account_enabled: enabled,
        }
    }

    #[test]
    fn a_keep_account_must_be_an_enabled_member() {
        let keep = vec!["a".to_string()];
        let ok = judge("t1", &keep, &[], &[member("a", true), member("b", true)]);
        assert_eq!(ok, Ok(vec!["a".to_string()]));
        let by_upn = judge("t1", &[], &["A@T1".into()], &[member("a", true)]);
        assert_eq!(by_upn, Ok(vec!["a".to_string()]));
        let disabled = judge("t1", &keep, &[], &[member("a", false), member("b", true)]);
        assert_eq!(
            disabled,
            Err("tenant t1: the keep Global Administrator a@t1 is disabled (accountEnabled = false)".into())
        );
        let gone = judge("t1", &keep, &[], &[member("b", true)]);
        assert_eq!(
            gone,
            Err("tenant t1: no keep account holds the Global Administrator role now".into())
        );
    }
}
