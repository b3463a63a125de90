//! `Chromedriver` and `Browser`: real headless Chromium driven over WebDriver
//! (fantoccini), started by the test itself on a random port.
//!
//! Chromium and chromedriver come from Debian's `chromium` and
//! `chromium-driver` packages (`.ci/run` installs them); `CHROMEDRIVER` and
//! `CHROMIUM` name other binaries. When they are missing the test fails and
//! says how to install them: a browser test never skips silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::helpers::wait_until;

const INSTALL_HINT: &str =
    "install Debian's `chromium` and `chromium-driver` (apt-get install chromium chromium-driver; \
     .ci/run does this), or set CHROMEDRIVER / CHROMIUM to their paths";

/// A chromedriver process on its own port, killed when dropped.
pub struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    /// Starts chromedriver and waits until it answers.
    pub async fn start() -> anyhow::Result<Chromedriver> {
        let binary = find_program("CHROMEDRIVER", &["chromedriver"])
            .ok_or_else(|| anyhow!("chromedriver is not installed: {INSTALL_HINT}"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let status = format!("{}/status", driver.url);
        let up = wait_until(Duration::from_secs(20), || async {
            http.get(&status)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        if !up {
            bail!("chromedriver did not answer on {}", driver.url);
        }
        Ok(driver)
    }

    /// A new headless Chromium session with a window of `width` x `height`.
    pub async fn browser(
        &self,
        base_url: &str,
        width: u32,
        height: u32,
    ) -> anyhow::Result<Browser> {
        let chromium = find_program(
            "CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        )
        .ok_or_else(|| anyhow!("Chromium is not installed: {INSTALL_HINT}"))?;
        let options = json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}"), "--lang=en-US"],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .context("opening a Chromium session")?;
        Ok(Browser {
            client,
            base_url: base_url.to_owned(),
        })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// One browser session on the app under test.
pub struct Browser {
    pub client: Client,
    base_url: String,
}

/// How long a page may take to show what a step waits for.
pub const STEP: Duration = Duration::from_secs(10);

impl Browser {
    /// Opens `path` of the app.
    pub async fn open(&self, path: &str) -> anyhow::Result<()> {
        self.client
            .goto(&format!("{}{path}", self.base_url))
            .await?;
        Ok(())
    }

    /// Types `text` into the (emptied) field at `css`.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let field = self.visible(css).await?;
        field.clear().await?;
        field
            .send_keys(text)
            .await
            .with_context(|| format!("typing into {css}"))?;
        Ok(())
    }

    /// Clicks the element at `css` once it is there. The pages redraw parts
    /// of themselves as frames arrive, so an element found a moment ago may
    /// have been replaced: the click is retried on a fresh lookup until it lands.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.visible(css).await?;
        let last_error = std::cell::RefCell::new(None);
        let clicked = wait_until(STEP, || async {
            let outcome = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.click().await,
                Err(error) => Err(error),
            };
            let landed = outcome.is_ok();
            *last_error.borrow_mut() = outcome.err();
            landed
        })
        .await;
        match (clicked, last_error.into_inner()) {
            (true, _) => Ok(()),
            (false, Some(error)) => Err(error).with_context(|| format!("clicking {css}")),
            (false, None) => bail!("clicking {css} never landed"),
        }
    }

    /// The element at `css`, waiting for it to appear.
    pub async fn visible(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waiting for {css}"))
    }

    /// Waits up to `deadline` until the text of `css` satisfies `test`; returns it.
    pub async fn text_until(
        &self,
        css: &str,
        deadline: Duration,
        test: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let last = std::cell::RefCell::new(String::new());
        let found = wait_until(deadline, || async {
            let Ok(element) = self.client.find(Locator::Css(css)).await else {
                return false;
            };
            let text = element.text().await.unwrap_or_default();
            let passed = test(&text);
            *last.borrow_mut() = text;
            passed
        })
        .await;
        let last = last.into_inner();
        if found {
            Ok(last)
        } else {
            bail!("{css} never showed what was expected; it showed {last:?}")
        }
    }

    /// Signs in on the page already open.
    pub async fn sign_in(&self, username: &str, password: &str) -> anyhow::Result<()> {
        self.fill("#username", username).await?;
        self.fill("#password", password).await?;
        self.click("#sign-in-form button[type=submit]").await
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }
}
