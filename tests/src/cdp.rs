//! A small driver of headless Chromium over the DevTools protocol, for the browser test to
//! fill and send forms (with a file) as a person would. It talks over `--remote-debugging-pipe`
//! (JSON messages ended by NUL on file descriptors 3 and 4, set up by a shell), so it needs no
//! WebSocket client and no unsafe code.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

/// One page in a headless Chromium.
pub struct Browser {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    next_id: u64,
    /// The page's session (flattened, so its commands carry `sessionId`).
    session: String,
    /// Events read while waiting for an answer, kept for [`Browser::wait_event`].
    events: VecDeque<Value>,
}

impl Browser {
    /// Starts Chromium with a fresh profile and one page of `width` × `height` CSS pixels, as
    /// a phone (touch, mobile layout).
    pub fn launch(binary: &Path, profile: &Path, width: u32, height: u32) -> Browser {
        let mut child = Command::new("sh")
            .arg("-c")
            // Our stdin becomes Chromium's fd 3 (commands), our stdout its fd 4 (answers).
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
            .arg(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromium");
        let to = child.stdin.take().expect("chromium's command pipe");
        let from = BufReader::new(child.stdout.take().expect("chromium's answer pipe"));
        let mut browser = Browser {
            child,
            to,
            from,
            next_id: 0,
            session: String::new(),
            events: VecDeque::new(),
        };
        let target = browser.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser.call("Page.enable", json!({}));
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 2, "mobile": true}),
        );
        browser
    }

    /// Sends a command to the page and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("a command as JSON");
        bytes.push(0);
        self.to.write_all(&bytes).expect("writing to chromium");
        self.to.flush().expect("writing to chromium");
        loop {
            let answer = self.read();
            if answer["id"] == id {
                assert!(
                    answer.get("error").is_none(),
                    "chromium refused {method}: {answer}"
                );
                return answer["result"].clone();
            }
            if answer.get("method").is_some() {
                self.events.push_back(answer);
            }
        }
    }

    fn read(&mut self) -> Value {
        let mut bytes = Vec::new();
        let n = self
            .from
            .read_until(0, &mut bytes)
            .expect("reading from chromium");
        assert!(n > 0, "chromium closed its pipe");
        bytes.pop();
        serde_json::from_slice(&bytes).expect("chromium sends JSON")
    }

    /// Waits for the page's next event named `method` (events before it are dropped).
    pub fn wait_event(&mut self, method: &str) -> Value {
        while let Some(event) = self.events.pop_front() {
            if event["method"] == method && event["sessionId"] == self.session.as_str() {
                return event;
            }
        }
        loop {
            let event = self.read();
            if event["method"] == method && event["sessionId"] == self.session.as_str() {
                return event;
            }
        }
    }

    /// Opens `url` and waits until it has loaded (after any redirects).
    pub fn goto(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({"url": url}));
        self.wait_event("Page.loadEventFired");
    }

    /// Evaluates `expression` in the page and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Types `value` into the form field named `name` of the form matching `form`.
    pub fn fill(&mut self, form: &str, name: &str, value: &str) {
        let expression = format!(
            "document.querySelector({}).elements.namedItem({}).value = {}",
            json!(form),
            json!(name),
            json!(value)
        );
        self.eval(&expression);
    }

    /// Chooses `files` in the file input matching `selector`.
    pub fn choose_files(&mut self, selector: &str, files: &[&Path]) {
        let document = self.call("DOM.getDocument", json!({"depth": 0}));
        let node = self.call(
            "DOM.querySelector",
            json!({"nodeId": document["root"]["nodeId"], "selector": selector}),
        );
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.call(
            "DOM.setFileInputFiles",
            json!({"nodeId": node["nodeId"], "files": files}),
        );
    }

    /// Clicks the element matching `selector` (a submit button) and waits for the next page.
    pub fn click_and_wait(&mut self, selector: &str) {
        self.events.clear();
        self.eval(&format!(
            "document.querySelector({}).click()",
            json!(selector)
        ));
        self.wait_event("Page.loadEventFired");
    }

    /// The page's path and query.
    pub fn path(&mut self) -> String {
        self.eval("location.pathname + location.search")
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The page's HTML as the browser holds it.
    pub fn html(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Saves a PNG of what the page shows.
    pub fn screenshot(&mut self, file: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = shot["data"].as_str().expect("screenshot data");
        std::fs::write(file, decode_base64(data)).expect("writing a screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (with padding), as the protocol sends binary data.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for quad in text.as_bytes().chunks(4) {
        let digits: Vec<u8> = quad.iter().copied().filter(|&c| c != b'=').collect();
        let mut bits = 0u32;
        for (i, &c) in digits.iter().enumerate() {
            bits |= value(c) << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..digits.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::decode_base64("TWFu"), b"Man");
        assert_eq!(super::decode_base64("TWE="), b"Ma");
        assert_eq!(super::decode_base64("TQ=="), b"M");
    }
}
