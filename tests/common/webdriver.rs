//! Just enough of the W3C WebDriver HTTP protocol, spoken with reqwest to a
//! `chromedriver` this test spawns, to drive headless Debian Chromium.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The key under which W3C WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Chromium on two shared cores can be slow to render.
pub const UI_WAIT: Duration = Duration::from_secs(30);

/// A chromedriver process (in its own process group) and one browser session.
pub struct Driver {
    child: Child,
    http: reqwest::Client,
    base: String,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Driver {
    /// Spawn chromedriver and open a headless session. Panics with an install hint when
    /// chromedriver or Chromium is missing: this test must not pass by skipping.
    pub async fn start() -> Self {
        for (bin, pkg) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install it with `apt-get install -y chromium chromium-driver` \
                 (the {pkg} package); .ci/run does this"
            );
        }
        let port = free_port();
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            0,
        )
        .spawn()
        .expect("spawn chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut d = Self {
            child,
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
            _profile: profile,
        };
        d.wait_for_status().await;
        d.new_session().await;
        d
    }

    async fn wait_for_status(&self) {
        let deadline = Instant::now() + UI_WAIT;
        loop {
            if let Ok(r) = self.http.get(format!("{}/status", self.base)).send().await
                && let Ok(v) = r.json_value().await
                && v["value"]["ready"] == json!(true)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn new_session(&mut self) {
        let dir = self._profile.path().display().to_string();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic",
                format!("--user-data-dir={dir}"),
            ]}
        }}});
        let v = self
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        let id = v["sessionId"].as_str().expect("a session id").to_owned();
        self.base = format!("{}/session/{id}", self.base);
    }

    /// One command; returns its `value`, panicking on a WebDriver error.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.map_err(|e| e.to_string())?;
        let ok = r.status().is_success();
        let v = r.json_value().await?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"]["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned())
        }
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Every element matching a CSS selector, now.
    pub async fn all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting up to [`UI_WAIT`] for it.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + UI_WAIT;
        loop {
            if let Some(e) = self.all(css).await.into_iter().next() {
                return e;
            }
            assert!(Instant::now() < deadline, "no element matches {css:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn type_into(&self, element: &str, text: &str) {
        let path = format!("/element/{element}/value");
        self.call(reqwest::Method::POST, &path, Some(json!({"text": text})))
            .await;
    }

    pub async fn click(&self, element: &str) {
        let path = format!("/element/{element}/click");
        self.call(reqwest::Method::POST, &path, Some(json!({})))
            .await;
    }

    /// The rendered text of an element ("" if it went stale while reading).
    pub async fn text(&self, element: &str) -> String {
        let path = format!("/element/{element}/text");
        self.try_call(reqwest::Method::GET, &path, None)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Wait until the first element matching `css` has non-empty text; returns it.
    pub async fn wait_text(&self, css: &str) -> String {
        let deadline = Instant::now() + UI_WAIT;
        loop {
            let e = self.find(css).await;
            let t = self.text(&e).await;
            if !t.trim().is_empty() {
                return t;
            }
            assert!(Instant::now() < deadline, "{css:?} stayed empty");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/url", None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Wait until the current page's URL starts with `prefix`; returns it.
    pub async fn wait_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + UI_WAIT;
        loop {
            let url = self.current_url().await;
            if url.starts_with(prefix) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "the page stayed at {url:?}, not {prefix}..."
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Run `script` as an async function body in the page; it calls
    /// `arguments[arguments.length - 1]` with its result, which is returned.
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// End the session (closes Chromium); the process group goes on drop.
    pub async fn quit(self) {
        let _ = self.try_call(reqwest::Method::DELETE, "", None).await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group this test created: chromedriver and the Chromium it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Response::json` needs reqwest's `json` feature; parse the text instead.
trait JsonValue {
    async fn json_value(self) -> Result<Value, String>;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Result<Value, String> {
        let text = self.text().await.map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    }
}
