//! A mock API server for reconcile tests (controller-rs's ApiServerVerifier
//! idea over `tower_test::mock`): a scenario is the list of requests a pass
//! must make, in order, each with the answer it gets; anything else fails
//! the test with a transcript of what came.

use std::future::Future;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use crate::controller::claim::is_subset;

/// A test of a request body, for what a subset cannot say.
type BodyCheck = fn(&Value) -> bool;

/// One request a scenario expects, and the answer the API server gives.
pub struct Expect {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<&'static str>,
    bodies: Vec<Value>,
    absent: Vec<&'static str>,
    checks: Vec<(&'static str, BodyCheck)>,
    reply: Reply,
}

enum Reply {
    /// This object.
    Json(Value),
    /// A Kubernetes `Status` failure with this code.
    Fail(u16),
    /// The request body, with these fields merged in.
    Echo(Value),
}

fn expect(method: Method, path: &str) -> Expect {
    Expect {
        method,
        path: path.into(),
        query: Vec::new(),
        content_type: None,
        bodies: Vec::new(),
        absent: Vec::new(),
        checks: Vec::new(),
        reply: Reply::Echo(json!({})),
    }
}

/// A GET, answered 404 unless [`Expect::returns`] gives the object.
pub fn get(path: &str) -> Expect {
    expect(Method::GET, path).not_found()
}

/// A server-side apply as dbclaim's field manager, forced.
pub fn apply(path: &str) -> Expect {
    let mut e = expect(Method::PATCH, path)
        .query("fieldManager", "dbclaim")
        .query("force", "true");
    e.content_type = Some("application/apply-patch+yaml");
    e
}

/// A JSON merge patch.
pub fn merge_patch(path: &str) -> Expect {
    let mut e = expect(Method::PATCH, path);
    e.content_type = Some("application/merge-patch+json");
    e
}

/// A JSON patch (RFC 6902), as kube's finalizer helper sends.
pub fn json_patch(path: &str) -> Expect {
    let mut e = expect(Method::PATCH, path);
    e.content_type = Some("application/json-patch+json");
    e
}

pub fn create(path: &str) -> Expect {
    expect(Method::POST, path)
}

/// A DELETE, answered with a success `Status` unless told otherwise.
pub fn delete(path: &str) -> Expect {
    let mut e = expect(Method::DELETE, path);
    e.reply = Reply::Json(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
    );
    e
}

impl Expect {
    /// A query parameter the request must carry.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Fields the request body must hold (other fields may be there too);
    /// numbers compare by value, lists element by element.
    pub fn body(mut self, subset: Value) -> Self {
        self.bodies.push(subset);
        self
    }

    /// A JSON pointer the request body must not hold.
    pub fn lacks(mut self, pointer: &'static str) -> Self {
        self.absent.push(pointer);
        self
    }

    pub fn returns(mut self, object: impl serde::Serialize) -> Self {
        let value = serde_json::to_value(object).unwrap_or_else(|e| panic!("reply: {e}"));
        self.reply = Reply::Json(value);
        self
    }

    pub fn not_found(self) -> Self {
        self.fails(404)
    }

    /// Answers with a Kubernetes `Status` failure of this code.
    pub fn fails(mut self, code: u16) -> Self {
        self.reply = Reply::Fail(code);
        self
    }

    /// Answers with the request body plus these fields (the default, with none).
    pub fn echo_with(mut self, fields: Value) -> Self {
        self.reply = Reply::Echo(fields);
        self
    }

    /// A check on the request body that [`Expect::body`] cannot say.
    pub fn check(mut self, what: &'static str, check: BodyCheck) -> Self {
        self.checks.push((what, check));
        self
    }

    fn describe(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Why `request` is not this one, if it is not.
    fn mismatch(&self, request: &Seen) -> Option<String> {
        if request.method != self.method || request.path != self.path {
            return Some(format!("expected {}", self.describe()));
        }
        for (k, v) in &self.query {
            if !request.query.iter().any(|(qk, qv)| qk == k && qv == v) {
                return Some(format!("expected query {k}={v}"));
            }
        }
        if let Some(ct) = self.content_type
            && request.content_type.as_deref() != Some(ct)
        {
            return Some(format!("expected content type {ct}"));
        }
        if let Some(want) = self.bodies.iter().find(|w| !is_subset(w, &request.body)) {
            return Some(format!(
                "body lacks {}",
                serde_json::to_string_pretty(want).unwrap_or_default()
            ));
        }
        if let Some(p) = self
            .absent
            .iter()
            .find(|p| request.body.pointer(p).is_some())
        {
            return Some(format!("body must not hold {p}"));
        }
        if let Some((what, _)) = self.checks.iter().find(|(_, f)| !f(&request.body)) {
            return Some(format!("expected {what}"));
        }
        None
    }

    fn answer(&self, request: &Seen) -> Response<Body> {
        let (code, value) = match &self.reply {
            Reply::Json(v) => (200, v.clone()),
            Reply::Fail(code) => (*code, failure(*code)),
            Reply::Echo(fields) => {
                let mut v = request.body.clone();
                merge(&mut v, fields);
                (200, v)
            }
        };
        respond(code, &value)
    }
}

/// A request as the API server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Value,
}

impl Seen {
    fn describe(&self) -> String {
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let body = if self.body.is_null() {
            String::new()
        } else {
            format!("\n      body: {}", self.body)
        };
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        format!("{} {}{query}{body}", self.method, self.path)
    }

    fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

/// The requests a verified pass made, in order.
pub struct Transcript(pub Vec<Seen>);

impl Transcript {
    /// Requests that change something (anything but a GET).
    pub fn writes(&self) -> Vec<&Seen> {
        self.0.iter().filter(|s| s.is_write()).collect()
    }

    /// Requests that only read (GETs).
    pub fn reads(&self) -> Vec<&Seen> {
        self.0.iter().filter(|s| !s.is_write()).collect()
    }
}

/// Runs `pass` against a mock API server that expects exactly `script`, in
/// order, and answers it. Fails the test, with what was expected and what
/// came, on a request out of script or a scripted request that never came.
/// `pass` gets the client and must own every clone of it: the script is
/// complete when the last clone is dropped.
pub async fn verify<F, Fut>(script: Vec<Expect>, pass: F) -> (Fut::Output, Transcript)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future,
{
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(serve(script, handle));
    let output = pass(Client::new(service, "default")).await;
    let verdict = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap_or_else(|_| {
            panic!("the mock API server did not finish: a client clone outlived the pass")
        })
        .unwrap_or_else(|e| panic!("the mock API server panicked: {e}"));
    match verdict {
        Ok(seen) => (output, Transcript(seen)),
        Err(report) => panic!("API requests differ from the scenario:\n{report}"),
    }
}

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Answers the script; Err is a report of every request against it.
async fn serve(script: Vec<Expect>, mut handle: Handle) -> Result<Vec<Seen>, String> {
    let mut seen = Vec::new();
    let mut report = Vec::new();
    let mut failed = false;
    let mut script = script.into_iter();
    loop {
        let Some((request, respond_to)) = handle.next_request().await else {
            break;
        };
        let request = read(request).await;
        let line = if failed {
            respond_to.send_response(respond(500, &failure(500)));
            format!("  (after the failure) {}", request.describe())
        } else {
            match script.next() {
                None => {
                    failed = true;
                    respond_to.send_response(respond(500, &failure(500)));
                    format!("✗ unexpected {}", request.describe())
                }
                Some(e) => match e.mismatch(&request) {
                    None => {
                        respond_to.send_response(e.answer(&request));
                        format!("✓ {}", e.describe())
                    }
                    Some(why) => {
                        failed = true;
                        respond_to.send_response(respond(500, &failure(500)));
                        format!("✗ got {}\n      {why}", request.describe())
                    }
                },
            }
        };
        report.push(line);
        seen.push(request);
    }
    let missing: Vec<String> = script
        .map(|e| format!("✗ missing {}", e.describe()))
        .collect();
    if failed || !missing.is_empty() {
        report.extend(missing);
        return Err(report.join("\n"));
    }
    Ok(seen)
}

async fn read(request: Request<Body>) -> Seen {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect_bytes()
        .await
        .unwrap_or_else(|e| panic!("request body: {e}"));
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("request body is not JSON: {e}"))
    };
    let query = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect();
    Seen {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    }
}

fn respond(code: u16, value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string().into_bytes()));
    *response.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

fn failure(code: u16) -> Value {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        _ => "InternalError",
    };
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "reason": reason, "code": code, "message": format!("mock API server: {reason}")})
}

/// `fields` merged into `target`, objects recursively.
pub(super) fn merge(target: &mut Value, fields: &Value) {
    match (target, fields) {
        (Value::Object(t), Value::Object(f)) => {
            for (k, v) in f {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, f) => *t = f.clone(),
    }
}

/// A query value as sent, percent-decoded (label selectors are encoded).
fn decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}
