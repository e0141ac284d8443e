//! The data at stake and its backup, before anything is deleted.
//!
//! What a closure destroys is read from Microsoft 365's usage reports (the
//! mail and OneDrive usage per account, `Reports.Read.All`) and recorded in
//! its own event ([`super::Event::DataAtStakeRecorded`]); whether the tenant
//! keeps Microsoft 365 Backup protection policies (whose copies live inside
//! the tenant) is read with it. The backup gate ([`BackupMode::Attest`])
//! holds step 1 until a person says, through the control socket, that the
//! data is copied outside the tenant: nothing closeout can read proves such
//! a copy, so this gate, unlike every other, rests on a person's word, and
//! the gate, the audit and the plan say so.
//!
//! Pure: [`summarize`] matches the reports' accounts to the users a closure
//! deletes, by UPN; `graph::reports` reads and parses the reports.

use serde::{Deserialize, Serialize};

/// The `[saga] backup` setting, recorded in each saga's first events
/// ([`super::Event::BackupPolicyRecorded`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupMode {
    /// Step 1 waits until an operator attests that the tenant's data is
    /// backed up outside the tenant (`closeout confirm SAGA --backup`).
    #[default]
    Attest,
    /// No attestation is asked for: recorded as the operator's deliberate
    /// choice, shown in `plan` and in the audit.
    Off,
}

impl BackupMode {
    /// The setting's value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMode::Attest => "attest",
            BackupMode::Off => "off",
        }
    }
}

/// The report period read: `D7`, the shortest the reports offer (the
/// storage columns are the latest values; the period bounds activity).
pub const REPORT_PERIOD: &str = "D7";

/// Accounts kept per report in the event, largest first: like an
/// inventory part, it keeps the record far below the store's size limit
/// whatever the tenant's size. Totals always cover every row.
pub const DETAIL_ACCOUNTS: usize = super::event::INVENTORY_PART_USERS;

/// One usage report as read: its totals over every row, and the accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Why the report could not be read (no `Reports.Read.All`, a refused
    /// download); `None` when it was read.
    pub unavailable: Option<String>,
    /// The report's `Report Refresh Date` (the day its data is from).
    pub refresh_date: String,
    /// The report's `Report Period` in days.
    pub period_days: String,
    /// Rows in the report (one per mailbox or OneDrive account).
    pub rows: u32,
    /// Whether the report names accounts by a hash instead of their UPN
    /// (the tenant conceals user names in reports): no row can be matched
    /// to a user then, only the totals are known.
    pub anonymised: bool,
    /// `Storage Used (Byte)` summed over every row.
    pub total_bytes: u64,
    /// `Item Count` (mailboxes) or `File Count` (OneDrive) over every row.
    pub total_items: u64,
    /// Per account, largest first, at most [`DETAIL_ACCOUNTS`].
    pub accounts: Vec<AccountUsage>,
}

/// One account's usage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUsage {
    /// `User Principal Name` (mailboxes) or `Owner Principal Name`
    /// (OneDrive), as the report gives it (a hash when anonymised).
    pub upn: String,
    /// `Storage Used (Byte)`: the account's storage used, in bytes.
    pub bytes: u64,
    /// `Item Count` or `File Count`.
    pub items: u64,
}

/// A Microsoft 365 Backup protection policy of the tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionPolicy {
    /// The policy's id in Graph.
    pub id: String,
    /// `exchange`, `oneDriveForBusiness` or `sharePoint` (from `@odata.type`).
    pub kind: String,
    /// Its display name (tenant-controlled text).
    pub display_name: String,
    /// `inactive`, `activeWithErrors`, `updating`, `active`.
    pub status: String,
}

impl ProtectionPolicy {
    /// Whether the policy takes backups now (`inactive` ones stopped, though
    /// their earlier restore points remain).
    pub fn is_active(&self) -> bool {
        self.status != "inactive"
    }
}

/// What was read about the data a closure destroys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataAtStake {
    /// `GET /v1.0/reports/getMailboxUsageDetail(period='D7')`.
    pub mailbox: UsageReport,
    /// `GET /v1.0/reports/getOneDriveUsageAccountDetail(period='D7')`.
    pub onedrive: UsageReport,
    /// `GET /v1.0/reports/getSharePointSiteUsageDetail(period='D7')`: one
    /// row per site, `upn` its `Owner Principal Name`.
    pub sharepoint: UsageReport,
    /// `GET /v1.0/admin/reportSettings` `displayConcealedNames`; `None`
    /// when it could not be read (the reports' content then tells).
    pub concealed_names: Option<bool>,
    /// `GET /v1.0/solutions/backupRestore/protectionPolicies`.
    pub protection_policies: Vec<ProtectionPolicy>,
    /// Why the protection policies could not be read, if they could not.
    pub policies_unavailable: Option<String>,
}

impl DataAtStake {
    /// Nothing could be read: every part says why.
    pub fn unavailable(why: &str) -> DataAtStake {
        let report = UsageReport {
            unavailable: Some(why.to_string()),
            ..UsageReport::default()
        };
        DataAtStake {
            mailbox: report.clone(),
            onedrive: report.clone(),
            sharepoint: report,
            concealed_names: None,
            protection_policies: Vec::new(),
            policies_unavailable: Some(why.to_string()),
        }
    }

    /// Protection policies that take backups now.
    pub fn active_policies(&self) -> usize {
        self.protection_policies
            .iter()
            .filter(|p| p.is_active())
            .count()
    }
}

/// The data at stake, totalled for a tenant and for the users it deletes
/// (the `plan --json` shape).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeSummary {
    /// The mailbox report's refresh date (empty when unavailable).
    pub report_date: String,
    /// The reports' period in days.
    pub period_days: String,
    /// Whether either report was anonymised (user names concealed).
    pub anonymised: bool,
    /// Why a report could not be read, per report.
    pub unavailable: Vec<String>,
    /// Mailboxes in the report.
    pub mailboxes: u32,
    /// Mail storage used, every mailbox of the tenant.
    pub mailbox_bytes: u64,
    /// Mail items, every mailbox of the tenant.
    pub mailbox_items: u64,
    /// OneDrive accounts in the report.
    pub onedrives: u32,
    /// OneDrive storage used, every account of the tenant.
    pub onedrive_bytes: u64,
    /// Users step 1 deletes.
    pub users_to_delete: u32,
    /// Of those, how many the mailbox or OneDrive report names (0 when
    /// anonymised).
    pub users_matched: u32,
    /// Mail storage of the matched users to delete.
    pub delete_mailbox_bytes: u64,
    /// Mail items of the matched users to delete.
    pub delete_mailbox_items: u64,
    /// OneDrive storage of the matched users to delete.
    pub delete_onedrive_bytes: u64,
    /// SharePoint sites in the report.
    pub sites: u32,
    /// SharePoint storage used, every site of the tenant.
    pub sharepoint_bytes: u64,
    /// Sites whose owner (`Owner Principal Name`) step 1 deletes: left
    /// without that owner (orphaned) once step 1 is done, before the
    /// tenant's deletion takes every site with it (0 when anonymised).
    pub orphaned_sites: u32,
    /// Microsoft 365 Backup protection policies in the tenant.
    pub protection_policies: u32,
    /// Of those, the ones taking backups now.
    pub active_protection_policies: u32,
}

/// Totals the data at stake and matches the reports' accounts to the users
/// to delete (by UPN, ignoring case; a hashed name matches no one).
pub fn summarize(stake: &DataAtStake, to_delete: &[&str]) -> StakeSummary {
    let find = |r: &UsageReport, upn: &str| {
        if r.anonymised {
            return None;
        }
        r.accounts
            .iter()
            .find(|a| a.upn.eq_ignore_ascii_case(upn))
            .cloned()
    };
    let mut s = StakeSummary {
        report_date: stake.mailbox.refresh_date.clone(),
        period_days: stake.mailbox.period_days.clone(),
        anonymised: stake.mailbox.anonymised || stake.onedrive.anonymised,
        unavailable: [
            (MAILBOX_REPORT, &stake.mailbox),
            (ONEDRIVE_REPORT, &stake.onedrive),
            (SHAREPOINT_REPORT, &stake.sharepoint),
        ]
        .iter()
        .filter_map(|(what, r)| r.unavailable.as_ref().map(|w| format!("{what}: {w}")))
        .collect(),
        mailboxes: stake.mailbox.rows,
        mailbox_bytes: stake.mailbox.total_bytes,
        mailbox_items: stake.mailbox.total_items,
        onedrives: stake.onedrive.rows,
        onedrive_bytes: stake.onedrive.total_bytes,
        sites: stake.sharepoint.rows,
        sharepoint_bytes: stake.sharepoint.total_bytes,
        users_to_delete: u32::try_from(to_delete.len()).unwrap_or(u32::MAX),
        protection_policies: u32::try_from(stake.protection_policies.len()).unwrap_or(u32::MAX),
        active_protection_policies: u32::try_from(stake.active_policies()).unwrap_or(u32::MAX),
        ..StakeSummary::default()
    };
    if s.report_date.is_empty() {
        s.report_date = stake.onedrive.refresh_date.clone();
        s.period_days = stake.onedrive.period_days.clone();
    }
    if !stake.sharepoint.anonymised {
        let orphaned = stake
            .sharepoint
            .accounts
            .iter()
            .filter(|site| to_delete.iter().any(|u| u.eq_ignore_ascii_case(&site.upn)))
            .count();
        s.orphaned_sites = u32::try_from(orphaned).unwrap_or(u32::MAX);
    }
    for upn in to_delete {
        let mail = find(&stake.mailbox, upn);
        let drive = find(&stake.onedrive, upn);
        if mail.is_some() || drive.is_some() {
            s.users_matched += 1;
        }
        if let Some(m) = mail {
            s.delete_mailbox_bytes += m.bytes;
            s.delete_mailbox_items += m.items;
        }
        if let Some(d) = drive {
            s.delete_onedrive_bytes += d.bytes;
        }
    }
    s
}

/// Bytes for a person: `1.4 GB` (decimal units, as the admin center shows).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// One line on the data at stake, for the plan, the gate and the audit.
pub fn describe(s: &StakeSummary) -> String {
    let mut out = totals(s);
    if s.lacks(MAILBOX_REPORT) && s.lacks(ONEDRIVE_REPORT) {
        out.push_str(&format!(
            "; what the {} users to delete hold is unknown (the reports are unavailable)",
            s.users_to_delete
        ));
    } else if s.anonymised {
        out.push_str(&format!(
            "; the reports conceal user names, so none of the {} users to delete could be matched: only the totals are known",
            s.users_to_delete
        ));
    } else {
        out.push_str(&format!(
            "; the {} users to delete hold mail {} in {} items and OneDrive {} ({} of them found in the reports)",
            s.users_to_delete,
            human_bytes(s.delete_mailbox_bytes),
            s.delete_mailbox_items,
            human_bytes(s.delete_onedrive_bytes),
            s.users_matched
        ));
        if s.orphaned_sites > 0 {
            out.push_str(&format!(
                "; {} SharePoint sites are owned by users step 1 deletes (orphaned until the tenant goes)",
                s.orphaned_sites
            ));
        }
    }
    for u in &s.unavailable {
        out.push_str(&format!("; unavailable: {u}"));
    }
    out
}

/// The names [`summarize`] gives the reports in `unavailable`.
const MAILBOX_REPORT: &str = "mailbox usage";
const ONEDRIVE_REPORT: &str = "OneDrive usage";
const SHAREPOINT_REPORT: &str = "SharePoint site usage";

impl StakeSummary {
    /// Whether `report` could not be read.
    fn lacks(&self, report: &str) -> bool {
        self.unavailable
            .iter()
            .any(|u| u.strip_prefix(report).is_some_and(|r| r.starts_with(':')))
    }
}

/// The tenant's totals, with the reports' date: a report that could not be
/// read says "unavailable", never a zero.
pub fn totals(s: &StakeSummary) -> String {
    let mail = if s.lacks(MAILBOX_REPORT) {
        "mail unavailable".to_string()
    } else {
        format!(
            "mail {} in {} items across {} mailboxes",
            human_bytes(s.mailbox_bytes),
            s.mailbox_items,
            s.mailboxes
        )
    };
    let onedrive = if s.lacks(ONEDRIVE_REPORT) {
        "OneDrive unavailable".to_string()
    } else {
        format!(
            "OneDrive {} across {} accounts",
            human_bytes(s.onedrive_bytes),
            s.onedrives
        )
    };
    let mut out = format!("{mail}, {onedrive}");
    if s.lacks(SHAREPOINT_REPORT) {
        out.push_str(", SharePoint unavailable");
    } else if s.sites > 0 {
        out.push_str(&format!(
            ", SharePoint {} across {} sites",
            human_bytes(s.sharepoint_bytes),
            s.sites
        ));
    }
    if !s.report_date.is_empty() {
        out.push_str(&format!(
            " (usage reports of {}, period {} days)",
            s.report_date, s.period_days
        ));
    }
    out
}

/// What the protection policies mean for the backup, for the gate and the
/// plan: `None` when the tenant has none.
///
/// Microsoft 365 Backup keeps its restore points inside the tenant ("Data
/// never leaves the Microsoft 365 data trust boundary",
/// <https://learn.microsoft.com/en-us/microsoft-365/backup/backup-overview>),
/// restores into that tenant, and deletes the backed-up data when the
/// tool is offboarded, which also happens "if your billing account goes into
/// an unhealthy state"
/// (<https://learn.microsoft.com/en-us/microsoft-365/backup/backup-offboarding>);
/// no page says any restore point outlives the tenant.
pub fn in_tenant_warning(stake: &DataAtStake) -> Option<String> {
    if stake.protection_policies.is_empty() {
        return None;
    }
    Some(format!(
        "the tenant has {} Microsoft 365 Backup protection policies ({} active): their restore points are kept inside this tenant and go with it when it is deleted (Microsoft documents no restore point that outlives the tenant); they do not count as a backup outside the tenant",
        stake.protection_policies.len(),
        stake.active_policies()
    ))
}

/// The backup gate's instructions.
pub fn gate_instructions(
    tenant: &str,
    saga: &str,
    stake: &DataAtStake,
    summary: &StakeSummary,
) -> String {
    let mut out = format!(
        "tenant {tenant}: before any user is deleted, make sure the tenant's data is backed up OUTSIDE the tenant, then attest it: closeout confirm {saga} --backup --reason \"where the copy is\". This gate rests on a person's word: nothing closeout can read proves a copy outside the tenant. Data at stake: {}",
        describe(summary)
    );
    if let Some(w) = in_tenant_warning(stake) {
        out.push_str(". WARNING: ");
        out.push_str(&w);
    }
    if let Some(why) = &stake.policies_unavailable {
        out.push_str(&format!(
            ". The Microsoft 365 Backup protection policies could not be read ({why})"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(anonymised: bool) -> UsageReport {
        UsageReport {
            unavailable: None,
            refresh_date: "2026-12-01".into(),
            period_days: "7".into(),
            rows: 3,
            anonymised,
            total_bytes: 600,
            total_items: 60,
            accounts: vec![
                AccountUsage {
                    upn: "a@x".into(),
                    bytes: 300,
                    items: 30,
                },
                AccountUsage {
                    upn: "B@x".into(),
                    bytes: 200,
                    items: 20,
                },
                AccountUsage {
                    upn: "keep@x".into(),
                    bytes: 100,
                    items: 10,
                },
            ],
        }
    }

    #[test]
    fn matches_users_to_delete_by_upn_ignoring_case() {
        let stake = DataAtStake {
            mailbox: report(false),
            onedrive: report(false),
            ..DataAtStake::default()
        };
        let s = summarize(&stake, &["a@x", "b@X", "gone@x"]);
        assert_eq!(s.mailbox_bytes, 600);
        assert_eq!(s.users_matched, 2);
        assert_eq!(s.delete_mailbox_bytes, 500);
        assert_eq!(s.delete_mailbox_items, 50);
        assert_eq!(s.delete_onedrive_bytes, 500);
    }

    #[test]
    fn anonymised_reports_give_totals_only() {
        let stake = DataAtStake {
            mailbox: report(true),
            onedrive: report(true),
            ..DataAtStake::default()
        };
        let s = summarize(&stake, &["a@x"]);
        assert!(s.anonymised);
        assert_eq!(s.users_matched, 0);
        assert_eq!(s.delete_mailbox_bytes, 0);
        assert_eq!(s.mailbox_bytes, 600);
        assert!(describe(&s).contains("conceal user names"));
    }

    #[test]
    fn in_tenant_policies_warn_that_copies_go_with_the_tenant() {
        let mut stake = DataAtStake::default();
        assert!(in_tenant_warning(&stake).is_none());
        stake.protection_policies.push(ProtectionPolicy {
            id: "p".into(),
            kind: "exchange".into(),
            display_name: "Mail".into(),
            status: "active".into(),
        });
        let w = in_tenant_warning(&stake).unwrap();
        assert!(w.contains("go with it"), "{w}");
        assert_eq!(human_bytes(1_400_000_000), "1.4 GB");
    }
}
