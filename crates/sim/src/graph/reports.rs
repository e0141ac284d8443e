//! The data at stake: Microsoft 365's usage reports, the tenant's report
//! settings and its Microsoft 365 Backup protection policies.
//!
//! - `GET /v1.0/reports/getMailboxUsageDetail(period='D7')` and
//!   `GET /v1.0/reports/getOneDriveUsageAccountDetail(period='D7')`: "a
//!   `302 Found` response that redirects to a preauthenticated download URL
//!   for the report ... in the `Location` header", valid without an
//!   `Authorization` header; the download is the CSV with the pages' columns
//!   (<https://learn.microsoft.com/en-us/graph/api/reportroot-getmailboxusagedetail>,
//!   <https://learn.microsoft.com/en-us/graph/api/reportroot-getonedriveusageaccountdetail>),
//!   and `getSharePointSiteUsageDetail(period='D7')`: two sites per tenant,
//!   `root` owned by the first keep account and `team` by the first other
//!   member, sizes derived from the tenant id
//!   (<https://learn.microsoft.com/en-us/graph/api/reportroot-getsharepointsiteusagedetail>).
//!   `period` is one of `D7`, `D30`, `D90`, `D180`; anything else answers
//!   400 (the pages list the values; the error's code is not documented).
//!   The download URL is on the simulator's own origin (Microsoft's is
//!   `https://reports.office.com/data/download/...`), at `/data/download/`
//!   with a token that only this tenant's reports carry; the pages say it
//!   expires "a few minutes" after: the simulator does not expire it.
//!   The report shows the directory as it is now (the real one is a daily
//!   snapshot, its `Report Refresh Date` a day or two back: the pages give
//!   no figure).
//! - Concealed names: with `displayConcealedNames` on, the reports show a
//!   hash in place of user and display names ("alphanumeric values such as
//!   B2BC6C15BB9FCDEA71E5CD302D228CC8", Microsoft 365 support article
//!   "Microsoft 365 reports show anonymous user names instead of actual user
//!   names"); the hash function is not documented: the simulator uses 16
//!   bytes of BLAKE3, upper-case hex.
//! - `GET /v1.0/admin/reportSettings`: `{"value": {"@odata.type":
//!   "#microsoft.graph.adminReportSettings", "displayConcealedNames": ...}}`,
//!   the page's example answer as printed
//!   (<https://learn.microsoft.com/en-us/graph/api/adminreportsettings-get>).
//! - `GET /v1.0/solutions/backupRestore/protectionPolicies`: a collection of
//!   `protectionPolicyBase` with `@odata.type`, `id`, `displayName`,
//!   `status` (<https://learn.microsoft.com/en-us/graph/api/backuprestoreroot-list-protectionpolicies>);
//!   empty for a tenant without Microsoft 365 Backup (what Graph answers
//!   when the service was never enabled is not documented).
//!
//! Permissions: each of these reads needs its application permission
//! (`Reports.Read.All`, `ReportSettings.Read.All`,
//! `BackupRestore-Configuration.Read.All`, from each page's permissions
//! table); an app the fixture does not grant it (`app_permissions`) gets
//! 403 `Authorization_RequestDenied`, Graph's usual answer for missing
//! privileges (the pages do not print the error these reads give).

use super::{collection, Call};
use crate::http::Resp;
use crate::state::{Tenant, User};
use serde_json::{json, Value};

/// 403 when closeout's app lacks the application permission `name` in `t`.
pub fn denied(t: &Tenant, c: &Call, name: &str) -> Option<Resp> {
    let p = crate::saga::permissions::by_name(name)?;
    let held = t
        .app_permissions
        .iter()
        .any(|g| g.eq_ignore_ascii_case(p.id));
    (!held).then(|| {
        c.error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    })
}

/// The report periods the pages list.
const PERIODS: [&str; 4] = ["D7", "D30", "D90", "D180"];

/// Which report a function or a download is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `getMailboxUsageDetail`.
    Mailbox,
    /// `getOneDriveUsageAccountDetail`.
    OneDrive,
    /// `getSharePointSiteUsageDetail`.
    SharePoint,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Mailbox => "mailbox",
            Kind::OneDrive => "onedrive",
            Kind::SharePoint => "sharepoint",
        }
    }

    fn of(name: &str) -> Option<Kind> {
        match name {
            "mailbox" => Some(Kind::Mailbox),
            "onedrive" => Some(Kind::OneDrive),
            "sharepoint" => Some(Kind::SharePoint),
            _ => None,
        }
    }
}

/// The function segment (`getMailboxUsageDetail(period='D7')`) as a report
/// and its period; `None` when the segment is not a report function.
pub fn function(seg: &str) -> Option<(Kind, &str)> {
    let (name, rest) = seg.split_once('(')?;
    let kind = match name {
        "getMailboxUsageDetail" => Kind::Mailbox,
        "getOneDriveUsageAccountDetail" => Kind::OneDrive,
        "getSharePointSiteUsageDetail" => Kind::SharePoint,
        _ => return None,
    };
    let arg = rest.strip_suffix(')')?;
    let period = arg
        .strip_prefix("period=")
        .map(|p| p.trim_matches('\''))
        .unwrap_or("");
    Some((kind, period))
}

/// The token of a tenant's report download: it names the tenant, the
/// report and the period, with a MAC only the simulator can make.
fn token(t: &Tenant, kind: Kind, period: &str) -> String {
    let mac = blake3::hash(
        format!(
            "{}/{}/{}/{period}",
            t.client_secret,
            t.tenant_id,
            kind.name()
        )
        .as_bytes(),
    );
    let hex: String = mac.as_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}.{}.{period}.{hex}", t.tenant_id, kind.name())
}

/// The report function: 302 to the download.
pub fn redirect(t: &Tenant, c: &Call, kind: Kind, period: &str) -> Resp {
    if !PERIODS.contains(&period) {
        return c.error(
            400,
            "BadRequest",
            &format!("Invalid value '{period}' for parameter 'period'. Supported values are D7, D30, D90 and D180."),
        );
    }
    let mut resp = Resp::empty(302).header(
        "Location",
        format!("{}/data/download/{}", c.req.base, token(t, kind, period)),
    );
    resp.headers
        .push(("Content-Type".into(), "text/plain".into()));
    resp
}

/// The download (`/data/download/{token}`): the CSV, without credentials;
/// 404 for a token the simulator did not hand out or a deleted tenant.
pub fn download(
    tenants: &std::collections::HashMap<String, Tenant>,
    token_text: &str,
    date: &str,
) -> Resp {
    let not_found = || {
        Resp::json(
            404,
            json!({"error": {"code": "NotFound", "message": "The report is not available."}}),
        )
    };
    let mut parts = token_text.split('.');
    let (Some(tenant_id), Some(kind), Some(period)) = (parts.next(), parts.next(), parts.next())
    else {
        return not_found();
    };
    let (Some(t), Some(kind)) = (tenants.get(tenant_id), Kind::of(kind)) else {
        return not_found();
    };
    if t.deleted || token(t, kind, period) != token_text {
        return not_found();
    }
    let days = period.trim_start_matches('D');
    let day = date.get(..10).unwrap_or(date);
    let mut csv = csv::Writer::from_writer(Vec::new());
    let header: &[&str] = match kind {
        Kind::Mailbox => &[
            "Report Refresh Date",
            "User Principal Name",
            "Display Name",
            "Is Deleted",
            "Deleted Date",
            "Created Date",
            "Last Activity Date",
            "Item Count",
            "Storage Used (Byte)",
            "Issue Warning Quota (Byte)",
            "Prohibit Send Quota (Byte)",
            "Prohibit Send/Receive Quota (Byte)",
            "Deleted Item Count",
            "Deleted Item Size (Byte)",
            "Deleted Item Quota (Byte)",
            "Has Archive",
            "Report Period",
        ],
        Kind::OneDrive => &[
            "Report Refresh Date",
            "Site URL",
            "Owner Display Name",
            "Is Deleted",
            "Last Activity Date",
            "File Count",
            "Active File Count",
            "Storage Used (Byte)",
            "Storage Allocated (Byte)",
            "Owner Principal Name",
            "Report Period",
        ],
        Kind::SharePoint => &[
            "Report Refresh Date",
            "Site Id",
            "Site URL",
            "Owner Display Name",
            "Is Deleted",
            "Last Activity Date",
            "File Count",
            "Active File Count",
            "Page View Count",
            "Visited Page Count",
            "Storage Used (Byte)",
            "Storage Allocated (Byte)",
            "Root Web Template",
            "Owner Principal Name",
            "Report Period",
        ],
    };
    let _ = csv.write_record(header);
    if kind == Kind::SharePoint {
        for (site, owner) in sites(t) {
            let (upn, name) = names(t, owner);
            let bytes =
                crate::fixture::derived(&format!("{}/{site}", t.tenant_id), 3, 50_000_000_000);
            let _ = csv.write_record([
                day.to_string(),
                crate::fixture::uuid_from(&format!("site/{}/{site}", t.tenant_id)),
                format!(
                    "https://{}.sharepoint.com/sites/{site}",
                    t.domain.split('.').next().unwrap_or("tenant")
                ),
                name,
                "False".into(),
                day.into(),
                (bytes / 2_000_000).to_string(),
                "0".into(),
                "0".into(),
                "0".into(),
                bytes.to_string(),
                "27487790694400".into(),
                "Group".into(),
                upn,
                days.into(),
            ]);
        }
    }
    let people = t
        .users
        .values()
        .filter(|u| u.user_type == "Member" && kind != Kind::SharePoint);
    for u in people {
        let (upn, name) = names(t, u);
        let row: Vec<String> = match kind {
            Kind::Mailbox => vec![
                day.into(),
                upn,
                name,
                "False".into(),
                String::new(),
                day.into(),
                day.into(),
                u.mailbox_items.to_string(),
                u.mailbox_bytes.to_string(),
                "105226698752".into(),
                "106300440576".into(),
                "107374182400".into(),
                "0".into(),
                "0".into(),
                "32212254720".into(),
                "False".into(),
                days.into(),
            ],
            Kind::SharePoint => continue,
            Kind::OneDrive => vec![
                day.into(),
                format!(
                    "https://{}-my.sharepoint.com/personal/{}",
                    t.domain.split('.').next().unwrap_or("tenant"),
                    u.id
                ),
                name,
                "False".into(),
                day.into(),
                (u.onedrive_bytes / 2_000_000).to_string(),
                "0".into(),
                u.onedrive_bytes.to_string(),
                "1099511627776".into(),
                upn,
                days.into(),
            ],
        };
        let _ = csv.write_record(&row);
    }
    let body = csv.into_inner().unwrap_or_default();
    Resp {
        status: 200,
        headers: vec![("Content-Type".into(), "application/octet-stream".into())],
        body: Some(Value::String(String::from_utf8_lossy(&body).into_owned())),
    }
}

/// The tenant's SharePoint sites and their owners: `root`, owned by the
/// first keep account, and `team`, owned by the first other member (when
/// there is one, and while it exists).
fn sites(t: &Tenant) -> Vec<(&'static str, &User)> {
    let is_keep = |u: &User| {
        t.keep
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&u.user_principal_name))
    };
    let members = || t.users.values().filter(|u| u.user_type == "Member");
    let mut out = Vec::new();
    if let Some(admin) = members().find(|u| is_keep(u)) {
        out.push(("root", admin));
    }
    if let Some(other) = members().find(|u| !is_keep(u)) {
        out.push(("team", other));
    }
    out
}

/// A user's principal and display name as the reports show them: hashed
/// when the tenant conceals names.
fn names(t: &Tenant, u: &User) -> (String, String) {
    if !t.concealed_names {
        return (u.user_principal_name.clone(), u.display_name.clone());
    }
    let hash = |s: &str| -> String {
        blake3::hash(format!("{}/{s}", t.tenant_id).as_bytes()).as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    };
    (hash(&u.user_principal_name), hash(&u.display_name))
}

/// `GET /v1.0/admin/reportSettings`.
pub fn settings(t: &Tenant) -> Resp {
    Resp::json(
        200,
        json!({"value": {
            "@odata.type": "#microsoft.graph.adminReportSettings",
            "displayConcealedNames": t.concealed_names,
        }}),
    )
}

/// `GET /v1.0/solutions/backupRestore/protectionPolicies`.
pub fn protection_policies(t: &Tenant, c: &Call) -> Resp {
    let value = t
        .backup_policies
        .iter()
        .map(|p| {
            json!({
                "@odata.type": p.odata_type,
                "id": p.id,
                "displayName": p.display_name,
                "status": p.status,
                "retentionSettings": [{"interval": "R/PT10M", "period": "P2W"}, {"interval": "R/P1W", "period": "P1Y"}],
            })
        })
        .collect();
    collection(c, "ProtectionPolicies", value, None)
}
