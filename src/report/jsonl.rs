//! JSON Lines for `jq` and SIEM pipelines (schema `trailproof-jsonl/1`).
//!
//! One line per finding, written as soon as the engine has decided its chain (or the pass over
//! log files no digest names), then one summary line:
//!
//! - `{"type":"finding","chain":CHAIN|null,"subject":...,"kind":...,"verdict":...,"reason":...,
//!   "evidence":{...}?}`, `chain` as in the JSON report's `chains[].chain`, null for findings
//!   outside every chain; the finding fields as in the JSON report
//! - `{"type":"summary","schema":"trailproof-jsonl/1","tool","version","run","source","bucket",
//!   "range","totals","ledger","not_proven","exit_code"}`, fields as in the JSON report
//!   (`ledger`: every chain's hours added up)
//!
//! Lines come in the JSON report's order, whatever the thread count.

use std::io::{self, Write};

use serde::Serialize;

use super::audit::{Document, LedgerTotals, NotProven, RunInfo};
use super::{ChainInfo, RangeInfo, Totals};
use crate::core::finding::Finding;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Finding {
        chain: Option<&'a ChainInfo>,
        #[serde(flatten)]
        finding: &'a Finding,
    },
    Summary {
        schema: &'static str,
        tool: &'a str,
        version: &'a str,
        run: RunInfo,
        source: &'a str,
        bucket: &'a str,
        range: &'a RangeInfo,
        totals: &'a Totals,
        ledger: &'a LedgerTotals,
        not_proven: &'a [NotProven],
        exit_code: i64,
    },
}

fn line(out: &mut dyn Write, l: &Line<'_>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, l)?;
    writeln!(out)
}

/// The lines of one batch of findings, all of one chain (or of none).
pub fn write_findings(
    out: &mut dyn Write,
    chain: Option<&ChainInfo>,
    findings: &[Finding],
) -> io::Result<()> {
    for finding in findings {
        line(out, &Line::Finding { chain, finding })?;
    }
    Ok(())
}

/// The summary line; written last.
pub fn write_summary(out: &mut dyn Write, doc: &Document<'_>) -> io::Result<()> {
    line(
        out,
        &Line::Summary {
            schema: "trailproof-jsonl/1",
            tool: doc.tool,
            version: doc.version,
            run: doc.run,
            source: doc.source,
            bucket: doc.bucket,
            range: doc.range,
            totals: &doc.totals,
            ledger: &doc.ledger,
            not_proven: &doc.not_proven,
            exit_code: doc.exit_code,
        },
    )
}
