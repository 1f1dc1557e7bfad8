//! One self-contained HTML page for auditors: the result, a coverage timeline per chain (inline
//! SVG), the findings with filters (a little inline JavaScript), what the report does not prove,
//! and the manifest. No external assets: a Content-Security-Policy forbids the page to load any.
//!
//! Everything from the evidence (keys, reasons, details) is attacker-influenced and is escaped;
//! the script reads only `data-` attributes and never builds HTML from them. When the script has
//! wired the filters it adds `<p id="tp-ready">`, which the browser test looks for.

use std::fmt::Write as _;
use std::io::{self, Write};

use jiff::Timestamp;

use super::audit::{chain_label, ChainDoc, Document, Period};
use super::Tally;
use crate::core::finding::{Finding, Verdict};
use crate::core::layout::{parse_key, CloudTrailKey};
use crate::core::ledger::{Counts, HourState};
use crate::core::time::format_iso;

const VERIFIED: &str = "#2e7d32";
const VERIFIED_EMPTY: &str = "#81c784";
const GAP: &str = "#78909c";
const MISSING: &str = "#d32f2f";
const INVALID_HOURS: &str = "#6a1b9a";
const NOT_VERIFIED: &str = "#f9a825";
const INVALID: &str = "#6a1b9a";
const UNVERIFIED_ITEM: &str = "#ef6c00";

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "valid",
        Verdict::NotVerified => "not_verified",
        Verdict::Missing => "missing",
        Verdict::Invalid => "invalid",
    }
}

/// The kind's snake_case name, as in the JSON report.
fn kind_name(f: &Finding) -> String {
    serde_json::to_value(f.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Writes the page for `doc`. The page is built whole in memory, then written.
pub fn write(out: &mut dyn Write, doc: &Document<'_>) -> io::Result<()> {
    let mut h = String::new();
    page(&mut h, doc).map_err(io::Error::other)?;
    out.write_all(h.as_bytes())
}

fn page(h: &mut String, doc: &Document<'_>) -> std::fmt::Result {
    let ok = doc.exit_code == 0;
    write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trailproof report: {source}</title>
<style>{STYLE}</style></head><body>
<h1>CloudTrail integrity report</h1>
<p class="result {class}">{result}</p>
<table class="facts">
<tr><th>Source</th><td>{source}</td></tr>
<tr><th>Bucket</th><td>{bucket}</td></tr>
<tr><th>Range</th><td>{start} to {end}{derived}</td></tr>
<tr><th>Filters</th><td>{filters}</td></tr>
<tr><th>Run</th><td>{started} to {finished}, {tool} {version}</td></tr>
</table>
"#,
        source = esc(doc.source),
        class = if ok { "ok" } else { "bad" },
        result = if ok {
            "Every object in the range is valid"
        } else {
            "Integrity findings: not everything in the range is proven intact"
        },
        bucket = esc(doc.bucket),
        start = format_iso(doc.range.start),
        end = format_iso(doc.range.end),
        derived = if doc.range.derived_from_evidence {
            " (taken from the evidence)"
        } else {
            ""
        },
        filters = esc(&filters(doc)),
        started = format_iso(doc.run.started),
        finished = format_iso(doc.run.finished),
        tool = esc(doc.tool),
        version = esc(doc.version),
    )?;
    summary(h, doc)?;
    timeline(h, doc)?;
    findings(h, doc)?;
    not_proven(h, doc)?;
    keys_and_manifest(h, doc)?;
    writeln!(h, "<script>{SCRIPT}</script>\n</body></html>")
}

fn filters(doc: &Document<'_>) -> String {
    let f = doc.filters;
    let mut parts = Vec::new();
    for (name, list) in [
        ("accounts", &f.accounts),
        ("Regions", &f.regions),
        ("trails", &f.trails),
    ] {
        if !list.is_empty() {
            parts.push(format!("{name} {}", list.join(", ")));
        }
    }
    if parts.is_empty() {
        "none (everything found)".to_owned()
    } else {
        parts.join("; ")
    }
}

fn summary(h: &mut String, doc: &Document<'_>) -> std::fmt::Result {
    let row = |h: &mut String, name: &str, t: &Tally| {
        write!(
            h,
            "<tr><th>{name}</th><td>{}</td><td class=\"n-valid\">{}</td><td class=\"n-invalid\">{}</td><td class=\"n-nv\">{}</td></tr>",
            t.total(),
            t.valid,
            t.invalid,
            t.not_verified
        )
    };
    h.push_str("<h2>Summary</h2>\n<table class=\"grid\"><tr><th></th><th>checked</th><th>valid</th><th>invalid or missing</th><th>not verified</th></tr>");
    row(h, "Digest files", &doc.totals.digests)?;
    row(h, "Log files", &doc.totals.logs)?;
    h.push_str("</table>\n");
    if let Some(line) = doc.retention.describe() {
        writeln!(h, "<p>{}</p>", esc(&line))?;
    }
    h.push_str("<h2>Ledger</h2>\n<table class=\"grid\" id=\"ledger\"><tr><th>chain</th>");
    for state in HourState::ALL {
        write!(h, "<th>{}</th>", state.name())?;
    }
    h.push_str("<th>hours</th></tr>");
    let ledger_row = |h: &mut String, name: &str, counts: &Counts| {
        write!(h, "<tr><th>{}</th>", esc(name))?;
        for state in HourState::ALL {
            write!(
                h,
                "<td class=\"h-{}\">{}</td>",
                state.name(),
                counts.get(state)
            )?;
        }
        write!(h, "<td>{}</td></tr>", counts.total())
    };
    for c in &doc.chains {
        if let Some(l) = c.ledger {
            ledger_row(h, &chain_label(c.chain), &l.counts)?;
        }
    }
    ledger_row(h, "all chains", &doc.ledger.counts)?;
    writeln!(
        h,
        "</table>\n<p>{} chain{}; {} gap or coverage finding{}; {} item{} this report does not prove (below).</p>",
        doc.chains.len(),
        if doc.chains.len() == 1 { "" } else { "s" },
        doc.totals.coverage_findings,
        if doc.totals.coverage_findings == 1 { "" } else { "s" },
        doc.not_proven.len(),
        if doc.not_proven.len() == 1 { "" } else { "s" },
    )
}

/// Where an object sits in time: a log file's delivery time, a digest's end time.
fn object_time(bucket: &str, subject: &str) -> Option<Timestamp> {
    let key = subject
        .strip_prefix("s3://")?
        .strip_prefix(bucket)?
        .strip_prefix('/')?;
    match parse_key(key).ok()? {
        CloudTrailKey::Digest(d) => Some(d.end_time),
        CloudTrailKey::Log(l) => Some(l.time),
    }
}

struct Axis {
    start: Timestamp,
    span: f64,
    x0: f64,
    width: f64,
}

impl Axis {
    fn x(&self, t: Timestamp) -> f64 {
        let s = t.duration_since(self.start).as_secs_f64();
        self.x0 + (s / self.span).clamp(0.0, 1.0) * self.width
    }
}

const TICKS_HOURS: [i64; 11] = [1, 2, 3, 6, 12, 24, 48, 96, 168, 336, 720];

/// The coverage timeline: one SVG row per chain (and one for log files in no digest) on a
/// shared time axis, with hour ticks above and a legend below.
fn timeline(h: &mut String, doc: &Document<'_>) -> std::fmt::Result {
    h.push_str("<h2>Coverage timeline</h2>\n");
    let rows = doc.chains.len() + usize::from(!doc.unchained.is_empty());
    if rows == 0 {
        h.push_str("<p>No chains.</p>\n");
        return Ok(());
    }
    let (label_w, bar_w, row_h, top) = (290.0, 980.0, 30.0, 34.0);
    let axis = Axis {
        start: doc.range.start,
        span: doc
            .range
            .end
            .duration_since(doc.range.start)
            .as_secs_f64()
            .max(1.0),
        x0: label_w,
        width: bar_w,
    };
    let height = top + rows as f64 * row_h + 40.0;
    // Room on the right for the last tick's label.
    let total_w = label_w + bar_w + 50.0;
    writeln!(
        h,
        r#"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{height}" viewBox="0 0 {total_w} {height}" role="img" aria-label="coverage per chain">"#
    )?;
    ticks(h, doc, &axis, top, top + rows as f64 * row_h)?;
    for (i, c) in doc.chains.iter().enumerate() {
        chain_row(h, doc, &axis, c, top + i as f64 * row_h)?;
    }
    if !doc.unchained.is_empty() {
        let y = top + doc.chains.len() as f64 * row_h;
        writeln!(
            h,
            r##"<text x="4" y="{ty:.1}" class="lbl">log files in no digest</text><rect x="{x0}" y="{by:.1}" width="{bar_w}" height="16" fill="#eee"/>"##,
            ty = y + 17.0,
            by = y + 5.0,
            x0 = axis.x0,
        )?;
        markers(h, doc, &axis, doc.unchained, y)?;
    }
    legend(h, label_w, top + rows as f64 * row_h + 22.0)?;
    h.push_str("\n</svg>\n");
    Ok(())
}

/// Vertical lines from `top` to `bottom` at whole multiples of the smallest step that keeps
/// about a dozen labels on the range, each labelled with its time.
fn ticks(
    h: &mut String,
    doc: &Document<'_>,
    axis: &Axis,
    top: f64,
    bottom: f64,
) -> std::fmt::Result {
    let hours = axis.span / 3600.0;
    let step = TICKS_HOURS
        .iter()
        .copied()
        .find(|s| hours / (*s as f64) <= 12.0)
        .unwrap_or(720);
    let step_s = step * 3600;
    let first = (doc.range.start.as_second() + step_s - 1).div_euclid(step_s) * step_s;
    let mut t = first;
    while t <= doc.range.end.as_second() {
        if let Ok(ts) = Timestamp::from_second(t) {
            let x = axis.x(ts);
            writeln!(
                h,
                r##"<line x1="{x:.1}" y1="{top_line}" x2="{x:.1}" y2="{bottom}" stroke="#ccc"/><text x="{x:.1}" y="{label_y}" class="tick">{label}</text>"##,
                top_line = top - 6.0,
                label_y = top - 10.0,
                label = ts.strftime("%m-%d %H:%M"),
            )?;
        }
        t += step_s;
    }
    Ok(())
}

/// One chain's row at height `y`: its label, its hours coloured by state (a backfill chain:
/// its valid digests' windows), and markers for its objects that are not valid.
fn chain_row(
    h: &mut String,
    doc: &Document<'_>,
    axis: &Axis,
    c: &ChainDoc<'_>,
    y: f64,
) -> std::fmt::Result {
    writeln!(
        h,
        r##"<text x="4" y="{ty:.1}" class="lbl">{label}</text><rect x="{x0}" y="{by:.1}" width="{bar_w}" height="16" fill="#eee"/>"##,
        ty = y + 17.0,
        by = y + 5.0,
        x0 = axis.x0,
        bar_w = axis.width,
        label = esc(&chain_label(c.chain)),
    )?;
    match c.ledger {
        // The ledger's hours, so the picture counts what the text and JSON count.
        Some(ledger) => {
            for run in &ledger.runs {
                let p = Period {
                    from: run.from,
                    to: run.to,
                };
                let what = format!(
                    "{} hour{} {}",
                    run.hours,
                    if run.hours == 1 { "" } else { "s" },
                    run.state.name()
                );
                bar(h, axis, &p, y + 5.0, state_colour(run.state), &what)?;
            }
        }
        // Backfill digests cover late deliveries: only their windows are drawn.
        None => {
            for p in &c.coverage.verified {
                bar(h, axis, p, y + 5.0, VERIFIED, "verified")?;
            }
        }
    }
    markers(h, doc, axis, c.findings, y)
}

/// The colours of hour states and object markers, in a row at height `ly` from `lx`.
fn legend(h: &mut String, mut lx: f64, ly: f64) -> std::fmt::Result {
    for (colour, name, marker) in [
        (VERIFIED, "verified", false),
        (VERIFIED_EMPTY, "verified-empty", false),
        (GAP, "gap (logging off)", false),
        (MISSING, "missing", false),
        (INVALID_HOURS, "invalid", false),
        (NOT_VERIFIED, "not-verified", false),
        (INVALID, "invalid or missing object", true),
        (UNVERIFIED_ITEM, "object not verified", true),
    ] {
        if marker {
            write!(
                h,
                r#"<path d="M{a:.1} {b:.1} l6 12 h-12 z" fill="{colour}"/>"#,
                a = lx + 6.0,
                b = ly - 10.0
            )?;
        } else {
            write!(
                h,
                r#"<rect x="{lx}" y="{y:.1}" width="14" height="12" fill="{colour}"/>"#,
                y = ly - 10.0
            )?;
        }
        write!(
            h,
            r#"<text x="{x:.1}" y="{ly:.1}" class="leg">{name}</text>"#,
            x = lx + 18.0
        )?;
        lx += 40.0 + name.len() as f64 * 7.0;
    }
    Ok(())
}

fn state_colour(state: HourState) -> &'static str {
    match state {
        HourState::Verified => VERIFIED,
        HourState::VerifiedEmpty => VERIFIED_EMPTY,
        HourState::Gap => GAP,
        HourState::Missing => MISSING,
        HourState::Invalid => INVALID_HOURS,
        HourState::NotVerified => NOT_VERIFIED,
    }
}

fn bar(
    h: &mut String,
    axis: &Axis,
    p: &Period,
    y: f64,
    colour: &str,
    what: &str,
) -> std::fmt::Result {
    let (a, b) = (axis.x(p.from), axis.x(p.to));
    writeln!(
        h,
        r#"<rect x="{a:.1}" y="{y:.1}" width="{w:.1}" height="16" fill="{colour}"><title>{what}: {} to {}</title></rect>"#,
        format_iso(p.from),
        format_iso(p.to),
        // At least a sliver, so a short gap stays visible.
        w = (b - a).max(2.0),
    )
}

/// A triangle under the bar for each object that is not valid.
fn markers(
    h: &mut String,
    doc: &Document<'_>,
    axis: &Axis,
    findings: &[Finding],
    y: f64,
) -> std::fmt::Result {
    for f in findings
        .iter()
        .filter(|f| f.kind.judges_subject() && f.verdict != Verdict::Valid)
    {
        let Some(t) = object_time(doc.bucket, &f.subject) else {
            continue;
        };
        let colour = if f.verdict == Verdict::NotVerified {
            UNVERIFIED_ITEM
        } else {
            INVALID
        };
        writeln!(
            h,
            r#"<path d="M{x:.1} {my:.1} l6 10 h-12 z" fill="{colour}"><title>{kind}: {subject}: {reason}</title></path>"#,
            x = axis.x(t),
            my = y + 14.0,
            kind = esc(&kind_name(f)),
            subject = esc(&f.subject),
            reason = esc(&f.reason),
        )?;
    }
    Ok(())
}

fn findings(h: &mut String, doc: &Document<'_>) -> std::fmt::Result {
    let mut kinds: Vec<String> = doc.findings().map(|(_, f)| kind_name(f)).collect();
    kinds.sort();
    kinds.dedup();
    h.push_str(
        r#"<h2>Findings</h2>
<div class="filters"><label>Verdict <select id="f-verdict"><option value="problems">not valid</option><option value="">all</option><option value="invalid">invalid</option><option value="missing">missing</option><option value="not_verified">not verified</option><option value="valid">valid</option></select></label>
<label>Kind <select id="f-kind"><option value="">all</option>"#,
    );
    for k in &kinds {
        write!(h, r#"<option value="{k}">{k}</option>"#, k = esc(k))?;
    }
    h.push_str(
        r#"</select></label> <label>Text <input id="f-text" type="search" placeholder="key, account, reason"></label> <span id="f-count"></span></div>
<table class="grid" id="findings"><thead><tr><th>verdict</th><th>kind</th><th>chain</th><th>object</th><th>reason</th></tr></thead><tbody>
"#,
    );
    for (chain, f) in doc.findings() {
        let verdict = verdict_name(f.verdict);
        let chain = chain.map(chain_label).unwrap_or_else(|| "-".to_owned());
        let mut reason = esc(&f.reason);
        if let Some(d) = &f.evidence.detail {
            write!(reason, "<br><small>{}</small>", esc(d))?;
        }
        if let Some(v) = &f.versions {
            write!(
                reason,
                "<br><small>versions: {}</small>",
                esc(&v.describe())
            )?;
        }
        writeln!(
            h,
            "<tr data-verdict=\"{verdict}\" data-kind=\"{kind}\"><td class=\"v-{verdict}\">{verdict}</td><td>{kind}</td><td>{chain}</td><td class=\"obj\">{subject}</td><td>{reason}</td></tr>",
            kind = esc(&kind_name(f)),
            chain = esc(&chain),
            subject = esc(&f.subject),
        )?;
    }
    h.push_str("</tbody></table>\n<p id=\"f-none\" hidden>No finding matches the filters.</p>\n");
    Ok(())
}

fn not_proven(h: &mut String, doc: &Document<'_>) -> std::fmt::Result {
    h.push_str("<h2>What this report does not prove</h2>\n<table class=\"grid\"><thead><tr><th>what</th><th>chain</th><th>period</th><th>object</th><th>detail</th></tr></thead><tbody>\n");
    for n in &doc.not_proven {
        let what = serde_json::to_value(n.what)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let period = n
            .period
            .map(|p| format!("{} to {}", format_iso(p.from), format_iso(p.to)))
            .unwrap_or_default();
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"obj\">{}</td><td>{}</td></tr>",
            esc(&what),
            esc(n.chain.as_deref().unwrap_or("")),
            period,
            esc(n.subject.as_deref().unwrap_or("")),
            esc(&n.detail)
        )?;
    }
    h.push_str("</tbody></table>\n");
    Ok(())
}

fn keys_and_manifest(h: &mut String, doc: &Document<'_>) -> std::fmt::Result {
    h.push_str("<h2>Public keys</h2>\n<table class=\"grid\"><tr><th>fingerprint</th><th>valid from</th><th>valid to</th><th>from</th><th>digests verified</th></tr>\n");
    for k in &doc.keys {
        writeln!(
            h,
            "<tr><td class=\"obj\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k.key.fingerprint),
            format_iso(k.key.valid_from),
            format_iso(k.key.valid_to),
            esc(&k.key.origin),
            k.digests_verified
        )?;
    }
    writeln!(
        h,
        "</table>\n<details><summary>Manifest: {} checked objects (SHA-256 of the inflated content)</summary>\n<table class=\"grid\"><tr><th>object</th><th>SHA-256</th><th>verdict</th></tr>",
        doc.manifest.len()
    )?;
    for m in &doc.manifest {
        writeln!(
            h,
            "<tr><td class=\"obj\">{}</td><td class=\"obj\">{}</td><td class=\"v-{v}\">{v}</td></tr>",
            esc(&m.uri),
            esc(m.sha256.as_deref().unwrap_or("-")),
            v = verdict_name(m.verdict)
        )?;
    }
    h.push_str("</table></details>\n");
    Ok(())
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #ddd}\
.result{font-size:17px;font-weight:600;padding:8px 12px;border-radius:4px;display:inline-block}\
.result.ok{background:#e8f5e9;color:#1b5e20}.result.bad{background:#ffebee;color:#b71c1c}\
table{border-collapse:collapse}.facts th{text-align:left;padding:2px 12px 2px 0;color:#555}\
.grid th,.grid td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}\
.grid th{background:#f5f5f5}.obj{font-family:monospace;font-size:12px;word-break:break-all}\
.v-valid{color:#1b5e20}.v-invalid,.v-missing{color:#b71c1c;font-weight:600}.v-not_verified{color:#e65100;font-weight:600}\
.filters{margin:6px 0}.filters label{margin-right:12px}\
svg text{font:12px system-ui,sans-serif}svg .tick{font-size:11px;fill:#555;text-anchor:middle}svg .lbl{font-size:12px}";

const SCRIPT: &str = r#"(function(){
var rows=Array.prototype.slice.call(document.querySelectorAll('#findings tbody tr'));
var v=document.getElementById('f-verdict'),k=document.getElementById('f-kind'),t=document.getElementById('f-text');
var count=document.getElementById('f-count'),none=document.getElementById('f-none');
function apply(){
 var shown=0,q=t.value.toLowerCase();
 rows.forEach(function(r){
  var d=r.getAttribute('data-verdict');
  var ok=(v.value===''||(v.value==='problems'?d!=='valid':d===v.value))
   &&(k.value===''||r.getAttribute('data-kind')===k.value)
   &&(q===''||r.textContent.toLowerCase().indexOf(q)>=0);
  r.hidden=!ok; if(ok){shown++;}
 });
 count.textContent=shown+' of '+rows.length+' findings';
 none.hidden=shown>0;
}
[v,k].forEach(function(e){e.addEventListener('change',apply);});
t.addEventListener('input',apply);
apply();
var ready=document.createElement('p');
ready.id='tp-ready';ready.hidden=true;ready.setAttribute('data-rows',String(rows.length));
document.body.appendChild(ready);
})();"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_text_is_escaped() {
        assert_eq!(
            esc(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
