//! Where an endpoint may point: a URL whose host is, or resolves to, a loopback,
//! private, link-local or cloud metadata address is refused unless the operator allows
//! private networks (`WEBHOOK_ALLOW_PRIVATE_NETWORKS`), so that registering an endpoint
//! cannot make the service call into its own network (server-side request forgery).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::{FieldError, WebhookHost, WebhookUrl, non_public};

/// Whether endpoints may point into private networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkPolicy {
    /// Only public addresses (the default).
    PublicOnly,
    /// Any address: for tests, and for shops whose receivers live beside the service.
    AllowPrivate,
}

/// How long a name may take to resolve before the URL is refused.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Checks that `url`'s host is, and resolves only to, public addresses (unless the
/// policy allows private ones). A name that does not resolve is refused as well: a
/// delivery could not reach it.
pub async fn check_reachable(url: &WebhookUrl, policy: NetworkPolicy) -> Result<(), FieldError> {
    if policy == NetworkPolicy::AllowPrivate {
        return Ok(());
    }
    let addresses: Vec<IpAddr> = match url.host() {
        WebhookHost::Address(ip) => vec![ip],
        WebhookHost::Name(name) => resolve(&name, url.port()).await?,
    };
    for ip in addresses {
        if let Some(why) = non_public(ip) {
            return Err(FieldError::new(
                "url",
                format!(
                    "reaches {ip}, {why}; endpoints must be public unless \
                     WEBHOOK_ALLOW_PRIVATE_NETWORKS=true"
                ),
            ));
        }
    }
    Ok(())
}

async fn resolve(name: &str, port: u16) -> Result<Vec<IpAddr>, FieldError> {
    let unresolved = |why: &str| FieldError::new("url", format!("its host {name:?} {why}"));
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await {
        Ok(Ok(addresses)) => {
            let addresses: Vec<IpAddr> = addresses.map(|a| a.ip()).collect();
            if addresses.is_empty() {
                Err(unresolved("resolves to no address"))
            } else {
                Ok(addresses)
            }
        }
        Ok(Err(_)) => Err(unresolved("does not resolve")),
        Err(_) => Err(unresolved("did not resolve in time")),
    }
}

/// Why a delivery may not go to `ip` under `policy`, if it may not.
pub fn refused(ip: IpAddr, policy: NetworkPolicy) -> Option<String> {
    if policy == NetworkPolicy::AllowPrivate {
        return None;
    }
    non_public(ip).map(|why| {
        format!(
            "{ip} is {why}; endpoints must be public unless WEBHOOK_ALLOW_PRIVATE_NETWORKS=true"
        )
    })
}

/// The deliveries' name resolver: an endpoint's name is resolved again for every new
/// connection, and addresses the policy refuses are dropped there, so a name that
/// resolved to a public address at registration cannot later send a delivery into
/// the service's own network (DNS rebinding).
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver(pub NetworkPolicy);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved =
                tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host.as_str(), 0)))
                    .await
                    .map_err(|_| format!("{host:?} did not resolve in time"))??;
            let mut allowed = Vec::new();
            let mut refusal = None;
            for address in resolved {
                match refused(address.ip(), policy) {
                    None => allowed.push(address),
                    Some(why) => refusal = Some(why),
                }
            }
            if allowed.is_empty() {
                let why = refusal.unwrap_or_else(|| format!("{host:?} resolves to no address"));
                return Err(why.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter().map(|a| SocketAddr::new(a.ip(), 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn check(url: &str, policy: NetworkPolicy) -> Result<(), FieldError> {
        check_reachable(&WebhookUrl::parse(url).unwrap(), policy).await
    }

    #[tokio::test]
    async fn private_addresses_are_refused_by_literal_and_by_name() {
        for url in [
            "http://127.0.0.1:8080/hooks",
            "http://[::1]/",
            "http://10.0.0.7/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:192.168.0.1]/",
            // A name: what it resolves to is checked (here, from /etc/hosts).
            "http://localhost:9000/hooks",
        ] {
            let err = check(url, NetworkPolicy::PublicOnly).await.unwrap_err();
            assert_eq!(err.field, "url");
            assert!(
                err.message.contains("WEBHOOK_ALLOW_PRIVATE_NETWORKS"),
                "{url}: {}",
                err.message
            );
            assert_eq!(check(url, NetworkPolicy::AllowPrivate).await, Ok(()));
        }
        assert!(
            check("http://169.254.169.254/", NetworkPolicy::PublicOnly)
                .await
                .unwrap_err()
                .message
                .contains("cloud metadata")
        );
    }

    #[tokio::test]
    async fn public_literal_addresses_pass_and_unresolvable_names_do_not() {
        assert_eq!(
            check("https://93.184.216.34/hooks", NetworkPolicy::PublicOnly).await,
            Ok(())
        );
        assert_eq!(
            check("https://[2606:4700::1111]/", NetworkPolicy::PublicOnly).await,
            Ok(())
        );
        let err = check("https://no-such-host.invalid/", NetworkPolicy::PublicOnly)
            .await
            .unwrap_err();
        assert!(err.message.contains("resolve"), "{}", err.message);
    }
}
