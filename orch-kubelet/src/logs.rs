//! Container logs: reading CRI-format log files with the `pods/log` options (`tailLines`,
//! `sinceSeconds`, `timestamps`, `limitBytes`, `follow`, `previous`) and serving them at
//! `GET /containerLogs/{namespace}/{pod}/{container}` (the path the API server proxies to).
//!
//! A CRI log line is `<RFC3339Nano> <stdout|stderr> <F|P> <content>`; `F` ends a line, `P` is a
//! partial line continued by the next record (upstream `pkg/kubelet/kuberuntime/logs`).

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jiff::Timestamp;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Query options of a log request (the `pods/log` parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogOptions {
    /// Keep streaming while the container runs.
    #[serde(default)]
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// The previous (terminated) instance.
    #[serde(default)]
    pub previous: bool,
    /// Prefix each line with its RFC 3339 timestamp.
    #[serde(default)]
    pub timestamps: bool,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<i64>,
}

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When it was logged.
    pub time: Timestamp,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// Content including the trailing newline for full lines.
    pub content: String,
}

/// Parses one CRI log record; `None` for a malformed line.
pub fn parse_line(line: &str) -> Option<LogLine> {
    let mut it = line.splitn(4, ' ');
    let time: Timestamp = it.next()?.parse().ok()?;
    let stream = it.next()?.to_string();
    let tag = it.next()?;
    let mut content = it.next().unwrap_or("").to_string();
    if tag == "F" {
        content.push('\n');
    }
    Some(LogLine {
        time,
        stream,
        content,
    })
}

/// Reads the records of `path` (and its rotated predecessor `path.1`).
pub fn read_lines(path: &Path) -> Vec<LogLine> {
    let mut out = vec![];
    let rotated = PathBuf::from(format!("{}.1", path.display()));
    for p in [rotated.as_path(), path] {
        if let Ok(text) = std::fs::read_to_string(p) {
            out.extend(text.lines().filter_map(parse_line));
        }
    }
    out
}

/// Applies `sinceSeconds`, `tailLines`, `timestamps` and `limitBytes`.
pub fn render(lines: &[LogLine], o: &LogOptions, now: Timestamp) -> Vec<u8> {
    let since = o
        .since_seconds
        .and_then(|s| now.checked_sub(jiff::SignedDuration::from_secs(s)).ok());
    let mut selected: Vec<&LogLine> = lines
        .iter()
        .filter(|l| since.is_none_or(|s| l.time >= s))
        .collect();
    if let Some(n) = o.tail_lines {
        let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
        let skip = selected.len().saturating_sub(n);
        selected.drain(..skip);
    }
    let mut out = Vec::new();
    for l in selected {
        if o.timestamps {
            out.extend_from_slice(l.time.to_string().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(l.content.as_bytes());
    }
    if let Some(limit) = o.limit_bytes {
        out.truncate(usize::try_from(limit.max(0)).unwrap_or(usize::MAX));
    }
    out
}

/// Why a log request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// No such pod on this node.
    #[error("pod \"{0}\" not found")]
    PodNotFound(String),
    /// No such container in the pod, or it has not started yet.
    #[error("container \"{container}\" in pod \"{pod}\" is waiting to start or does not exist")]
    ContainerNotFound {
        /// Pod.
        pod: String,
        /// Container.
        container: String,
    },
    /// `previous=true` but there is no terminated instance.
    #[error("previous terminated container \"{container}\" in pod \"{pod}\" not found")]
    NoPrevious {
        /// Pod.
        pod: String,
        /// Container.
        container: String,
    },
}

/// Where a container's log lives, and whether more can come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// The CRI log file (`None`: the runtime keeps no logs, e.g. sim).
    pub path: Option<PathBuf>,
    /// True while the container runs (follow keeps waiting).
    pub running: bool,
}

/// What the log server asks of the kubelet.
pub trait LogSource: Send + Sync + 'static {
    /// Resolves a container's log.
    fn log_target(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogTarget, LogError>;
    /// The current time.
    fn now(&self) -> Timestamp;
}

async fn container_logs(
    State(src): State<Arc<dyn LogSource>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    Query(o): Query<LogOptions>,
) -> Response {
    let target = match src.log_target(&ns, &pod, &container, o.previous) {
        Ok(t) => t,
        Err(e) => {
            let code = match e {
                LogError::PodNotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            return (code, e.to_string()).into_response();
        }
    };
    let lines = target.path.as_deref().map(read_lines).unwrap_or_default();
    let first = render(&lines, &o, src.now());
    if !o.follow || !target.running || o.limit_bytes.is_some_and(|l| first.len() as i64 >= l) {
        return first.into_response();
    }
    // Follow: send what is there, then new records until the container stops.
    let seen = lines.len();
    let state = (src, ns, pod, container, o, seen, Some(first), false);
    let stream = futures::stream::unfold(
        state,
        |(src, ns, pod, c, o, mut seen, first, done)| async move {
            if let Some(f) = first {
                return Some((
                    Ok::<_, std::io::Error>(f),
                    (src, ns, pod, c, o, seen, None, done),
                ));
            }
            if done {
                return None;
            }
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(t) = src.log_target(&ns, &pod, &c, false) else {
                    return None;
                };
                let lines = t.path.as_deref().map(read_lines).unwrap_or_default();
                if lines.len() < seen {
                    seen = 0; // rotated away
                }
                let opts = LogOptions {
                    timestamps: o.timestamps,
                    ..Default::default()
                };
                let chunk = render(&lines[seen..], &opts, src.now());
                seen = lines.len();
                let finished = !t.running;
                if !chunk.is_empty() || finished {
                    return Some((Ok(chunk), (src, ns, pod, c, o, seen, None, finished)));
                }
            }
        },
    );
    axum::body::Body::from_stream(stream).into_response()
}

/// The kubelet's HTTP router: `/containerLogs/...` and `/healthz`.
pub fn router(src: Arc<dyn LogSource>) -> Router {
    Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<LogLine> {
        let text = "2024-01-01T00:00:00Z stdout F one\n\
                    2024-01-01T00:00:10.5Z stderr F two\n\
                    garbage\n\
                    2024-01-01T00:00:20Z stdout P thr\n\
                    2024-01-01T00:00:20Z stdout F ee\n";
        text.lines().filter_map(parse_line).collect()
    }

    fn now() -> Timestamp {
        "2024-01-01T00:00:25Z".parse().unwrap()
    }

    #[test]
    fn options_filter_and_format() {
        let l = lines();
        let r = |o: LogOptions| String::from_utf8(render(&l, &o, now())).unwrap();
        assert_eq!(r(LogOptions::default()), "one\ntwo\nthree\n");
        assert_eq!(
            r(LogOptions {
                tail_lines: Some(1),
                ..Default::default()
            }),
            "ee\n"
        );
        assert_eq!(
            r(LogOptions {
                since_seconds: Some(15),
                ..Default::default()
            }),
            "two\nthree\n"
        );
        assert_eq!(
            r(LogOptions {
                limit_bytes: Some(6),
                ..Default::default()
            }),
            "one\ntw"
        );
        assert_eq!(
            r(LogOptions {
                timestamps: true,
                tail_lines: Some(3),
                ..Default::default()
            }),
            "2024-01-01T00:00:10.5Z two\n2024-01-01T00:00:20Z thr2024-01-01T00:00:20Z ee\n"
        );
    }

    #[test]
    fn query_string_names_match_the_api() {
        let o: LogOptions = serde_json::from_value(serde_json::json!({
            "follow": true, "tailLines": 5, "previous": true, "timestamps": true, "sinceSeconds": 3, "limitBytes": 9
        }))
        .unwrap();
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.limit_bytes, Some(9));
        assert!(o.follow && o.previous && o.timestamps);
    }
}
