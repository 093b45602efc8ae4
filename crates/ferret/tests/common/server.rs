//! A real `ferret serve` process on a free loopback port, and a small JSON-over-HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub struct Server {
    child: Child,
    client: Client,
    /// The rest of the server's stdout, line by line.
    lines: mpsc::Receiver<String>,
}

/// JSON over HTTP to a server at `url`.
#[derive(Clone)]
pub struct Client {
    pub url: String,
}

impl std::ops::Deref for Server {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Server {
    /// Starts `ferret serve --index DIR --addr 127.0.0.1:0 EXTRA…` and waits until it listens.
    pub fn start(index: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferret"))
            .args(["serve", "--index", super::s(index), "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting ferret serve");
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        out.read_line(&mut first)
            .expect("reading the server's first line");
        let url = first
            .trim()
            .rsplit(" on ")
            .next()
            .filter(|u| u.starts_with("http://"))
            .unwrap_or_else(|| panic!("ferret serve did not start: {first:?}"))
            .to_string();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Server {
            child,
            client: Client { url },
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process: its exit status and what it printed after
    /// starting.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(ok.success());
        let status = self.child.wait().expect("waiting for the server");
        let mut rest = String::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push_str(&line);
            rest.push('\n');
        }
        (status, rest)
    }
}

impl Client {
    pub fn get(&self, path: &str) -> (u16, Value) {
        json_response(agent().get(format!("{}{path}", self.url)).call())
    }

    pub fn get_text(&self, path: &str) -> (u16, String) {
        let r = agent()
            .get(format!("{}{path}", self.url))
            .call()
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.into_body().read_to_string().expect("body"))
    }

    /// Status, content type and body bytes (images).
    pub fn get_bytes(&self, path: &str) -> (u16, String, Vec<u8>) {
        let r = agent()
            .get(format!("{}{path}", self.url))
            .call()
            .expect("GET");
        let status = r.status().as_u16();
        let kind = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, kind, r.into_body().read_to_vec().expect("body"))
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, "application/json", &body.to_string(), None)
    }

    pub fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut req = agent()
            .post(format!("{}{path}", self.url))
            .header("Content-Type", content_type);
        if let Some(k) = key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        json_response(req.send(body))
    }

    pub fn delete(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut req = agent().delete(format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        json_response(req.call())
    }

    /// A request written byte for byte (no client-side path normalisation): the status code
    /// and the whole response.
    pub fn raw(&self, request_line: &str) -> (u16, String) {
        let addr = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).expect("connecting");
        write!(
            s,
            "{request_line}\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("writing");
        let mut response = String::new();
        s.read_to_string(&mut response).expect("reading");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {response:?}"));
        (status, response)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

fn json_response(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let r = r.expect("HTTP request");
    let status = r.status().as_u16();
    let text = r.into_body().read_to_string().expect("response body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("response ({status}) is not JSON ({e}): {text:?}"));
    (status, value)
}

/// The error code of an error response.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}
