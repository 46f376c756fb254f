//! The authentication and authorization flags shared by `orch apiserver` and `orch up`
//! (kube-apiserver's `--authorization-mode`, `--token-auth-file`, `--anonymous-auth`), mapped
//! to [`AuthConfig`].

use orch_apiserver::auth::authz::{parse_modes, Mode};
use orch_apiserver::auth::AuthConfig;
use std::path::PathBuf;

/// A parsed `--authorization-mode` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modes(pub Vec<Mode>);

fn modes(s: &str) -> Result<Modes, String> {
    parse_modes(s).map(Modes)
}

/// Authentication and authorization flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// Authorizers asked in order, comma-separated: `Node`, `RBAC`, `AlwaysAllow`. Default
    /// `Node,RBAC`; `AlwaysAllow` with `--insecure-http` (no client is authenticated there).
    #[arg(long, value_parser = modes)]
    pub authorization_mode: Option<Modes>,
    /// Static bearer tokens: a CSV file of `token,user,uid,"group1,group2"` lines.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Requests without credentials run as `system:anonymous` in `system:unauthenticated`
    /// (what RBAC grants them: `/version`, `/healthz`, discovery); `false` answers them 401.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,
}

impl AuthArgs {
    /// The configuration these flags give, on HTTPS (`tls`) or plain HTTP.
    pub fn config(&self, tls: bool) -> AuthConfig {
        let default = if tls {
            AuthConfig::secure()
        } else {
            AuthConfig::default()
        };
        AuthConfig {
            authorization_modes: self
                .authorization_mode
                .clone()
                .map_or(default.authorization_modes, |m| m.0),
            token_auth_file: self.token_auth_file.clone(),
            anonymous: self.anonymous_auth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        auth: AuthArgs,
    }

    #[test]
    fn defaults_are_node_rbac_on_https_and_always_allow_on_plain_http() {
        let a = Cmd::try_parse_from(["x"]).unwrap().auth;
        assert_eq!(a.config(true).authorization_modes, [Mode::Node, Mode::Rbac]);
        assert_eq!(a.config(false).authorization_modes, [Mode::AlwaysAllow]);
        assert!(a.config(true).anonymous);
    }

    #[test]
    fn flags_map_to_the_config() {
        let a = Cmd::try_parse_from([
            "x",
            "--authorization-mode=RBAC",
            "--token-auth-file",
            "/t.csv",
            "--anonymous-auth=false",
        ])
        .unwrap()
        .auth;
        let c = a.config(false);
        assert_eq!(c.authorization_modes, [Mode::Rbac]);
        assert_eq!(c.token_auth_file.as_deref(), Some("/t.csv".as_ref()));
        assert!(!c.anonymous);
    }

    #[test]
    fn an_unknown_mode_is_refused() {
        let e = Cmd::try_parse_from(["x", "--authorization-mode", "Node,ABAC"]).unwrap_err();
        assert!(e.to_string().contains("\"ABAC\" is not supported"), "{e}");
    }
}
