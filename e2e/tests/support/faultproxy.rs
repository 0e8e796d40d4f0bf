//! A small fault-injecting HTTP/1.1 proxy in front of moto, so the RDS
//! provider's polling, backoff and recovery are tested against real HTTP
//! responses (moto itself is always `available`, applies modifications at
//! once and never throttles).
//!
//! Every request (an AWS query-protocol POST: `Action=...&...`) is logged;
//! [`Rule`]s, which the test adds and removes while the operator runs, can
//! rewrite `DescribeDBInstances` statuses, answer with an AWS error or a
//! 503 instead of forwarding, or hold a response (forward the call, then
//! never answer: the caller is killed meanwhile). `stop`/`start` make the
//! endpoint refuse connections and come back on the same port, with moto's
//! state intact: an outage as the operator sees it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// What a matching rule does.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Forward, then replace `<DBInstanceStatus>` in the response.
    Status(String),
    /// Answer 400 `Throttling` without forwarding.
    Throttle,
    /// Answer 503 with a non-AWS body without forwarding.
    Unavailable,
    /// Answer with this AWS error without forwarding.
    Error {
        http_status: u16,
        code: String,
        message: String,
    },
    /// Forward, signal [`FaultProxy::held`], and never answer.
    Hold,
    /// Forward, then replace each `(from, to)` text in the response: AWS
    /// behaviour moto lacks (pending modifications, values AWS fills in).
    Replace(Vec<(String, String)>),
}

/// A rule: which requests, what effect, how many times.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The `Action` parameter, e.g. `DescribeDBInstances`.
    pub action: String,
    /// Only requests naming this `DBInstanceIdentifier` (None: any).
    pub identifier: Option<String>,
    /// Only requests signed with this access key id (None: any).
    pub access_key: Option<String>,
    pub effect: Effect,
    /// How many matching requests it applies to (None: until removed).
    pub times: Option<u32>,
    /// Only once a request of this action went through: AWS's reaction to
    /// a call moto performs at once (a reboot reported as `rebooting`).
    pub after: Option<String>,
}

impl Rule {
    pub fn new(action: &str, effect: Effect) -> Self {
        Rule {
            action: action.to_string(),
            identifier: None,
            access_key: None,
            effect,
            times: None,
            after: None,
        }
    }

    pub fn after(mut self, action: &str) -> Self {
        self.after = Some(action.to_string());
        self
    }

    pub fn for_instance(mut self, id: &str) -> Self {
        self.identifier = Some(id.to_string());
        self
    }

    pub fn for_access_key(mut self, key: &str) -> Self {
        self.access_key = Some(key.to_string());
        self
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub at: Instant,
    pub action: String,
    /// The form parameters (a CreateDBInstance's MasterUserPassword too:
    /// this log lives only in the test's memory).
    pub params: BTreeMap<String, String>,
    /// The HTTP status returned (0 when held).
    pub status: u16,
    /// The rule's effect when one applied.
    pub injected: Option<String>,
}

#[derive(Default)]
struct State {
    rules: Vec<(u64, Rule)>,
    next_id: u64,
    log: Vec<Logged>,
    /// Every action requested so far (for [`Rule::after`]).
    seen: std::collections::HashSet<String>,
}

pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: put this in ProviderConfig.spec.endpoint.
    pub endpoint: String,
    addr: SocketAddr,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    held: Arc<Notify>,
    server: Mutex<Option<JoinHandle<()>>>,
}

/// A handle to remove a rule again.
#[derive(Clone, Copy, Debug)]
pub struct RuleId(u64);

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`
    /// (`http://127.0.0.1:PORT`, moto's endpoint).
    pub async fn start(upstream: &str) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the fault proxy: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let proxy = FaultProxy {
            endpoint: format!("http://{addr}"),
            addr,
            upstream,
            state: Arc::default(),
            held: Arc::new(Notify::new()),
            server: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let held = self.held.clone();
        let upstream = self.upstream;
        let task = tokio::spawn(async move {
            // Dropping this task (stop, Drop) aborts every connection.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((sock, _)) = accepted else { continue };
                        let (state, held) = (state.clone(), held.clone());
                        conns.spawn(async move {
                            let _ = handle(sock, upstream, state, held).await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Stops listening (connections are refused) and drops open connections.
    pub async fn stop(&self) {
        let task = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listens again on the same port.
    pub async fn start_again(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("fault proxy: rebinding {}: {e}; retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot rebind the fault proxy on {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn add(&self, rule: Rule) -> RuleId {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.next_id += 1;
        let id = s.next_id;
        s.rules.push((id, rule));
        RuleId(id)
    }

    pub fn remove(&self, id: RuleId) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.rules.retain(|(i, _)| *i != id.0);
    }

    pub fn clear_rules(&self) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rules
            .clear();
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log
            .clone()
    }

    /// Requests of `action` (for the instance `id`, when given).
    pub fn requests(&self, action: &str, id: Option<&str>) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.action == action)
            .filter(|l| {
                id.is_none_or(|id| {
                    l.params.get("DBInstanceIdentifier").map(String::as_str) == Some(id)
                })
            })
            .collect()
    }

    /// Waits until a [`Effect::Hold`] rule held a response.
    pub async fn held(&self, timeout: Duration) {
        tokio::time::timeout(timeout, self.held.notified())
            .await
            .unwrap_or_else(|_| panic!("no response was held within {timeout:?}"));
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(t) = self.server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

/// A parsed HTTP/1.1 message head and body.
struct Message {
    head: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one message: head, then a Content-Length or chunked body, or (for
/// a response on a closing connection) everything until EOF.
async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    until_eof: bool,
) -> std::io::Result<Message> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head_text = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head_text.split("\r\n");
    let head = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let msg = Message {
        head,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = msg
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        while body.len() < len {
            let n = r.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(len);
    } else if msg
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            if let Some(decoded) = dechunk(&body) {
                body = decoded;
                break;
            }
            let n = r.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if until_eof {
        r.read_to_end(&mut body).await?;
    }
    Ok(Message { body, ..msg })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The decoded body once `raw` holds a complete chunked body.
fn dechunk(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let line_end = i + find(&raw[i..], b"\r\n")?;
        let size_text = String::from_utf8_lossy(&raw[i..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let start = line_end + 2;
        if size == 0 {
            return Some(out);
        }
        if raw.len() < start + size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[start..start + size]);
        i = start + size + 2;
    }
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// `AKIA...` of `Authorization: AWS4-HMAC-SHA256 Credential=AKIA.../...`.
fn access_key(req: &Message) -> Option<String> {
    let auth = req.header("authorization")?;
    let cred = auth.split("Credential=").nth(1)?;
    Some(cred.split('/').next()?.to_string())
}

fn response(status: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn aws_error(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    );
    let reason = if status == 400 {
        "Bad Request"
    } else {
        "Error"
    };
    response(status, reason, "text/xml", body.as_bytes())
}

/// Replaces the text of every `<DBInstanceStatus>` element.
fn rewrite_status(body: &[u8], status: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    const OPEN: &str = "<DBInstanceStatus>";
    const CLOSE: &str = "</DBInstanceStatus>";
    while let Some(i) = rest.find(OPEN) {
        out.push_str(&rest[..i + OPEN.len()]);
        rest = &rest[i + OPEN.len()..];
        match rest.find(CLOSE) {
            Some(j) => {
                out.push_str(status);
                rest = &rest[j..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out.into_bytes()
}

async fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    held: Arc<Notify>,
) -> std::io::Result<()> {
    let req = read_message(&mut client, false).await?;
    let params = form(&req.body);
    let action = params.get("Action").cloned().unwrap_or_default();
    let key = access_key(&req);

    // The first matching rule applies (and is used up when counted).
    let effect = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let hit = s.rules.iter().position(|(_, r)| {
            r.action == action
                && r.identifier
                    .as_ref()
                    .is_none_or(|id| params.get("DBInstanceIdentifier") == Some(id))
                && r.access_key
                    .as_ref()
                    .is_none_or(|k| key.as_ref() == Some(k))
                && r.after.as_ref().is_none_or(|a| s.seen.contains(a))
        });
        s.seen.insert(action.clone());
        hit.map(|i| {
            let effect = s.rules[i].1.effect.clone();
            if let Some(n) = s.rules[i].1.times.as_mut() {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    s.rules.remove(i);
                }
            }
            effect
        })
    };
    let injected = effect.as_ref().map(|e| format!("{e:?}"));
    let log = |status: u16| {
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log
            .push(Logged {
                at: Instant::now(),
                action: action.clone(),
                params: params.clone(),
                status,
                injected: injected.clone(),
            });
    };

    let canned = match &effect {
        Some(Effect::Throttle) => Some(aws_error(400, "Throttling", "Rate exceeded")),
        Some(Effect::Unavailable) => Some(response(
            503,
            "Service Unavailable",
            "text/html",
            b"<html><body>503 Service Unavailable</body></html>",
        )),
        Some(Effect::Error {
            http_status,
            code,
            message,
        }) => Some(aws_error(*http_status, code, message)),
        _ => None,
    };
    if let Some(bytes) = canned {
        let status = std::str::from_utf8(&bytes[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        log(status);
        client.write_all(&bytes).await?;
        return client.shutdown().await;
    }

    // Forward, with the connection closed after one exchange.
    let mut up = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            log(502);
            let _ = client
                .write_all(&response(
                    502,
                    "Bad Gateway",
                    "text/plain",
                    e.to_string().as_bytes(),
                ))
                .await;
            return Ok(());
        }
    };
    let mut out = format!("{}\r\n", req.head).into_bytes();
    for (k, v) in &req.headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            req.body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&req.body);
    up.write_all(&out).await?;
    let resp = read_message(&mut up, true).await?;
    let status: u16 = resp
        .head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);

    match &effect {
        Some(Effect::Hold) => {
            log(0);
            held.notify_one();
            // The caller is killed meanwhile; the proxy's Drop ends this.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        other => {
            let body = match other {
                Some(Effect::Status(s)) if status == 200 => rewrite_status(&resp.body, s),
                Some(Effect::Replace(pairs)) if status == 200 => {
                    let mut text = String::from_utf8_lossy(&resp.body).into_owned();
                    for (from, to) in pairs {
                        text = text.replace(from.as_str(), to);
                    }
                    text.into_bytes()
                }
                _ => resp.body.clone(),
            };
            log(status);
            let reason = resp.head.splitn(3, ' ').nth(2).unwrap_or("OK").to_string();
            let content_type = resp
                .header("content-type")
                .unwrap_or("text/xml")
                .to_string();
            client
                .write_all(&response(status, &reason, &content_type, &body))
                .await?;
            client.shutdown().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_every_status() {
        let body = b"<a><DBInstanceStatus>available</DBInstanceStatus><x/><DBInstanceStatus>available</DBInstanceStatus></a>";
        let out = String::from_utf8(rewrite_status(body, "creating")).unwrap_or_default();
        assert_eq!(
            out,
            "<a><DBInstanceStatus>creating</DBInstanceStatus><x/><DBInstanceStatus>creating</DBInstanceStatus></a>"
        );
    }

    #[test]
    fn parses_forms_and_chunks() {
        let f = form(b"Action=CreateDBInstance&MasterUserPassword=a%2Bb+c&Tags.member.1.Key=team");
        assert_eq!(f["Action"], "CreateDBInstance");
        assert_eq!(f["MasterUserPassword"], "a+b c");
        assert_eq!(dechunk(b"3\r\nabc\r\n0\r\n\r\n"), Some(b"abc".to_vec()));
        assert_eq!(dechunk(b"3\r\nab"), None);
    }
}
