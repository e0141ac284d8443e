//! National clouds: the login, Graph and Partner Center hosts of each
//! Microsoft cloud, and the token scopes that go with them.
//!
//! Hosts from "Microsoft Graph national cloud deployments"
//! (https://learn.microsoft.com/graph/deployments: Graph
//! `graph.microsoft.com`, `graph.microsoft.us` (US Government L4),
//! `dod-graph.microsoft.us` (L5, DOD), `microsoftgraph.chinacloudapi.cn`
//! (21Vianet); Entra ID `login.microsoftonline.com`,
//! `login.microsoftonline.us`, `login.chinacloudapi.cn`), from Entra's
//! "National clouds" authentication page
//! (https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud)
//! and from Partner Center's "Different Partner Center REST URL end points"
//! (https://learn.microsoft.com/partner-center/developer/partner-center-rest-urls:
//! the US Government cloud uses `api.partnercenter.microsoft.com`, 21Vianet
//! `partner.partnercenterapi.microsoftonline.cn`).
//!
//! Scopes: "Access national cloud deployments with the Microsoft Graph SDKs"
//! (https://learn.microsoft.com/graph/sdks/national-clouds) says a scope that
//! names the Graph domain must use the domain of the Graph endpoint in use,
//! so the `.default` scope follows the host actually called. A host that is
//! none of Microsoft's (a simulator, a local proxy) keeps the cloud's scope.
//! The Partner Center pages are silent on the 21Vianet scope: it follows its
//! host the same way, and a wrong one is refused by the token endpoint
//! before anything changes.

use serde::{Deserialize, Serialize};
use url::Url;

/// Which Microsoft cloud the tenants live in (`cloud = "..."` in the config).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// The global service (`graph.microsoft.com`, `login.microsoftonline.com`); the
    /// default.
    #[default]
    Global,
    /// Microsoft Cloud for US Government, L4 (GCC High).
    Usgov,
    /// Microsoft Cloud for US Government, L5 (DOD).
    UsgovDod,
    /// Microsoft 365 operated by 21Vianet in China.
    China,
}

/// Every cloud, for tables and tests.
pub const ALL: [Cloud; 4] = [Cloud::Global, Cloud::Usgov, Cloud::UsgovDod, Cloud::China];

impl Cloud {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::Usgov => "usgov",
            Cloud::UsgovDod => "usgov-dod",
            Cloud::China => "china",
        }
    }

    /// The Microsoft Graph host.
    pub fn graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "graph.microsoft.com",
            Cloud::Usgov => "graph.microsoft.us",
            Cloud::UsgovDod => "dod-graph.microsoft.us",
            Cloud::China => "microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The Entra ID token service host.
    pub fn login_host(self) -> &'static str {
        match self {
            Cloud::Global => "login.microsoftonline.com",
            Cloud::Usgov | Cloud::UsgovDod => "login.microsoftonline.us",
            Cloud::China => "login.chinacloudapi.cn",
        }
    }

    /// The Partner Center API host.
    pub fn partner_center_host(self) -> &'static str {
        match self {
            Cloud::Global | Cloud::Usgov | Cloud::UsgovDod => "api.partnercenter.microsoft.com",
            Cloud::China => "partner.partnercenterapi.microsoftonline.cn",
        }
    }

    /// `https://{host}` as a URL.
    fn url(host: &str) -> Url {
        Url::parse(&format!("https://{host}")).unwrap_or_else(|_| unreachable!("constant host"))
    }

    /// The Graph base URL.
    pub fn graph(self) -> Url {
        Cloud::url(self.graph_host())
    }

    /// The login base URL.
    pub fn login(self) -> Url {
        Cloud::url(self.login_host())
    }

    /// The Partner Center base URL.
    pub fn partner_center(self) -> Url {
        Cloud::url(self.partner_center_host())
    }

    /// The `.default` scope of Graph tokens when Graph is reached at `graph`.
    pub fn graph_scope(self, graph: &Url) -> String {
        let host = graph.host_str().unwrap_or_default();
        let known = ALL
            .iter()
            .map(|c| c.graph_host())
            .find(|h| h.eq_ignore_ascii_case(host));
        format!("https://{}/.default", known.unwrap_or(self.graph_host()))
    }

    /// The `.default` scope of Partner Center tokens when it is reached at
    /// `partner_center`.
    pub fn partner_scope(self, partner_center: &Url) -> String {
        let host = partner_center.host_str().unwrap_or_default();
        let known = ALL
            .iter()
            .map(|c| c.partner_center_host())
            .find(|h| h.eq_ignore_ascii_case(host));
        format!(
            "https://{}/.default",
            known.unwrap_or(self.partner_center_host())
        )
    }
}

/// Every Graph `.default` scope of every cloud (the simulator accepts them).
pub fn graph_scopes() -> impl Iterator<Item = String> {
    ALL.iter()
        .map(|c| format!("https://{}/.default", c.graph_host()))
}

/// Every Partner Center `.default` scope of every cloud.
pub fn partner_scopes() -> impl Iterator<Item = String> {
    ALL.iter()
        .map(|c| format!("https://{}/.default", c.partner_center_host()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_follows_the_host_used() {
        let sim = Url::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            Cloud::Usgov.graph_scope(&sim),
            "https://graph.microsoft.us/.default"
        );
        // An explicit Microsoft host wins over the cloud's.
        assert_eq!(
            Cloud::Usgov.graph_scope(&Cloud::UsgovDod.graph()),
            "https://dod-graph.microsoft.us/.default"
        );
        assert_eq!(
            Cloud::China.partner_scope(&sim),
            "https://partner.partnercenterapi.microsoftonline.cn/.default"
        );
        assert_eq!(
            Cloud::Global.graph_scope(&Cloud::Global.graph()),
            "https://graph.microsoft.com/.default"
        );
    }
}
