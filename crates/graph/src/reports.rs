//! The data at stake: Microsoft 365's usage reports, the tenant's report
//! settings and its Microsoft 365 Backup protection policies, read for
//! `saga::stake`.
//!
//! - `GET /v1.0/reports/getMailboxUsageDetail(period='D7')` and
//!   `getOneDriveUsageAccountDetail(period='D7')` (`Reports.Read.All`)
//!   answer `302 Found` with a pre-authenticated download URL in `Location`
//!   ("valid for a short period of time (a few minutes) and do not require
//!   an Authorization header"), whose body is the CSV report:
//!   <https://learn.microsoft.com/en-us/graph/api/reportroot-getmailboxusagedetail>,
//!   <https://learn.microsoft.com/en-us/graph/api/reportroot-getonedriveusageaccountdetail>;
//!   `getSharePointSiteUsageDetail(period='D7')` the same way, one row per
//!   site with its `Owner Principal Name`
//!   (<https://learn.microsoft.com/en-us/graph/api/reportroot-getsharepointsiteusagedetail>).
//!   The client follows no redirect on its own (a redirect would carry the
//!   bearer token to the host it names): this one redirect is followed
//!   here, once, WITHOUT the token, and only to the host the pages name
//!   (`https://reports.office.com`) or to the configured Graph endpoint's
//!   own origin (the simulator serves both on one port); any other target
//!   fails the report with the host named. A report answered `200` with
//!   the CSV directly is read as such.
//! - `GET /v1.0/admin/reportSettings` (`displayConcealedNames`,
//!   `ReportSettings.Read.All`): whether reports hash user names
//!   (<https://learn.microsoft.com/en-us/graph/api/adminreportsettings-get>).
//!   Unreadable, the report's content tells: a UPN column without any `@`.
//! - `GET /v1.0/solutions/backupRestore/protectionPolicies`
//!   (`BackupRestore-Configuration.Read.All`):
//!   <https://learn.microsoft.com/en-us/graph/api/backuprestoreroot-list-protectionpolicies>.
//!
//! A part refused for good (a missing permission: 403, or a 400/404) is
//! recorded as unavailable with the reason, never as zero: the closure does
//! not depend on these reads, the operator's judgement at the backup gate
//! does. A transient failure fails the read, for the saga to retry.

use super::client::Body;
use super::error::{self, CallCtx};
use super::throttle::Feedback;
use super::TenantClient;
use crate::model::{CallError, FailureClass};
use crate::saga::stake::{
    AccountUsage, DataAtStake, ProtectionPolicy, UsageReport, DETAIL_ACCOUNTS, REPORT_PERIOD,
};
use reqwest::Method;
use serde::Deserialize;
use url::Url;

/// The host Microsoft's pages show the reports' download URL on.
pub const REPORTS_HOST: &str = "reports.office.com";

/// Which report, and the CSV columns closeout reads from it (the pages'
/// column lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `getMailboxUsageDetail`.
    Mailbox,
    /// `getOneDriveUsageAccountDetail`.
    OneDrive,
    /// `getSharePointSiteUsageDetail`: one row per site
    /// (<https://learn.microsoft.com/en-us/graph/api/reportroot-getsharepointsiteusagedetail>).
    SharePoint,
}

impl Kind {
    /// The function's request path.
    pub fn path(self) -> String {
        let f = match self {
            Kind::Mailbox => "getMailboxUsageDetail",
            Kind::OneDrive => "getOneDriveUsageAccountDetail",
            Kind::SharePoint => "getSharePointSiteUsageDetail",
        };
        format!("/v1.0/reports/{f}(period='{REPORT_PERIOD}')")
    }

    fn upn_column(self) -> &'static str {
        match self {
            Kind::Mailbox => "User Principal Name",
            Kind::OneDrive | Kind::SharePoint => "Owner Principal Name",
        }
    }

    fn items_column(self) -> &'static str {
        match self {
            Kind::Mailbox => "Item Count",
            Kind::OneDrive | Kind::SharePoint => "File Count",
        }
    }
}

#[derive(Deserialize)]
struct Policy {
    #[serde(rename = "@odata.type", default)]
    odata_type: String,
    #[serde(default)]
    id: String,
    #[serde(rename = "displayName", default)]
    display_name: String,
    #[serde(default)]
    status: String,
}

/// Whether a redirect from a report request may be followed: to the
/// documented download host over https, or to the Graph endpoint's own
/// origin.
pub fn download_allowed(graph: &Url, target: &Url) -> bool {
    let documented = target.scheme() == "https"
        && target.host_str() == Some(REPORTS_HOST)
        && target.port().is_none();
    let same_origin = target.scheme() == graph.scheme()
        && target.host_str() == graph.host_str()
        && target.port_or_known_default() == graph.port_or_known_default();
    (documented || same_origin) && target.username().is_empty() && target.password().is_none()
}

/// A permanent failure becomes the reason a part is unavailable; a
/// transient or unclear one fails the read.
fn unavailable(e: CallError) -> Result<String, CallError> {
    match e.class {
        FailureClass::Permanent => Ok(e.to_string()),
        FailureClass::Transient | FailureClass::InDoubt => Err(e),
    }
}

impl TenantClient {
    /// Reads everything [`DataAtStake`] holds.
    pub(crate) async fn read_data_at_stake(&self) -> Result<DataAtStake, CallError> {
        let concealed_names = match self
            .get_json::<serde_json::Value>(self.url("/v1.0/admin/reportSettings")?)
            .await
        {
            Ok(v) => v.as_ref().and_then(concealed_of),
            Err(e) => {
                unavailable(e)?;
                None
            }
        };
        let mut stake = DataAtStake {
            concealed_names,
            ..DataAtStake::default()
        };
        for kind in [Kind::Mailbox, Kind::OneDrive, Kind::SharePoint] {
            let report = match self.usage_csv(kind).await {
                Ok(csv) => {
                    parse_report(kind, &csv, concealed_names).unwrap_or_else(|why| UsageReport {
                        unavailable: Some(format!(
                            "{} for tenant {}: {why}",
                            kind.path(),
                            self.tenant
                        )),
                        ..UsageReport::default()
                    })
                }
                Err(e) => UsageReport {
                    unavailable: Some(unavailable(e)?),
                    ..UsageReport::default()
                },
            };
            match kind {
                Kind::Mailbox => stake.mailbox = report,
                Kind::OneDrive => stake.onedrive = report,
                Kind::SharePoint => stake.sharepoint = report,
            }
        }
        match self
            .all::<Policy>("/v1.0/solutions/backupRestore/protectionPolicies")
            .await
        {
            Ok(list) => {
                stake.protection_policies = list
                    .into_iter()
                    .map(|p| ProtectionPolicy {
                        id: p.id,
                        kind: p
                            .odata_type
                            .trim_start_matches("#microsoft.graph.")
                            .trim_end_matches("ProtectionPolicy")
                            .to_string(),
                        display_name: p.display_name,
                        status: p.status,
                    })
                    .collect();
            }
            Err(e) => stake.policies_unavailable = Some(unavailable(e)?),
        }
        Ok(stake)
    }

    /// One report's CSV: the function's answer, and the download it
    /// redirects to (followed once, without credentials, when allowed).
    async fn usage_csv(&self, kind: Kind) -> Result<bytes::Bytes, CallError> {
        let url = self.url(&kind.path())?;
        let ctx = self.ctx(&Method::GET, &url);
        let permit = (self.throttle.acquire(0).await).map_err(|_| error::not_sent(&ctx))?;
        // As every Graph call: one token renewal, one resend.
        let reply = (self.tokens)
            .send(Method::GET, url.clone(), None, &[], true)
            .await?
            .map_err(|(kind, detail)| error::transport_error(&ctx, kind, &detail))?;
        self.throttle.record(
            &permit,
            Feedback {
                answered: 1,
                throttled: u32::from(reply.status == 429),
                write: false,
                accepted_writes: 0,
                retry_after: reply.retry_after(),
                hint: reply.limit_hint(),
            },
        );
        drop(permit);
        if (200..300).contains(&reply.status) {
            return Ok(reply.body);
        }
        if !(300..400).contains(&reply.status) {
            crate::tenant::judge_reply(&ctx, &reply, &reply.request_id())?;
            return Ok(reply.body);
        }
        let refused = |why: String| CallError {
            class: FailureClass::Permanent,
            code: "report_download_refused".into(),
            message: format!("GET {} for tenant {}: {why}", ctx.path, self.tenant),
            retry_after: None,
        };
        let target = reply
            .header("location")
            .and_then(|l| url.join(l).ok())
            .ok_or_else(|| {
                refused(format!(
                    "answered {} without a usable Location",
                    reply.status
                ))
            })?;
        if !download_allowed(&self.shared.endpoints.graph, &target) {
            return Err(refused(format!(
                "the report's download is at {}, neither {REPORTS_HOST} nor the Graph endpoint's host: not followed",
                target.host_str().unwrap_or("?")
            )));
        }
        // The download carries no token, but its query is its credential
        // (pre-authenticated), which a transport error's text may show.
        let mut redact = ctx.redact.clone();
        if let Some(q) = target.query().filter(|q| !q.is_empty()) {
            redact = redact.with(std::sync::Arc::new(crate::model::Secret::new(q)));
        }
        let dctx = CallCtx {
            tenant: self.tenant.clone(),
            method: "GET".into(),
            path: target.path().to_string(),
            redact,
        };
        let download = self
            .shared
            .send(Method::GET, target, None, Body::None)
            .await
            .map_err(|(kind, detail)| error::transport_error(&dctx, kind, &detail))?;
        if !(200..300).contains(&download.status) {
            error::judge(
                &dctx,
                download.status,
                error::error_code(&download.body),
                &download.body_hint(),
                &download.request_id(),
                download.retry_after(),
            )?;
        }
        Ok(download.body)
    }
}

/// `displayConcealedNames`, at the top level or inside `value` (the page's
/// example answer wraps it so).
fn concealed_of(v: &serde_json::Value) -> Option<bool> {
    v.get("displayConcealedNames")
        .or_else(|| v.get("value").and_then(|x| x.get("displayConcealedNames")))
        .and_then(serde_json::Value::as_bool)
}

/// Parses a report's CSV by its header names (the column order is not
/// relied on; the pages' example header lists fewer columns than their
/// column list). Rows marked `Is Deleted` are left out: their mailbox or
/// OneDrive is already gone from the user. The report counts as anonymised
/// when the tenant says it conceals names, or when no row's principal name
/// has an `@` (a hash instead of a UPN).
pub fn parse_report(
    kind: Kind,
    csv_bytes: &[u8],
    concealed: Option<bool>,
) -> Result<UsageReport, String> {
    let body = csv_bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(csv_bytes);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| format!("unreadable CSV header: {e}"))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("the report has no column {name:?}"))
    };
    let upn_at = col(kind.upn_column())?;
    let bytes_at = col("Storage Used (Byte)")?;
    let items_at = col(kind.items_column())?;
    let date_at = col("Report Refresh Date")?;
    let period_at = col("Report Period").ok();
    let deleted_at = col("Is Deleted").ok();
    let mut report = UsageReport::default();
    let mut accounts = Vec::new();
    let mut named = false;
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("CSV row {}: {e}", line + 2))?;
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        if deleted_at.is_some_and(|i| field(i).eq_ignore_ascii_case("true")) {
            continue;
        }
        let number = |i: usize| -> Result<u64, String> {
            let v = field(i);
            if v.is_empty() {
                return Ok(0);
            }
            v.parse::<u64>()
                .map_err(|_| format!("CSV row {}: {v:?} is not a count", line + 2))
        };
        let bytes = number(bytes_at)?;
        let items = number(items_at)?;
        if report.refresh_date.is_empty() {
            report.refresh_date = field(date_at).to_string();
            report.period_days = period_at.map(|i| field(i).to_string()).unwrap_or_default();
        }
        let upn = field(upn_at).to_string();
        named |= upn.contains('@');
        report.rows = report.rows.saturating_add(1);
        report.total_bytes = report.total_bytes.saturating_add(bytes);
        report.total_items = report.total_items.saturating_add(items);
        accounts.push(AccountUsage { upn, bytes, items });
    }
    report.anonymised = concealed.unwrap_or(false) || (report.rows > 0 && !named);
    accounts.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.upn.cmp(&b.upn)));
    accounts.truncate(DETAIL_ACCOUNTS);
    report.accounts = accounts;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_by_header_and_detects_hashed_names() {
        let csv = "\u{feff}Report Refresh Date,User Principal Name,Display Name,Is Deleted,Item Count,Storage Used (Byte),Report Period\n\
                   2026-12-01,a@x.com,A,False,10,1000,7\n\
                   2026-12-01,b@x.com,B,True,5,500,7\n\
                   2026-12-01,c@x.com,C,False,,2000,7\n";
        let r = parse_report(Kind::Mailbox, csv.as_bytes(), None).unwrap();
        assert_eq!((r.rows, r.total_bytes, r.total_items), (2, 3000, 10));
        assert_eq!(r.accounts[0].upn, "c@x.com");
        assert!(!r.anonymised);
        let hashed = "Report Refresh Date,User Principal Name,Item Count,Storage Used (Byte)\n2026-12-01,B2BC6C15BB9FCDEA71E5CD302D228CC8,3,30\n";
        assert!(
            parse_report(Kind::Mailbox, hashed.as_bytes(), None)
                .unwrap()
                .anonymised
        );
        assert!(parse_report(Kind::OneDrive, hashed.as_bytes(), None).is_err());
    }

    #[test]
    fn follows_only_the_documented_host_or_the_graph_origin() {
        let graph = Url::parse("https://graph.microsoft.com").unwrap();
        let ok = Url::parse("https://reports.office.com/data/download/abc").unwrap();
        assert!(download_allowed(&graph, &ok));
        for bad in [
            "http://reports.office.com/data/download/abc",
            "https://evil.example/data",
            "https://reports.office.com.evil.example/x",
            "https://user:pw@reports.office.com/x",
        ] {
            assert!(
                !download_allowed(&graph, &Url::parse(bad).unwrap()),
                "{bad}"
            );
        }
        let sim = Url::parse("http://127.0.0.1:4000").unwrap();
        assert!(download_allowed(
            &sim,
            &Url::parse("http://127.0.0.1:4000/data/download/t").unwrap()
        ));
        assert!(!download_allowed(
            &sim,
            &Url::parse("http://127.0.0.1:4001/data/download/t").unwrap()
        ));
    }
}
