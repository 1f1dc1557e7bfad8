//! The HTML report in a real browser: headless Chromium (Debian package `chromium`) loads the
//! page of every committed case, runs its script without errors (the script adds
//! `#tp-ready` when it has wired the filters), and takes a screenshot. Never skipped: without
//! Chromium the test fails and says how to install it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs headless Chromium with a fresh profile and no network features.
fn chromium(profile: &Path, args: &[&str], page: &Path) -> std::process::Output {
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output();
    out.unwrap_or_else(|e| {
        panic!("cannot run {CHROMIUM} ({e}): install it with `apt-get install -y chromium`")
    })
}

fn html_of(case: &Path) -> (i32, String) {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trailproof"))
        .current_dir(case)
        .args(["verify", "bucket", "--format", "html"])
        .args(
            expected["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap()),
        )
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn html_reports_load_in_chromium_without_errors() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root().join("testdata/cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.json").exists())
        .collect();
    cases.sort();
    cases.push(root().join("testdata/sample"));
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let (code, html) = html_of(case);
        assert!(code == 0 || code == 1, "{name}: exit {code}");
        // Self-contained: nothing the browser would fetch.
        for external in ["src=", "href=", "http://", "https://", "@import", "url("] {
            let hits: Vec<&str> = html
                .match_indices(external)
                .map(|(i, _)| &html[i.saturating_sub(30)..(i + 60).min(html.len())])
                .filter(|ctx| !ctx.contains("xmlns=\"http://www.w3.org/2000/svg\""))
                .collect();
            assert!(hits.is_empty(), "{name}: external reference {hits:?}");
        }
        let page = tmp.path().join(format!("{name}.html"));
        std::fs::write(&page, &html).unwrap();
        let profile = tempfile::tempdir().unwrap();
        let dom = chromium(profile.path(), &["--dump-dom"], &page);
        let dom_text = String::from_utf8_lossy(&dom.stdout);
        let log = String::from_utf8_lossy(&dom.stderr);
        let rows = html.matches("<tr data-verdict=").count();
        assert!(
            dom_text.contains(&format!(
                "<p id=\"tp-ready\" hidden=\"\" data-rows=\"{rows}\">"
            )),
            "{name}: the page's script did not finish; browser log:\n{log}"
        );
        for line in log.lines() {
            assert!(
                !line.contains("CONSOLE")
                    && !line.contains("Uncaught")
                    && !line.contains("Refused"),
                "{name}: browser reported: {line}"
            );
        }
    }

    // A screenshot of the sample, for people to look at (and proof the page renders).
    let (_, html) = html_of(&root().join("testdata/sample"));
    let page = tmp.path().join("sample.html");
    std::fs::write(&page, html).unwrap();
    let shot = std::env::var_os("TRAILPROOF_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("sample.png"));
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1000",
        ],
        &page,
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}); browser log:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}
