//! `phlo catalog serve`'s REST service on a real socket (127.0.0.1, a free port), on a runtime
//! and thread of its own: a minimal HTTP/1.1 front (one request per connection). With
//! `fail_commits` set, a table or transaction commit is applied and then answered 502, as a
//! proxy that loses the answer would; `commits` counts the commits received. `fail_reads`
//! GETs to come are answered 503 unserved, and `drop_reads` more have their connection closed
//! unanswered (each counts down to 0). With `hide_transactions` set, the server acts as one
//! without multi-table commits that does not list its endpoints: `/v1/config` has no
//! `endpoints` and `/transactions/commit` is a 404.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use phlo_core::rest::{Request, RestService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Server {
    pub uri: String,
    pub fail_commits: Arc<AtomicBool>,
    pub hide_transactions: Arc<AtomicBool>,
    pub commits: Arc<AtomicUsize>,
    pub fail_reads: Arc<AtomicUsize>,
    pub drop_reads: Arc<AtomicUsize>,
}

pub fn serve(service: RestService) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    let fail_commits = Arc::new(AtomicBool::new(false));
    let hide_transactions = Arc::new(AtomicBool::new(false));
    let flags = Flags {
        fail: fail_commits.clone(),
        hide: hide_transactions.clone(),
        commits: Arc::default(),
        fail_reads: Arc::default(),
        drop_reads: Arc::default(),
    };
    let (commits, fail_reads, drop_reads) = (
        flags.commits.clone(),
        flags.fail_reads.clone(),
        flags.drop_reads.clone(),
    );
    let service = Arc::new(service);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                tokio::spawn(answer(socket, service.clone(), flags.clone()));
            }
        });
    });
    Server {
        uri,
        fail_commits,
        hide_transactions,
        commits,
        fail_reads,
        drop_reads,
    }
}

#[derive(Clone)]
struct Flags {
    fail: Arc<AtomicBool>,
    hide: Arc<AtomicBool>,
    commits: Arc<AtomicUsize>,
    fail_reads: Arc<AtomicUsize>,
    drop_reads: Arc<AtomicUsize>,
}

/// Takes one from `counter` if it is above 0.
fn take(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

async fn answer(mut socket: TcpStream, service: Arc<RestService>, flags: Flags) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let (method, target) = (first.next().unwrap(), first.next().unwrap());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    while buffer.len() < head_end + length {
        let n = socket.read(&mut chunk).await.unwrap();
        buffer.extend_from_slice(&chunk[..n]);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: buffer[head_end..head_end + length].to_vec(),
    };
    let is_transaction = path.ends_with("/transactions/commit");
    let hide = flags.hide.load(Ordering::SeqCst);
    if hide && is_transaction {
        let body = br#"{"error": {"message": "no route", "type": "NotFound", "code": 404}}"#;
        return reply(socket, 404, body).await;
    }
    if method == "GET" && take(&flags.fail_reads) {
        let body = br#"{"error": {"message": "try later", "type": "Unavailable", "code": 503}}"#;
        return reply(socket, 503, body).await;
    }
    if method == "GET" && take(&flags.drop_reads) {
        return;
    }
    let mut response = service.handle(&request).await;
    if hide && path.ends_with("/v1/config") {
        let mut config: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        config.as_object_mut().unwrap().remove("endpoints");
        response.body = config.to_string().into_bytes();
    }
    let is_commit = method == "POST" && (path.contains("/tables/") || is_transaction);
    if is_commit {
        flags.commits.fetch_add(1, Ordering::SeqCst);
    }
    if is_commit && flags.fail.load(Ordering::SeqCst) {
        response.status = 502;
        response.body =
            br#"{"error": {"message": "bad gateway", "type": "BadGateway", "code": 502}}"#.to_vec();
    }
    reply(socket, response.status, &response.body).await;
}

async fn reply(mut socket: TcpStream, status: u16, body: &[u8]) {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    let _ = socket.write_all(&out).await;
    let _ = socket.shutdown().await;
}
