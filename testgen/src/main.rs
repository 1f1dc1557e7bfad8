//! trailproof-testgen: writes synthetic CloudTrail bucket copies and their expected reports.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use trailproof_testgen::{
    adversarial_cases, all_cases, cloudwatch_events, write_cases, Attack, CloudWatchEvent, Corpus,
    LakeExport, World, ATTACKS,
};

#[derive(Parser)]
#[command(
    name = "trailproof-testgen",
    about = "Generate CloudTrail test buckets (logs, signed digest chains, keys) and the report trailproof must give"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write every committed scenario into DIR/SCENARIO/ (deterministic).
    Cases { dir: PathBuf },
    /// Write the adversarial corpus (hostile bytes, one expected verdict each) into DIR/CASE/.
    Adversarial { dir: PathBuf },
    /// Write one large realistic corpus (for benchmarks) into OUT.
    Corpus {
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of accounts.
        #[arg(long, default_value_t = 1)]
        accounts: usize,
        /// Number of Regions (us-east-1, eu-west-1, ap-northeast-1, then others).
        #[arg(long, default_value_t = 1)]
        regions: usize,
        #[arg(long, default_value_t = 24)]
        hours: u32,
        /// The first hour (RFC 3339; default 2026-01-01T00:00:00Z).
        #[arg(long)]
        start: Option<jiff::Timestamp>,
        #[arg(long, default_value_t = 10)]
        logs_per_hour: u32,
        #[arg(long, default_value_t = 100)]
        records_per_log: u32,
        /// Organization trail layout (AWSLogs/o-.../ACCT/...).
        #[arg(long)]
        org: bool,
        /// Key prefix before AWSLogs/.
        #[arg(long)]
        prefix: Option<String>,
        /// Leave out trailproof-evidence.json (a plain `aws s3 sync` copy).
        #[arg(long)]
        no_metadata: bool,
        #[arg(long, default_value = "trailproof-bench-bucket")]
        bucket: String,
        /// The trail came from this bucket: each chain's first digest links to a digest there.
        /// The verifier's report for that link is not specified; expected.json ignores it.
        #[arg(long)]
        moved_from_bucket: Option<String>,
    },
    /// Write a CloudTrail Lake query export (result_N.csv.gz + result_sign.json, signed with
    /// a test key) into DIR, and its public keys into DIR-keys.json.
    Lake {
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 3)]
        files: usize,
        #[arg(long, default_value_t = 100)]
        rows: usize,
        /// queryCompleteTime.
        #[arg(long, default_value = "2026-01-10T12:00:00Z")]
        complete: jiff::Timestamp,
    },
    /// Write what CloudTrail would deliver to a CloudWatch Logs group for the corpus in DIR:
    /// OUT/STREAM.json per stream, each the --log-events of `aws logs put-log-events`.
    Cloudwatch {
        dir: PathBuf,
        out: PathBuf,
        /// Seconds between an event's eventTime and its timestamp in the group.
        #[arg(long, default_value_t = 60)]
        delay: i64,
    },
    /// Apply one attack to a bucket copy on disk (DIR holds bucket/, expected.json,
    /// public-keys.json) and update its expected.json.
    Tamper {
        dir: PathBuf,
        attack: String,
        keys: Vec<String>,
    },
}

const REGIONS: &[&str] = &[
    "us-east-1",
    "eu-west-1",
    "ap-northeast-1",
    "us-west-2",
    "eu-central-1",
    "sa-east-1",
    "ap-southeast-2",
    "ca-central-1",
];

fn attack_help() -> String {
    let mut text = String::from("Attacks (KEY = object key inside the bucket):\n");
    for (usage, what) in ATTACKS {
        text.push_str(&format!("  {usage:<28} {what}\n"));
    }
    text
}

/// Writes the cases and prints one summary line each.
fn write_and_list(dir: &Path, cases: Vec<Corpus>) -> Result<(), String> {
    write_cases(dir, &cases)?;
    for corpus in &cases {
        let e = corpus.expected();
        println!(
            "{:<28} exit {} valid {}/{} findings {}",
            corpus.scenario,
            e.exit_code,
            e.valid.digests,
            e.valid.logs,
            e.findings.len()
        );
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Cases { dir } => write_and_list(&dir, all_cases()),
        Command::Adversarial { dir } => write_and_list(&dir, adversarial_cases()),
        Command::Corpus {
            out,
            seed,
            accounts,
            regions,
            hours,
            start,
            logs_per_hour,
            records_per_log,
            org,
            prefix,
            no_metadata,
            bucket,
            moved_from_bucket,
        } => {
            if regions == 0 || regions > REGIONS.len() {
                return Err(format!("--regions must be 1..={}", REGIONS.len()));
            }
            let account_ids: Vec<String> = (0..accounts as u64)
                .map(|i| format!("{:012}", 111_122_223_333 + i * 111_111_111))
                .collect();
            let account_refs: Vec<&str> = account_ids.iter().map(String::as_str).collect();
            let mut world = World::new(&bucket)
                .accounts(&account_refs)
                .regions(&REGIONS[..regions])
                .hours(hours)
                .logs_per_hour(logs_per_hour)
                .records_per_log(records_per_log)
                .seed(seed)
                .metadata(!no_metadata);
            if let Some(start) = start {
                world = world.start(start);
            }
            // The test keys' windows are AWS's 30 days: a longer corpus (benches/checkpoint.sh
            // signs 31 days) needs them longer.
            if hours > 24 * 20 {
                world =
                    world.key_windows_extended_by(jiff::SignedDuration::from_hours(hours.into()));
            }
            if org {
                world = world.org(&format!("o-{:010x}", seed % (1 << 40)));
            }
            if let Some(p) = &prefix {
                world = world.prefix(p);
            }
            if let Some(b) = &moved_from_bucket {
                world = world.moved_from_bucket(b);
            }
            let mut corpus = world.build();
            corpus.scenario = "corpus".into();
            corpus.description = format!(
                "Generated corpus: seed {seed}, {accounts} account(s), {regions} Region(s), \
                 {hours} h x {logs_per_hour} logs x {records_per_log} records{}",
                if moved_from_bucket.is_some() {
                    "; the links into the old bucket are not covered by these expectations"
                } else {
                    ""
                }
            );
            corpus.write(&out)?;
            let e = corpus.expected();
            println!(
                "{}: {} objects, valid {} digests / {} logs, {} findings",
                out.display(),
                corpus.objects.len(),
                e.valid.digests,
                e.valid.logs,
                e.findings.len()
            );
            Ok(())
        }
        Command::Lake {
            dir,
            seed,
            files,
            rows,
            complete,
        } => {
            let export = LakeExport::new(seed, files, rows, complete);
            export.write(&dir)?;
            let mut keys = dir.into_os_string();
            keys.push("-keys.json");
            let keys = PathBuf::from(keys);
            let json =
                serde_json::to_vec_pretty(&export.public_keys_json()).map_err(|e| e.to_string())?;
            std::fs::write(&keys, json).map_err(|e| format!("{}: {e}", keys.display()))?;
            println!(
                "{files} result files and result_sign.json; keys in {}",
                keys.display()
            );
            Ok(())
        }
        Command::Cloudwatch { dir, out, delay } => {
            let corpus = Corpus::load(&dir)?;
            let events = cloudwatch_events(&corpus, jiff::SignedDuration::from_secs(delay));
            let mut streams: std::collections::BTreeMap<&str, Vec<serde_json::Value>> =
                Default::default();
            let mut sorted: Vec<&CloudWatchEvent> = events.iter().collect();
            sorted.sort_by_key(|e| e.timestamp);
            for e in sorted {
                streams
                    .entry(&e.stream)
                    .or_default()
                    .push(serde_json::json!({"timestamp": e.timestamp, "message": e.message}));
            }
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            for (stream, batch) in &streams {
                let path = out.join(format!("{stream}.json"));
                let json = serde_json::to_vec(batch).map_err(|e| e.to_string())?;
                std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            println!(
                "{} events in {} streams, in {}/STREAM.json",
                events.len(),
                streams.len(),
                out.display()
            );
            Ok(())
        }
        Command::Tamper { dir, attack, keys } => {
            let parsed = Attack::parse(&attack, &keys)?;
            let mut corpus = Corpus::load(&dir)?;
            corpus.apply(&parsed)?;
            corpus.scenario = format!("{}+{attack}", corpus.scenario);
            corpus.write(&dir)?;
            eprintln!(
                "note: expectations for several attacks on one copy are the sum of each \
                 attack's findings; the verifier semantics may not define every combination"
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let matches = Cli::command()
        .mut_subcommand("tamper", |s| s.after_help(attack_help()))
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trailproof-testgen: {e}");
            ExitCode::FAILURE
        }
    }
}
