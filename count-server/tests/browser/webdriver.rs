//! Headless Chromium driven over WebDriver: Debian's `chromium` and `chromium-driver`
//! (`/usr/bin/chromium`, `/usr/bin/chromedriver`; `CHROMIUM` and `CHROMEDRIVER`
//! name others). Without them the tests skip with the reason printed, except when
//! `CI` is set: there they must run, and fail saying what is missing.

#![allow(dead_code)] // the test and the bench use different parts

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// A chromedriver process and one browser session in it; both end when dropped.
pub(crate) struct Browser {
    client: Client,
    _driver: Driver,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The chromedriver process in a process group of its own, which the browsers it
/// starts join: dropping it (also when a test panics before closing its session)
/// kills the group, so no Chromium outlives the test.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A binary from `var`, else `default`; `None` when it is not there.
fn binary(var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.is_file().then_some(path)
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session in it.
    /// `None` (the reason printed) when they are not installed and `CI` is not set.
    ///
    /// # Panics
    ///
    /// When `CI` is set and either is missing, or when they are there but do not
    /// start.
    pub(crate) async fn start() -> Option<Browser> {
        let chromium = binary("CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            let reason = "the browser tests need Debian's chromium and chromium-driver \
                          (/usr/bin/chromium, /usr/bin/chromedriver; or set CHROMIUM and \
                          CHROMEDRIVER): apt-get install chromium chromium-driver";
            count_testcluster::skip(reason);
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            // The browser's own zone, which the page starts in: UTC, whatever the machine's.
            .env("TZ", "UTC")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let driver = Driver(driver);
        let profile =
            std::env::temp_dir().join(format!("count-browser-test-{}-{port}", std::process::id()));
        let capabilities: Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                    "--window-size=1400,1000",
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        }))
        .unwrap();
        // chromedriver accepts connections a little before it takes sessions: retry.
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => {
                    panic!("no Chromium session from chromedriver: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Some(Browser {
            client,
            _driver: driver,
            profile,
        })
    }

    /// Opens `url`.
    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("the page opens");
    }

    /// Runs `script` in the page (`return ...` gives its value).
    pub(crate) async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Clicks the element `css` selects, as a user would.
    pub(crate) async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Types `text` into the element `css` selects, after clearing it.
    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Waits until `condition` (a script expression) is true in the page, for at
    /// most `timeout`.
    ///
    /// # Panics
    ///
    /// When it is still false then, with `what` and the page's status.
    pub(crate) async fn wait_for(&self, condition: &str, what: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let script = format!("return !!({condition});");
        while self.js(&script, vec![]).await != json!(true) {
            if Instant::now() > deadline {
                let status = self
                    .js("return document.getElementById('status').textContent + ' / ' + document.getElementById('error-text').textContent", vec![])
                    .await;
                panic!("waited {timeout:?} for {what} ({condition}); the page says {status}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The page's console messages so far (each read once): `(level, message)`.
    pub(crate) async fn console(&self) -> Vec<(String, String)> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("chromedriver's browser log");
        log.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
                        (text("level"), text("message"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a screenshot as `name`.png under cargo's scratch directory for tests (never
    /// in the repository); its path.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session (chromedriver ends when dropped).
    pub(crate) async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// chromedriver's log command (not in W3C WebDriver): `POST /session/{id}/se/log`
/// with `{"type": "browser"}`, the console messages since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}
