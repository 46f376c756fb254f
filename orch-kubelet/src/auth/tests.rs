use super::*;
use orch_types::client::{
    Client, ClientError, DeleteOutcome, DeleteParams, ListParams, ObjectList, Patch, PatchParams,
    Result, WatchParams, WatchStream,
};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Answers reviews as an API server would: token `good` is user `alice`; `alice` may get
/// `nodes/stats`, the `system:masters` group anything.
#[derive(Default)]
struct Reviewer {
    access_reviews: AtomicUsize,
    token_reviews: AtomicUsize,
    fail: bool,
}

fn unsupported() -> ClientError {
    ClientError::Transport("not a review".into())
}

#[async_trait::async_trait]
impl Client for Reviewer {
    async fn get(&self, _: &ApiResource, _: Option<&str>, _: &str) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn list(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &ListParams,
    ) -> Result<ObjectList<DynamicObject>> {
        Err(unsupported())
    }
    async fn create(
        &self,
        r: &ApiResource,
        _: Option<&str>,
        obj: &DynamicObject,
        _: &PostParams,
    ) -> Result<DynamicObject> {
        if self.fail {
            return Err(unsupported());
        }
        let spec = &obj.data["spec"];
        let mut out = obj.clone();
        let status = match &*r.kind {
            "TokenReview" => {
                self.token_reviews.fetch_add(1, Ordering::SeqCst);
                if spec["token"] == "good" {
                    json!({"authenticated": true, "user": {"username": "alice", "uid": "u-1",
                           "groups": ["devs", "system:authenticated"]}})
                } else {
                    json!({"authenticated": false, "error": "invalid bearer token"})
                }
            }
            "SubjectAccessReview" => {
                self.access_reviews.fetch_add(1, Ordering::SeqCst);
                let ra = &spec["resourceAttributes"];
                let masters = spec["groups"]
                    .as_array()
                    .is_some_and(|g| g.iter().any(|g| g == "system:masters"));
                let alice = spec["user"] == "alice"
                    && ra["verb"] == "get"
                    && ra["subresource"] == "stats"
                    && ra["resource"] == "nodes"
                    && ra["name"] == "n1";
                json!({"allowed": masters || alice})
            }
            _ => return Err(unsupported()),
        };
        out.data.insert("status".into(), status);
        Ok(out)
    }
    async fn update(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &DynamicObject,
        _: &PostParams,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn update_status(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &DynamicObject,
        _: &PostParams,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn patch(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &str,
        _: Option<&str>,
        _: &Patch,
        _: &PatchParams,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn delete(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &str,
        _: &DeleteParams,
    ) -> Result<DeleteOutcome> {
        Err(unsupported())
    }
    async fn create_subresource(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &str,
        _: &str,
        _: &DynamicObject,
    ) -> Result<DynamicObject> {
        Err(unsupported())
    }
    async fn watch(
        &self,
        _: &ApiResource,
        _: Option<&str>,
        _: &WatchParams,
    ) -> Result<WatchStream<DynamicObject>> {
        Err(unsupported())
    }
}

#[test]
fn verbs_follow_the_http_method() {
    let verb = |m: Method| attributes(&m, "/pods", "n1").verb;
    assert_eq!(verb(Method::GET), "get");
    assert_eq!(verb(Method::POST), "create");
    assert_eq!(verb(Method::PUT), "update");
    assert_eq!(verb(Method::PATCH), "patch");
    assert_eq!(verb(Method::DELETE), "delete");
    assert_eq!(verb(Method::HEAD), "");
    assert_eq!(verb(Method::OPTIONS), "");
}

#[test]
fn subresources_follow_the_path() {
    let sub = |p: &str| attributes(&Method::GET, p, "n1").subresource;
    for (path, want) in [
        ("/stats", "stats"),
        ("/stats/", "stats"),
        ("/stats/summary", "stats"),
        ("/statsx", "proxy"),
        ("/metrics", "metrics"),
        ("/metrics/cadvisor", "metrics"),
        ("/metricsfoo", "proxy"),
        ("/logs/", "log"),
        ("/logs/syslog", "log"),
        ("/spec/", "spec"),
        ("/checkpoint/default/p/c", "checkpoint"),
        ("/containerLogs/default/p/c", "proxy"),
        ("/exec/default/p/c", "proxy"),
        ("/attach/default/p/c", "proxy"),
        ("/portForward/default/p", "proxy"),
        ("/run/default/p/c", "proxy"),
        ("/pods", "proxy"),
        ("/healthz", "proxy"),
        ("/", "proxy"),
    ] {
        assert_eq!(sub(path), want, "{path}");
    }
    assert_eq!(attributes(&Method::GET, "/pods", "node-7").name, "node-7");
}

#[test]
fn the_access_review_names_the_user_and_the_node_subresource() {
    let user = User {
        name: "alice".into(),
        uid: "u-1".into(),
        groups: vec!["devs".into()],
        extra: BTreeMap::from([("scopes".to_string(), vec!["a".to_string()])]),
    };
    let sar = access_review(&user, &attributes(&Method::GET, "/logs/x", "n1"));
    assert_eq!(sar.types.kind, "SubjectAccessReview");
    assert_eq!(sar.types.api_version, "authorization.k8s.io/v1");
    assert_eq!(
        sar.data["spec"],
        json!({"user": "alice", "uid": "u-1", "groups": ["devs"], "extra": {"scopes": ["a"]},
               "resourceAttributes": {"verb": "get", "version": "v1", "resource": "nodes",
                                      "subresource": "log", "name": "n1"}})
    );
    let anon = access_review(&User::default(), &attributes(&Method::GET, "/", "n1"));
    assert!(anon.data["spec"].get("uid").is_none());
    assert!(anon.data["spec"].get("extra").is_none());
}

#[test]
fn certificate_users_are_authenticated() {
    let u = User::from_certificate(&ClientIdentity {
        common_name: "kube-apiserver-kubelet-client".into(),
        organizations: vec!["system:masters".into()],
    });
    assert_eq!(u.name, "kube-apiserver-kubelet-client");
    assert_eq!(u.groups, ["system:masters", "system:authenticated"]);
}

#[test]
fn bearer_tokens_are_read_as_upstream() {
    let h = |v: &str| {
        let mut m = HeaderMap::new();
        m.insert(
            axum::http::header::AUTHORIZATION,
            v.parse().expect("header"),
        );
        m
    };
    assert_eq!(bearer_token(&h("Bearer abc")), Some("abc"));
    assert_eq!(bearer_token(&h("bearer abc")), Some("abc"));
    assert_eq!(bearer_token(&h("Bearer abc extra")), Some("abc"));
    assert_eq!(bearer_token(&h("Bearer ")), None);
    assert_eq!(bearer_token(&h("Basic abc")), None);
    assert_eq!(bearer_token(&h("Bearer")), None);
    assert_eq!(bearer_token(&HeaderMap::new()), None);
}

#[test]
fn token_review_answers_become_users() {
    let answer = |status: Value| {
        let mut o = token_review("t");
        o.data.insert("status".into(), status);
        o
    };
    let u = reviewed_user(&answer(json!({"authenticated": true,
        "user": {"username": "system:serviceaccount:default:sa", "uid": "x",
                 "groups": ["system:serviceaccounts"], "extra": {"k": ["v"]}}})))
    .expect("user");
    assert_eq!(u.name, "system:serviceaccount:default:sa");
    assert_eq!(u.uid, "x");
    assert_eq!(u.groups, ["system:serviceaccounts", "system:authenticated"]);
    assert_eq!(u.extra["k"], ["v"]);
    assert_eq!(
        reviewed_user(&answer(json!({"authenticated": false, "error": "bad"}))),
        None
    );
    assert_eq!(reviewed_user(&token_review("t")), None);
}

#[test]
fn cached_entries_expire() {
    let mut c = TtlCache::new();
    let t0 = Instant::now();
    c.insert("k", true, t0, Duration::from_secs(30));
    assert_eq!(c.get(&"k", t0 + Duration::from_secs(29)), Some(true));
    assert_eq!(c.get(&"k", t0 + Duration::from_secs(30)), None);
    assert!(c.entries.is_empty());
    for i in 0..CACHE_CAPACITY {
        c.insert(
            if i % 2 == 0 { "a" } else { "b" },
            true,
            t0,
            Duration::from_secs(1),
        );
    }
    assert!(c.entries.len() <= 2);
}

#[tokio::test]
async fn decisions_and_tokens_are_cached() {
    let reviewer = Arc::new(Reviewer::default());
    let auth = KubeletAuth::new(reviewer.clone(), "n1");
    let mut headers = HeaderMap::new();
    headers.insert(
        axum::http::header::AUTHORIZATION,
        "Bearer good".parse().expect("header"),
    );
    for _ in 0..3 {
        let u = auth
            .authenticate(None, &headers)
            .await
            .expect("review")
            .expect("user");
        assert_eq!(u.name, "alice");
        let stats = attributes(&Method::GET, "/stats/summary", "n1");
        assert!(auth.authorize(&u, &stats).await.expect("review"));
        let exec = attributes(&Method::POST, "/exec/default/p/c", "n1");
        assert!(!auth.authorize(&u, &exec).await.expect("review"));
    }
    assert_eq!(reviewer.token_reviews.load(Ordering::SeqCst), 1);
    assert_eq!(reviewer.access_reviews.load(Ordering::SeqCst), 2);
}

async fn call(auth: Arc<KubeletAuth>, req: axum::http::Request<axum::body::Body>) -> (u16, String) {
    let router = axum::Router::new()
        .route("/stats/summary", axum::routing::get(|| async { "summary" }))
        .route(
            "/exec/{ns}/{pod}/{c}",
            axum::routing::post(|| async { "exec" }),
        )
        .layer(axum::middleware::from_fn_with_state(auth, middleware));
    let resp = tower::ServiceExt::oneshot(router, req)
        .await
        .expect("infallible");
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn request(method: &str, path: &str) -> axum::http::request::Builder {
    axum::http::Request::builder().method(method).uri(path)
}

#[tokio::test]
async fn the_middleware_answers_401_403_and_passes_allowed_requests() {
    let auth = Arc::new(KubeletAuth::new(Arc::new(Reviewer::default()), "n1"));
    let empty = axum::body::Body::empty;
    let anonymous = request("GET", "/stats/summary").body(empty()).expect("req");
    assert_eq!(
        call(auth.clone(), anonymous).await,
        (401, "Unauthorized\n".into())
    );
    let bad = request("GET", "/stats/summary")
        .header("authorization", "Bearer nope")
        .body(empty())
        .expect("req");
    assert_eq!(call(auth.clone(), bad).await.0, 401);
    let stats = request("GET", "/stats/summary")
        .header("authorization", "Bearer good")
        .body(empty())
        .expect("req");
    assert_eq!(call(auth.clone(), stats).await, (200, "summary".into()));
    let exec = request("POST", "/exec/default/p/c")
        .header("authorization", "Bearer good")
        .body(empty())
        .expect("req");
    assert_eq!(
        call(auth.clone(), exec).await,
        (
            403,
            "Forbidden (user=alice, verb=create, resource=nodes, subresource=proxy)\n".into()
        )
    );
    let mut apiserver = request("POST", "/exec/default/p/c")
        .body(empty())
        .expect("req");
    apiserver.extensions_mut().insert(ClientIdentity {
        common_name: "kube-apiserver-kubelet-client".into(),
        organizations: vec!["system:masters".into()],
    });
    assert_eq!(call(auth, apiserver).await, (200, "exec".into()));
}

#[tokio::test]
async fn a_failed_review_is_an_authorization_error() {
    let failing = Reviewer {
        fail: true,
        ..Reviewer::default()
    };
    let auth = Arc::new(KubeletAuth::new(Arc::new(failing), "n1"));
    let mut req = request("GET", "/stats/summary")
        .body(axum::body::Body::empty())
        .expect("req");
    req.extensions_mut().insert(ClientIdentity {
        common_name: "bob".into(),
        organizations: vec![],
    });
    assert_eq!(
        call(auth.clone(), req).await,
        (
            500,
            "Authorization error (user=bob, verb=get, resource=nodes, subresource=stats)\n".into()
        )
    );
    let token = request("GET", "/stats/summary")
        .header("authorization", "Bearer good")
        .body(axum::body::Body::empty())
        .expect("req");
    assert_eq!(call(auth, token).await.0, 401);
}
