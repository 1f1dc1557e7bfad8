//! `trailproof events`: the records written are exactly those of the log files the run proves,
//! each with its provenance, read back independently (gunzip + serde_json) from the corpus.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use trailproof_testgen::{gunzip, Corpus, World};

mod support;
use support::written;

const BUCKET: &str = "acme-cloudtrail-logs";

/// Two Regions, three hours of two log files each, so the sort has files to interleave.
fn world() -> World {
    World::new(BUCKET)
        .regions(&["us-east-1", "eu-west-1"])
        .hours(3)
        .logs_per_hour(2)
        .records_per_log(5)
        .seed(0xE7E7)
}

struct Run {
    code: i32,
    lines: Vec<Value>,
    stderr: String,
}

impl Run {
    fn ids(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| l["eventID"].as_str().unwrap().to_owned())
            .collect()
    }

    fn logs(&self) -> BTreeSet<String> {
        self.lines
            .iter()
            .map(|l| l["trailproof"]["log"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn iso(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `trailproof events bucket --public-keys public-keys.json` over the corpus's range, run in
/// the case's folder, stopped after 120 s (a hang fails the test, not the CI run); add
/// arguments and run it.
fn events_command(case: &Path, corpus: &Corpus) -> Command {
    let mut command = Command::new("timeout");
    command
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_trailproof"))
        .args(["events", "bucket", "--public-keys", "public-keys.json"])
        .args(["--start-time", &iso(corpus.start)])
        .args(["--end-time", &iso(corpus.end)])
        .current_dir(case);
    command
}

/// [`events_command`] plus ARGS, its lines read back. The sort's temporary folder is made under
/// TMPDIR and must be gone afterwards.
fn events(case: &Path, corpus: &Corpus, args: &[&str]) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let out = events_command(case, corpus)
        .env("TMPDIR", tmp.path())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    Run {
        code: out.status.code().unwrap_or(-1),
        lines,
        stderr,
    }
}

/// The records of a log file, read independently of trailproof.
fn records(corpus: &Corpus, key: &str) -> Vec<Value> {
    let raw = gunzip(&corpus.objects[key].bytes).unwrap();
    let doc: Value = serde_json::from_slice(&raw).unwrap();
    doc["Records"].as_array().unwrap().clone()
}

/// Every log key the corpus's digests list, with the digest that lists it.
fn listed_logs(corpus: &Corpus) -> BTreeMap<String, String> {
    corpus
        .digests()
        .iter()
        .flat_map(|d| d.logs.iter().map(move |l| (l.clone(), d.key.clone())))
        .collect()
}

/// The distinct eventIDs of these log files.
fn ids_of<'a>(corpus: &Corpus, keys: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    keys.flat_map(|k| records(corpus, k))
        .map(|r| r["eventID"].as_str().unwrap().to_owned())
        .collect()
}

fn uri(key: &str) -> String {
    format!("s3://{BUCKET}/{key}")
}

#[test]
fn a_clean_corpus_exports_every_record_once_sorted_with_provenance() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let run = events(&case, &corpus, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let listed = listed_logs(&corpus);
    assert!(listed.len() >= 12);
    let want = ids_of(&corpus, listed.keys());
    let got = run.ids();
    // One line per eventID, and every eventID of every log file.
    assert_eq!(got.len(), want.len(), "{}", run.stderr);
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    // The generator delivers some records twice: they were merged and counted.
    let total: usize = listed.keys().map(|k| records(&corpus, k).len()).sum();
    assert!(total > want.len(), "the corpus should hold duplicates");
    assert!(
        run.stderr.contains(&format!(
            "{} records written, {} duplicates removed, 0 log files left out",
            want.len(),
            total - want.len()
        )),
        "{}",
        run.stderr
    );

    // Sorted by (eventTime, eventID).
    let keys: Vec<(jiff::Timestamp, String)> = run
        .lines
        .iter()
        .map(|l| {
            (
                l["eventTime"].as_str().unwrap().parse().unwrap(),
                l["eventID"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]));

    // Each line is the original record plus the provenance of a file that holds it.
    let mut by_log: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for key in listed.keys() {
        by_log.insert(uri(key), records(&corpus, key));
    }
    for line in &run.lines {
        let mut record = line.clone();
        let p = record
            .as_object_mut()
            .unwrap()
            .remove("trailproof")
            .unwrap();
        let log = p["log"].as_str().unwrap();
        let key = log.strip_prefix(&format!("s3://{BUCKET}/")).unwrap();
        assert!(by_log[log].contains(&record), "{line}");
        assert_eq!(p["digest"].as_str().unwrap(), uri(&listed[key]));
        assert_eq!(p["verdict"], "valid");
        let inflated = gunzip(&corpus.objects[key].bytes).unwrap();
        assert_eq!(
            p["log_sha256"].as_str().unwrap(),
            trailproof_testgen::sha256_hex(&inflated)
        );
    }
}

#[test]
fn unsorted_output_has_the_same_records() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let sorted = events(&case, &corpus, &[]);
    let unsorted = events(&case, &corpus, &["--unsorted"]);
    assert_eq!(unsorted.code, 0, "{}", unsorted.stderr);
    let mut a = sorted.lines.clone();
    let mut b = unsorted.lines.clone();
    let key = |v: &Value| v.to_string();
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(a, b);
}

#[test]
fn a_sort_that_spills_gives_the_same_lines() {
    let corpus = world().records_per_log(12).build();
    let (_dir, case) = written(&corpus);
    let in_memory = events(&case, &corpus, &[]);
    // One record per run file: many runs, merged more than once past the fan-in.
    let spilled = events(&case, &corpus, &["--sort-memory", "1"]);
    assert_eq!(spilled.code, 0, "{}", spilled.stderr);
    assert!(in_memory.lines.len() > 64);
    assert_eq!(spilled.lines, in_memory.lines);
    assert_eq!(
        spilled.stderr.lines().last(),
        in_memory.stderr.lines().last()
    );
}

#[test]
fn a_tampered_log_file_gives_no_records() {
    let mut corpus = world().build();
    let listed = listed_logs(&corpus);
    let tampered = listed.keys().nth(3).unwrap().clone();
    let original = ids_of(&corpus, std::iter::once(&tampered));
    corpus.modify_log(&tampered).unwrap();
    let (_dir, case) = written(&corpus);
    let run = events(&case, &corpus, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.logs().contains(&uri(&tampered)));
    let got: BTreeSet<String> = run.ids().into_iter().collect();
    let want = ids_of(&corpus, listed.keys().filter(|k| **k != tampered));
    assert_eq!(got, want);
    assert!(got.is_disjoint(&original));
    assert!(
        run.stderr
            .contains("1 log files left out (log_hash_mismatch: 1)"),
        "{}",
        run.stderr
    );
}

/// The run proves the file (its digest lists its hash) but its records cannot be taken, so
/// the sort never has it: the report only counts valid files, and the export must still hear
/// of this one and count it left out, not pass over it in silence.
#[test]
fn a_proven_log_file_that_is_not_cloudtrail_records_is_counted_left_out() {
    let mut corpus = world().build();
    let listed = listed_logs(&corpus);
    let odd = listed.keys().nth(2).unwrap().clone();
    corpus.deliver_log(&odd, br#"{"Records": 5}"#).unwrap();
    let (_dir, case) = written(&corpus);
    let run = events(&case, &corpus, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("1 log files left out (records_malformed: 1)"),
        "{}",
        run.stderr
    );
    let got: BTreeSet<String> = run.ids().into_iter().collect();
    assert_eq!(got, ids_of(&corpus, listed.keys().filter(|k| **k != odd)));
}

#[test]
fn an_injected_log_file_is_left_out_unless_asked_for_and_then_says_not_verified() {
    let mut corpus = world().build();
    let listed = listed_logs(&corpus);
    let like = listed.keys().nth(2).unwrap().clone();
    let injected = corpus.inject_log(&like).unwrap();
    let injected_ids = ids_of(&corpus, std::iter::once(&injected));
    let (_dir, case) = written(&corpus);

    let run = events(&case, &corpus, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.logs().contains(&uri(&injected)));
    assert_eq!(
        run.ids().into_iter().collect::<BTreeSet<_>>(),
        ids_of(&corpus, listed.keys())
    );
    assert!(
        run.stderr.contains("(log_unreferenced: 1)"),
        "{}",
        run.stderr
    );

    let run = events(&case, &corpus, &["--include-unverified"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let from_injected: Vec<&Value> = run
        .lines
        .iter()
        .filter(|l| l["trailproof"]["log"] == uri(&injected))
        .collect();
    assert!(!from_injected.is_empty());
    for line in &from_injected {
        assert_eq!(line["trailproof"]["verdict"], "not_verified");
        assert!(line["trailproof"].get("digest").is_none());
    }
    let got: BTreeSet<String> = run.ids().into_iter().collect();
    assert!(injected_ids.is_subset(&got));
}

#[test]
fn a_copy_of_a_proven_record_in_an_injected_file_is_not_exported_by_default() {
    let mut corpus = world().build();
    let listed = listed_logs(&corpus);
    let source = listed.keys().nth(1).unwrap().clone();
    let injected = corpus.inject_log(&source).unwrap();
    // The injected file carries a genuine record of a proven file, altered: the same eventID,
    // another eventName.
    let mut copied = records(&corpus, &source)[0].clone();
    let id = copied["eventID"].as_str().unwrap().to_owned();
    copied["eventName"] = "DeleteTrail".into();
    let doc = serde_json::json!({ "Records": [copied] });
    let bytes = trailproof_testgen::gzip(doc.to_string().as_bytes());
    corpus.objects.get_mut(&injected).unwrap().bytes = bytes;
    if let Some(evidence) = corpus.evidence.as_mut() {
        let object = &corpus.objects[&injected];
        evidence.insert(
            injected.clone(),
            trailproof_testgen::EvidenceEntry::of(object),
        );
    }
    let (_dir, case) = written(&corpus);

    let run = events(&case, &corpus, &[]);
    let with_id: Vec<&Value> = run.lines.iter().filter(|l| l["eventID"] == id).collect();
    assert_eq!(with_id.len(), 1, "{}", run.stderr);
    assert_eq!(with_id[0]["trailproof"]["log"], uri(&source));
    assert_ne!(with_id[0]["eventName"], "DeleteTrail");
    assert!(!run.logs().contains(&uri(&injected)));

    // Asked for, the altered copy is written beside the proven record, marked not verified.
    let run = events(&case, &corpus, &["--include-unverified"]);
    let with_id: Vec<&Value> = run.lines.iter().filter(|l| l["eventID"] == id).collect();
    assert_eq!(with_id.len(), 2, "{}", run.stderr);
    let forged = with_id
        .iter()
        .find(|l| l["eventName"] == "DeleteTrail")
        .unwrap();
    assert_eq!(forged["trailproof"]["verdict"], "not_verified");
}

#[test]
fn event_name_keeps_exactly_those_records() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let listed = listed_logs(&corpus);
    let all: Vec<Value> = listed.keys().flat_map(|k| records(&corpus, k)).collect();
    let name = all[0]["eventName"].as_str().unwrap().to_owned();
    let want: BTreeSet<String> = all
        .iter()
        .filter(|r| r["eventName"] == name.as_str())
        .map(|r| r["eventID"].as_str().unwrap().to_owned())
        .collect();
    assert!(!want.is_empty());
    let run = events(&case, &corpus, &["--event-name", &name]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.lines.iter().all(|l| l["eventName"] == name.as_str()));
    assert_eq!(run.ids().into_iter().collect::<BTreeSet<_>>(), want);
}

#[test]
fn the_other_filters_keep_exactly_their_records() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let listed = listed_logs(&corpus);
    let all: Vec<Value> = listed.keys().flat_map(|k| records(&corpus, k)).collect();
    let ids = |keep: &dyn Fn(&Value) -> bool| -> BTreeSet<String> {
        all.iter()
            .filter(|r| keep(r))
            .map(|r| r["eventID"].as_str().unwrap().to_owned())
            .collect()
    };
    let source = all[0]["eventSource"].as_str().unwrap().to_owned();
    let arn = all
        .iter()
        .find_map(|r| r["userIdentity"]["arn"].as_str())
        .unwrap()
        .to_owned();
    let (arn_head, _) = arn.rsplit_once('/').unwrap();
    let arn_glob = format!("{arn_head}/*");
    let times: Vec<jiff::Timestamp> = all
        .iter()
        .map(|r| r["eventTime"].as_str().unwrap().parse().unwrap())
        .collect();
    let mid = times[times.len() / 2];
    let cases: Vec<(Vec<String>, BTreeSet<String>)> = vec![
        (
            vec!["--event-source".into(), source.clone()],
            ids(&|r| r["eventSource"] == source.as_str()),
        ),
        (
            vec!["--user-arn".into(), arn_glob.clone()],
            ids(&|r| {
                r["userIdentity"]["arn"]
                    .as_str()
                    .is_some_and(|a| a.starts_with(&format!("{arn_head}/")))
            }),
        ),
        (
            vec!["--errors-only".into()],
            ids(&|r| r.get("errorCode").is_some_and(|e| !e.is_null())),
        ),
        (
            vec!["--read-only".into(), "false".into()],
            ids(&|r| r["readOnly"] == false),
        ),
        (
            vec!["--event-time-from".into(), iso(mid)],
            ids(&|r| {
                r["eventTime"]
                    .as_str()
                    .unwrap()
                    .parse::<jiff::Timestamp>()
                    .unwrap()
                    >= mid
            }),
        ),
    ];
    for (args, want) in cases {
        assert!(!want.is_empty(), "{args:?} selects nothing in the corpus");
        let run = events(
            &case,
            &corpus,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert_eq!(
            run.ids().into_iter().collect::<BTreeSet<_>>(),
            want,
            "{args:?}"
        );
    }
}

/// Runs one of the checkers in tests/interop; its JSON summary.
fn interop(script: &str, args: &[&Path]) -> Value {
    let out = Command::new("python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/interop")
                .join(script),
        )
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 is required for this test and could not run: {e}"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{script}: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"))
}

/// A corpus with duplicates, a tampered file and an injected one, exported with the
/// unverified records too: rows with and without a digest, and files left out.
fn mixed_export(format: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let mut corpus = world().records_per_log(12).build();
    let listed = listed_logs(&corpus);
    let tampered = listed.keys().nth(3).unwrap().clone();
    corpus.modify_log(&tampered).unwrap();
    corpus.inject_log(listed.keys().nth(2).unwrap()).unwrap();
    let (dir, case) = written(&corpus);
    let jsonl = dir.path().join("events.jsonl");
    let other = dir.path().join(format!("events.{format}"));
    for (format, path) in [("jsonl", &jsonl), (format, &other)] {
        let path = path.to_str().unwrap();
        let run = events(
            &case,
            &corpus,
            &["--include-unverified", "--format", format, "--out", path],
        );
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.lines.is_empty(), "--out writes nothing to stdout");
        assert!(
            run.stderr.contains("(log_hash_mismatch: 1)"),
            "{}",
            run.stderr
        );
    }
    // Only the two outputs: no temporary file left beside them.
    let names: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "case".to_owned(),
            "events.jsonl".to_owned(),
            format!("events.{format}")
        ])
    );
    (dir, jsonl, other)
}

/// DuckDB, an independent reader, finds the rows of the JSONL in the Parquet file: same count,
/// same order, every column equal to its field, the same group-by on eventName.
#[test]
fn parquet_reads_back_in_duckdb_as_the_jsonl() {
    let (_dir, jsonl, parquet) = mixed_export("parquet");
    let got = interop("events_parquet.py", &[&parquet, &jsonl]);
    assert_eq!(got["difference"], Value::Null, "{got}");
    assert_eq!(got["parquet_rows"], got["jsonl_rows"]);
    assert!(got["parquet_rows"].as_u64().unwrap() > 100, "{got}");
    assert_eq!(got["parquet_groups"], got["jsonl_groups"]);
    assert!(got["parquet_groups"].as_array().unwrap().len() > 1, "{got}");
}

/// Every line passes Timesketch's importer rules and stands for the JSONL record at its place.
#[test]
fn timesketch_lines_pass_the_importers_rules() {
    let (_dir, jsonl, timesketch) = mixed_export("timesketch");
    let got = interop("events_timesketch.py", &[&timesketch, &jsonl]);
    assert_eq!(got["problem"], Value::Null, "{got}");
    assert!(got["lines"].as_u64().unwrap() > 100, "{got}");
}

/// Parquet has no standard output form: asked for without --out, the run stops before any work.
#[test]
fn parquet_without_out_is_refused() {
    let corpus = world().build();
    let (_dir, case) = written(&corpus);
    let run = events(&case, &corpus, &["--format", "parquet"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("add --out FILE.parquet"),
        "{}",
        run.stderr
    );
}

mod fused {
    //! The export taken while the run hashes (the default, sorted), with the report keeping or
    //! counting valid log files, against reading every proven file again after the run
    //! (`verified_records`): the same records, provenance and counts on every committed case,
    //! normal and adversarial, and at any thread count.

    use std::path::Path;

    use trailproof::engine::events::{verified_records, verify_and_export, ExportOptions};
    use trailproof::{LocalEvidence, NoObserver, PinnedKeys, Settings};

    fn settings(case: &Path) -> Settings {
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
        let args: Vec<&str> = expected["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let mut s = Settings::default();
        for pair in args.chunks(2) {
            let [flag, value] = pair else {
                panic!("{args:?}")
            };
            match *flag {
                "--start-time" => s.start = Some(value.parse().unwrap()),
                "--end-time" => s.end = Some(value.parse().unwrap()),
                "--s3-bucket" => s.bucket = Some((*value).to_owned()),
                "--head-signature" => {
                    let (key, hex) = value.rsplit_once('=').unwrap();
                    s.head_signatures
                        .insert(key.to_owned(), hex::decode(hex).unwrap());
                }
                "--public-keys" => {}
                other => panic!("unexpected flag {other}"),
            }
        }
        s
    }

    /// How the export is made.
    #[derive(Clone, Copy, Debug)]
    enum Way {
        /// Taken while the run hashes, the report keeping every valid log file's finding.
        Fused,
        /// Taken while the run hashes, the report counting valid log files (as the CLI runs).
        FusedCounted,
        /// Every proven file read again after the run.
        ReadAgain,
    }

    /// Every line (record with provenance) and the counts, or why the run failed.
    fn export(case: &Path, way: Way, include_unverified: bool) -> Result<String, String> {
        let keys = PinnedKeys::from_file(&case.join("public-keys.json")).unwrap();
        let evidence = LocalEvidence::open(&case.join("bucket")).unwrap();
        let options = ExportOptions {
            include_unverified,
            ..ExportOptions::default()
        };
        let settings = Settings {
            omit_valid_logs: matches!(way, Way::FusedCounted),
            ..settings(case)
        };
        let (report, mut records) = if !matches!(way, Way::ReadAgain) {
            verify_and_export(&evidence, &keys, &settings, options, None, &NoObserver)
                .map_err(|e| e.to_string())?
        } else {
            let report =
                trailproof::verify(&evidence, &keys, &settings).map_err(|e| e.to_string())?;
            let records = verified_records(&evidence, &report, options);
            (report, records)
        };
        let mut out = Vec::new();
        for r in &mut records {
            r.unwrap().write_jsonl(&mut out).unwrap();
        }
        let stats = records.stats();
        Ok(format!(
            "{}exit {} written {} duplicates {} conflicts {} left out {:?}",
            String::from_utf8(out).unwrap(),
            report.exit_code(),
            stats.written,
            stats.duplicates,
            stats.conflicts,
            stats.left_out.iter().collect::<Vec<_>>()
        ))
    }

    #[test]
    fn records_taken_while_hashing_equal_records_read_again_on_every_case() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut cases: Vec<_> = ["cases", "adversarial"]
            .iter()
            .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("expected.json").is_file())
            .collect();
        cases.sort();
        assert!(cases.len() > 80, "{}", cases.len());
        let mut with_records = 0;
        for case in &cases {
            for include_unverified in [false, true] {
                let fused = export(case, Way::Fused, include_unverified);
                let again = export(case, Way::ReadAgain, include_unverified);
                assert_eq!(fused, again, "{} ({include_unverified})", case.display());
                let counted = export(case, Way::FusedCounted, include_unverified);
                assert_eq!(
                    counted,
                    again,
                    "{} ({include_unverified}, counted)",
                    case.display()
                );
                if fused.as_ref().is_ok_and(|f| f.contains("\"trailproof\":")) {
                    with_records += 1;
                }
            }
        }
        assert!(with_records > 80, "{with_records}");
    }

    /// Unsorted, a copy delivered further from its first than the de-duplication window (or
    /// after too many records waited) is written again: never silently. With no window, or
    /// room for one record, the sample's copies escape, and the counts say so; with the
    /// default window none escape and nothing is counted.
    #[test]
    fn unsorted_copies_beyond_the_window_are_counted_never_silent() {
        use jiff::SignedDuration;
        use trailproof::engine::events::{ExportStats, Order};

        let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample");
        let keys = PinnedKeys::from_file(&case.join("public-keys.json")).unwrap();
        let evidence = LocalEvidence::open(&case.join("bucket")).unwrap();
        let report = trailproof::verify(&evidence, &keys, &settings(&case)).unwrap();
        let run = |order: Order| -> (usize, ExportStats) {
            let options = ExportOptions {
                order,
                ..ExportOptions::default()
            };
            let mut records = verified_records(&evidence, &report, options);
            let lines = (&mut records).collect::<Result<Vec<_>, _>>().unwrap().len();
            (lines, records.stats().clone())
        };
        let (exact, sorted) = run(Order::sorted());
        assert!(sorted.duplicates > 0, "{sorted:?}");
        let (lines, stats) = run(Order::unsorted());
        assert_eq!(lines, exact, "{stats:?}");
        assert_eq!((stats.released_early, stats.outside_window), (0, 0));
        for (what, window, max_pending, escape) in [
            ("no window", SignedDuration::ZERO, 1_000_000, true),
            // Copies next to each other in a file are still merged.
            (
                "room for one record",
                SignedDuration::from_hours(12),
                1,
                false,
            ),
        ] {
            let (lines, stats) = run(Order::Unsorted {
                window,
                max_pending,
            });
            assert_eq!(lines > exact, escape, "{what}: {stats:?}");
            assert!(
                stats.released_early + stats.outside_window > 0,
                "{what}: copies that may escape must be counted ({stats:?})"
            );
        }
    }

    /// The same records in the same order (copies merged in the same order), whatever the
    /// threads: the sample has duplicates across files and Regions.
    #[test]
    fn the_export_is_the_same_at_any_thread_count() {
        let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample");
        let runs: Vec<String> = [1, 2, 4]
            .iter()
            .map(|&n| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap();
                pool.install(|| export(&case, Way::FusedCounted, true))
                    .unwrap()
            })
            .collect();
        assert!(
            runs[0].contains("duplicates 52"),
            "{}",
            runs[0].lines().last().unwrap()
        );
        assert_eq!(runs[0], runs[1]);
        assert_eq!(runs[0], runs[2]);
    }
}

mod out {
    //! `--out` never writes over or into what the user gave, writes through what is not a
    //! regular file, and leaves nothing behind when it cannot finish.

    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::path::Path;
    use std::process::{Command, Stdio};

    use super::{events_command, world, written};

    fn run(case: &Path, corpus: &trailproof_testgen::Corpus, args: &[&str]) -> (i32, String) {
        let out = events_command(case, corpus).args(args).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (out.status.code().unwrap_or(-1), stderr)
    }

    /// Every file under `dir`, with its bytes.
    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut all = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    all.push((
                        p.display().to_string(),
                        std::fs::read(&p).unwrap_or_default(),
                    ));
                }
            }
        }
        all.sort();
        all
    }

    #[test]
    fn out_into_the_evidence_or_over_the_key_file_is_refused_and_nothing_changes() {
        let corpus = world().build();
        let (_dir, case) = written(&corpus);
        let log = corpus
            .objects
            .keys()
            .find(|k| k.contains("/CloudTrail/"))
            .unwrap()
            .clone();
        let before = snapshot(&case);
        let log_out = format!("bucket/{log}");
        let via_dots = format!("bucket/AWSLogs/../{log}");
        for out in [
            log_out.as_str(),
            via_dots.as_str(),
            "bucket/new-file.jsonl",
            "public-keys.json",
            "./public-keys.json",
        ] {
            let (code, stderr) = run(&case, &corpus, &["--out", out]);
            assert_eq!(code, 2, "{out}: {stderr}");
            assert!(
                stderr.contains("which is input to this run"),
                "{out}: {stderr}"
            );
            assert_eq!(snapshot(&case), before, "{out}");
        }
    }

    #[test]
    fn out_through_a_symlink_replaces_its_target_and_keeps_the_link_and_the_mode() {
        let corpus = world().build();
        let (dir, case) = written(&corpus);
        let target = dir.path().join("events.jsonl");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let (code, stderr) = run(&case, &corpus, &["--out", link.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let text = std::fs::read_to_string(&target).unwrap();
        assert!(text.lines().count() > 10 && text.contains("\"trailproof\":"));
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Nothing else beside them: the temporary file was renamed into place.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    /// A FIFO (like /dev/stdout or /dev/null) is written through, never replaced by a file.
    #[test]
    fn out_to_a_fifo_writes_through_it() {
        let corpus = world().build();
        let (dir, case) = written(&corpus);
        let fifo = dir.path().join("pipe");
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let reader = Command::new("cat")
            .arg(&fifo)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (code, stderr) = run(&case, &corpus, &["--out", fifo.to_str().unwrap()]);
        let got = reader.wait_with_output().unwrap();
        assert_eq!(code, 0, "{stderr}");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        assert!(String::from_utf8(got.stdout).unwrap().lines().count() > 10);
    }

    /// A run that cannot finish (here: the sort cannot spill) removes its unfinished output and
    /// leaves an existing file as it was.
    #[test]
    fn a_failed_run_leaves_the_old_output_and_no_temporary_file() {
        let corpus = world().records_per_log(12).build();
        let (dir, case) = written(&corpus);
        let out = dir.path().join("events.jsonl");
        std::fs::write(&out, "old").unwrap();
        let blocked = dir.path().join("not-a-folder");
        std::fs::write(&blocked, "").unwrap();
        let status = events_command(&case, &corpus)
            .env("TMPDIR", &blocked)
            .args(["--sort-memory", "1", "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(status.status.code(), Some(2));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "old");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    /// stderr that cannot be written (2>/dev/full) does not panic the run: the exit status
    /// still tells.
    #[test]
    fn an_unwritable_stderr_is_no_panic() {
        let corpus = world().build();
        let (_dir, case) = written(&corpus);
        let full = std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let status = events_command(&case, &corpus)
            .stdout(Stdio::null())
            .stderr(full)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0));
    }
}
