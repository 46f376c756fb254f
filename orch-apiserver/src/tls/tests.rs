use super::*;
use crate::client::HttpClient;
use crate::kubeconfig::Endpoint;
use crate::pki::{Pki, PkiOptions};
use crate::{ApiServer, ApiServerConfig};
use orch_types::client::{Client, ListParams, WatchParams};

struct Fixture {
    _dir: tempfile::TempDir,
    pki: Pki,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&PkiOptions::new(dir.path().join("pki"))).expect("pki");
    Fixture { _dir: dir, pki }
}

/// Serves a router answering the request's client identity as `CN|O1,O2` (or `anonymous`, or
/// `refused: why`).
async fn echo_identity(pki: &Pki) -> (String, tokio::sync::oneshot::Sender<()>) {
    let router = axum::Router::new().route(
        "/whoami",
        axum::routing::get(|req: axum::extract::Request| async move {
            let refused = req.extensions().get::<RefusedClientCertificate>();
            match (req.extensions().get::<ClientIdentity>(), refused) {
                (Some(id), _) => format!("{}|{}", id.common_name, id.organizations.join(",")),
                (None, Some(RefusedClientCertificate(why))) => format!("refused: {why}"),
                (None, None) => "anonymous".to_string(),
            }
        }),
    );
    let config = api_server_tls(pki.serving(), pki.client_ca_pem()).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_router(listener, config, router, async move {
        let _ = rx.await;
    }));
    (url, tx)
}

fn client(ep: &Endpoint) -> reqwest::Client {
    reqwest_client(
        reqwest::Client::builder(),
        ep.tls_config().expect("tls config"),
    )
    .expect("client")
}

#[tokio::test]
async fn a_verified_client_certificate_is_the_requests_identity() {
    let f = fixture();
    let (url, _stop) = echo_identity(&f.pki).await;
    let ca = Some(f.pki.ca_cert_pem().to_string());
    let admin = Endpoint {
        ca_pem: ca.clone(),
        client: Some(f.pki.admin().expect("admin")),
        ..Endpoint::new(url.clone())
    };
    let anonymous = Endpoint {
        ca_pem: ca,
        ..Endpoint::new(url.clone())
    };
    for (ep, want) in [
        (&admin, "kubernetes-admin|system:masters"),
        (&anonymous, "anonymous"),
    ] {
        let body = client(ep)
            .get(format!("{url}/whoami"))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("text");
        assert_eq!(body, want);
    }
}

#[tokio::test]
async fn a_client_certificate_of_another_ca_is_refused_after_the_handshake() {
    let f = fixture();
    let other = fixture();
    let (url, _stop) = echo_identity(&f.pki).await;
    let ep = Endpoint {
        ca_pem: Some(f.pki.ca_cert_pem().to_string()),
        client: Some(other.pki.admin().expect("admin")),
        ..Endpoint::new(url.clone())
    };
    // Same subject as the cluster's admin, but no identity: the request is marked refused.
    let body = client(&ep)
        .get(format!("{url}/whoami"))
        .send()
        .await
        .expect("the handshake succeeds")
        .text()
        .await
        .expect("text");
    assert!(body.starts_with("refused: "), "{body}");
    // Both CAs have the same name: the signature is what does not verify.
    assert!(body.contains("invalid peer certificate"), "{body}");
    // The server is not verified against a CA it was not signed by either.
    let wrong_ca = Endpoint {
        ca_pem: Some(other.pki.ca_cert_pem().to_string()),
        ..Endpoint::new(url.clone())
    };
    assert!(client(&wrong_ca)
        .get(format!("{url}/whoami"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_told_so() {
    let f = fixture();
    let (url, _stop) = echo_identity(&f.pki).await;
    let plain = url.replace("https://", "http://");
    let resp = plain_reqwest_client()
        .get(format!("{plain}/whoami"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.text().await.expect("text"),
        "Client sent an HTTP request to an HTTPS server.\n"
    );
}

#[tokio::test]
async fn serve_tls_serves_the_api_and_shutdown_ends_watches() {
    let f = fixture();
    let api = ApiServer::new(ApiServerConfig::memory()).expect("api");
    let config = api_server_tls(f.pki.serving(), f.pki.client_ca_pem()).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().expect("addr").port()
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve_tls(api, listener, config, async move {
        let _ = rx.await;
    }));
    let ep = Endpoint {
        ca_pem: Some(f.pki.ca_cert_pem().to_string()),
        client: Some(f.pki.admin().expect("admin")),
        ..Endpoint::new(url)
    };
    let c = HttpClient::from_endpoint(&ep).expect("client");
    let ns = orch_types::registry::by_name("ns")[0].api_resource();
    let list = c
        .list(&ns, None, &ListParams::default())
        .await
        .expect("list");
    assert_eq!(list.items.len(), 4);
    let mut watch = c
        .watch(&ns, None, &WatchParams::default())
        .await
        .expect("watch");
    tx.send(()).expect("stop");
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        use futures::StreamExt;
        while watch.next().await.is_some() {}
    })
    .await
    .expect("the watch ends");
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .expect("join")
        .expect("serve");
}
