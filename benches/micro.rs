//! Micro-benchmarks of the verification core (criterion):
//!
//! - `inflate_hash`: inflate + SHA-256 of one realistic log file, per deflate backend
//!   (miniz_oxide, zlib-rs, libdeflate; one-shot into a buffer of the trailer's size), and
//!   trailproof's own streaming `Inflater` as built (flate2 on the backend Cargo.toml selects);
//! - `sha256`: the hash alone, sha2 against ring, to know what share of the work it is;
//! - `rsa_verify`: one digest signature (string-to-sign + RSASSA-PKCS1-v1_5/SHA-256);
//! - `digest_parse`: one digest of 50 log files from its inflated bytes;
//! - `chain_walk`: one chain of 10,000 hourly digests, every signature and link checked;
//! - `records`: one log file's records read (`parse_records`: the envelope checked, each
//!   record's text and the fields `events` filters and sorts on), per inflated MB.
//!
//! Run: `cargo bench --no-default-features --bench micro` (add `-- inflate_hash` to pick groups
//! by regular expression). The inputs come
//! from the fixture generator, signed with the repository's test keys.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use jiff::SignedDuration;
use sha2::Digest as _;
use trailproof::core::chain::{walk, DigestCandidate, Range};
use trailproof::core::digest::ParsedDigest;
use trailproof::core::evidence::GenerationTime;
use trailproof::core::finding::Verdict;
use trailproof::core::gz::{Inflater, Limits};
use trailproof::core::keyfile::parse_key_file;
use trailproof::core::layout::{parse_key, CloudTrailKey};
use trailproof::core::records::{parse_records, RecordLimits};
use trailproof::core::sign::{verify_digest, KeySet, SigningTime};
use trailproof::core::types::{decode_lower_hex, S3Location};
use trailproof_testgen::{gunzip, Corpus, World};

const BUCKET: &str = "bench-bucket";

/// The stored bytes of the largest log file of a one-hour corpus.
fn log_file(records: u32) -> Vec<u8> {
    let corpus = World::new(BUCKET)
        .hours(1)
        .logs_per_hour(1)
        .records_per_log(records)
        .build();
    corpus
        .objects
        .iter()
        .filter(|(k, _)| k.contains("/CloudTrail/"))
        .map(|(_, o)| o.bytes.clone())
        .max_by_key(Vec::len)
        .expect("the corpus has a log file")
}

/// The deflate stream inside a gzip member from the generator (no optional header fields).
fn deflate_body(gz: &[u8]) -> &[u8] {
    assert_eq!(
        gz[3], 0,
        "the generator writes no optional gzip header fields"
    );
    &gz[10..gz.len() - 8]
}

fn trailer_size(gz: &[u8]) -> usize {
    u32::from_le_bytes(gz[gz.len() - 4..].try_into().expect("4 bytes")) as usize
}

fn inflate_hash(c: &mut Criterion) {
    let mut group = c.benchmark_group("inflate_hash");
    for records in [100, 2000] {
        let gz = log_file(records);
        let size = trailer_size(&gz);
        let mut out = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        let label = |name: &str| format!("{name}/{}KB", size / 1000);

        group.bench_function(label("trailproof_inflater"), |b| {
            b.iter(|| {
                let mut inflater = Inflater::new(Limits::LOG);
                for chunk in gz.chunks(256 * 1024) {
                    inflater.update(chunk);
                }
                let (outcome, _) = inflater.finish();
                assert!(outcome.problem.is_none());
                black_box(outcome.inflated_sha256)
            })
        });
        group.bench_function(label("miniz_oxide"), |b| {
            use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
            let body = deflate_body(&gz);
            b.iter(|| {
                let mut state = DecompressorOxide::new();
                let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
                let (status, _, n) = decompress(&mut state, body, &mut out, 0, flags);
                assert_eq!(n, size, "{status:?}");
                black_box(sha2::Sha256::digest(&out))
            })
        });
        group.bench_function(label("zlib_rs"), |b| {
            let config = zlib_rs::InflateConfig { window_bits: 31 };
            b.iter(|| {
                let (done, rc) = zlib_rs::decompress_slice(&mut out, &gz, config);
                assert_eq!((done.len(), rc), (size, zlib_rs::ReturnCode::Ok));
                black_box(sha2::Sha256::digest(&out))
            })
        });
        group.bench_function(label("libdeflate"), |b| {
            let mut d = libdeflater::Decompressor::new();
            b.iter(|| {
                let n = d.gzip_decompress(&gz, &mut out).expect("valid gzip");
                assert_eq!(n, size);
                black_box(sha2::Sha256::digest(&out))
            })
        });
    }
    group.finish();
}

fn sha256(c: &mut Criterion) {
    let data = gunzip(&log_file(2000)).expect("valid gzip");
    let mut group = c.benchmark_group("sha256");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("sha2", |b| {
        b.iter(|| black_box(sha2::Sha256::digest(&data)))
    });
    group.bench_function("ring", |b| {
        b.iter(|| black_box(ring::digest::digest(&ring::digest::SHA256, &data)))
    });
    group.finish();
}

/// Every digest of a corpus as the chain walker gets it, with the corpus's key set.
fn candidates(corpus: &Corpus) -> (Vec<DigestCandidate>, KeySet) {
    let keys = serde_json::to_vec(&corpus.public_keys_json()).expect("JSON");
    let keys = parse_key_file(&keys).expect("the generator's key file");
    let digests = corpus
        .objects
        .iter()
        .filter_map(|(text, object)| match parse_key(text) {
            Ok(CloudTrailKey::Digest(key)) => Some(DigestCandidate {
                location: S3Location::new(BUCKET, text.clone()),
                key,
                content: Ok(ParsedDigest::parse(&gunzip(&object.bytes).expect("gzip"))
                    .expect("the generator's digest")),
                signature: object
                    .metadata
                    .get("signature")
                    .and_then(|s| decode_lower_hex(s)),
                backfill_generated: GenerationTime::Unknown,
            }),
            _ => None,
        })
        .collect();
    (digests, keys)
}

fn range(corpus: &Corpus) -> Range {
    Range {
        start: corpus.start,
        end: corpus.end,
        start_requested: true,
        end_requested: true,
    }
}

fn digest_checks(c: &mut Criterion) {
    let corpus = World::new(BUCKET)
        .hours(2)
        .logs_per_hour(50)
        .records_per_log(1)
        .build();
    let (digests, keys) = candidates(&corpus);
    let digest = digests
        .iter()
        .find(|d| d.content.as_ref().is_ok_and(|p| p.log_files.len() == 50))
        .expect("a digest listing 50 log files");
    let parsed = digest.content.as_ref().expect("parsed");
    let raw = gunzip(&corpus.objects[&digest.location.key].bytes).expect("gzip");
    let signature = digest.signature.as_deref().expect("signed");

    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Elements(1));
    group.bench_function("rsa_verify", |b| {
        b.iter(|| {
            verify_digest(
                parsed,
                signature,
                &keys,
                SigningTime::digest_end(parsed.end),
            )
            .expect("valid signature")
        })
    });
    group.bench_function("parse_50_log_files", |b| {
        b.iter(|| ParsedDigest::parse(black_box(&raw)).expect("valid digest"))
    });
    group.finish();
}

fn chain_walk(c: &mut Criterion) {
    const DIGESTS: u32 = 10_000;
    let corpus = World::new(BUCKET)
        .hours(DIGESTS)
        .key_windows_extended_by(SignedDuration::from_hours(24 * 450))
        .logs_per_hour(1)
        .records_per_log(1)
        .build();
    let (digests, keys) = candidates(&corpus);
    assert_eq!(digests.len(), DIGESTS as usize);
    let chain = digests[0].key.chain();
    let range = range(&corpus);

    let mut group = c.benchmark_group("chain_walk");
    group.sample_size(10);
    group.throughput(Throughput::Elements(DIGESTS.into()));
    group.bench_function("10000_digests", |b| {
        b.iter_batched(
            || digests.clone(),
            |d| {
                let walked = walk(&chain, d, &keys, range);
                let findings = walked.digests.iter().flat_map(|w| &w.findings);
                assert!(findings.clone().all(|f| f.verdict == Verdict::Valid));
                assert_eq!(findings.count(), DIGESTS as usize);
                walked
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn records(c: &mut Criterion) {
    let log = gunzip(&log_file(1000)).expect("the generator gzips");
    let mut group = c.benchmark_group("records");
    group.throughput(Throughput::Bytes(log.len() as u64));
    group.bench_function("parse_records_1000", |b| {
        b.iter(|| {
            let records = parse_records(black_box(&log), RecordLimits::LOG).expect("well formed");
            black_box(records.len())
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    inflate_hash,
    sha256,
    digest_checks,
    chain_walk,
    records
);
criterion_main!(benches);
