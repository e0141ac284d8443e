//! Names beside ids: what a person reading an audit knows the objects by.
//! Users by UPN and display name, subscriptions by SKU, Conditional Access
//! policies by display name — all from the inventory the saga recorded
//! before it changed anything (the log is the only source: an audit names
//! an object as the tenant named it then, not as it is named today).

use crate::saga::Inventory;
use rustc_hash::FxHashMap as HashMap;
use serde::Deserialize;
use serde_json::Value;

/// The names of one saga's objects, by object id.
#[derive(Clone, Debug, Default)]
pub struct Names {
    /// Object id (users, subscriptions under both their Graph and their
    /// Partner Center id, policies) to the name a person knows it by.
    by_id: HashMap<String, String>,
}

impl Names {
    /// No names (every object is shown by its id alone).
    pub fn new() -> Names {
        Names::default()
    }

    /// The names of a recorded inventory (`Log::inventory`'s JSON); none
    /// when the saga recorded no inventory or it cannot be read as one.
    pub fn from_inventory(inventory: Option<&Value>) -> Names {
        let mut names = Names::new();
        let Some(inv) = inventory.and_then(|v| Inventory::deserialize(v).ok()) else {
            return names;
        };
        names
            .by_id
            .reserve(inv.users.len() + inv.subscriptions.len() * 2);
        for u in &inv.users {
            let name = match (u.user_principal_name.is_empty(), u.display_name.is_empty()) {
                (false, false) => format!("{} ({})", u.user_principal_name, u.display_name),
                (false, true) => u.user_principal_name.clone(),
                (true, false) => u.display_name.clone(),
                (true, true) => continue,
            };
            names.by_id.insert(u.id.clone(), name);
        }
        for s in &inv.subscriptions {
            if s.sku_part_number.is_empty() {
                continue;
            }
            names.by_id.insert(
                s.commerce_subscription_id.clone(),
                s.sku_part_number.clone(),
            );
            names.by_id.insert(s.id.clone(), s.sku_part_number.clone());
        }
        for p in &inv.ca_policies {
            if !p.display_name.is_empty() {
                names.by_id.insert(p.id.clone(), p.display_name.clone());
            }
        }
        names
    }

    /// The name of an object id, if the inventory named it. The tenant-wide
    /// security defaults policy is named by what it is.
    pub fn of(&self, id: &str) -> Option<&str> {
        if id == crate::saga::SECURITY_DEFAULTS {
            return Some("security defaults");
        }
        self.by_id.get(id).map(String::as_str)
    }

    /// `name [id]` when the object has a name, else the id: how text and
    /// receipts show an object (both are kept, the id to search by).
    pub fn label(&self, id: &str) -> String {
        match self.of(id) {
            Some(name) if name != id => format!("{name} [{id}]"),
            _ => id.to_string(),
        }
    }

    /// [`Names::label`] of a change's object, falling back to the name its
    /// intent gave (`target`) when the inventory has none.
    pub fn label_change(&self, object: Option<&str>, target: &str) -> String {
        match object {
            Some(id) if self.of(id).is_none() && !target.is_empty() && target != id => {
                format!("{target} [{id}]")
            }
            Some(id) => self.label(id),
            None => self.label(target),
        }
    }

    /// How many objects are named.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no object is named.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_subscriptions_and_policies_are_named_from_the_inventory() {
        let inv = json!({
            "users": [{"id": "u1", "user_principal_name": "ann@x", "display_name": "Ann Lee",
                       "account_enabled": true, "on_premises_sync_enabled": false, "user_type": "Member"}],
            "global_admins": [],
            "subscriptions": [{"id": "g1", "commerce_subscription_id": "c1", "sku_id": "s",
                               "sku_part_number": "SPE_E3", "status": "Enabled", "is_trial": false,
                               "total_licenses": 5}],
            "security_defaults": true,
            "ca_policies": [{"id": "p1", "display_name": "Require MFA", "state": "enabled", "requires_mfa": true}],
            "applications": []
        });
        let names = Names::from_inventory(Some(&inv));
        assert_eq!(names.of("u1"), Some("ann@x (Ann Lee)"), "{names:?}");
        assert_eq!(names.of("c1"), Some("SPE_E3"));
        assert_eq!(names.of("g1"), Some("SPE_E3"));
        assert_eq!(names.of("p1"), Some("Require MFA"));
        assert_eq!(names.of("securityDefaults"), Some("security defaults"));
        assert_eq!(names.label("u1"), "ann@x (Ann Lee) [u1]");
        assert_eq!(names.label("u2"), "u2");
    }
}
