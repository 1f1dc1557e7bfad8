//! Findings: what was checked, and what came out. A failed check is a finding, never an error.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::custody::{Custody, VersionSearch};
use super::sign::SigningTime;
use super::types::{Fingerprint, Sha256};

/// The outcome for one subject, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The subject passed every check that applies to it: a digest whose signature verified
    /// and whose links hold, or a log file whose inflated bytes hash to the value a verified
    /// digest lists. Nothing to do.
    Valid,
    /// Nothing was shown wrong, and nothing was shown right: a key, a signature or the object
    /// itself was not available, or the finding is a note about coverage. Not a pass: find
    /// what was missing (the finding's reason says) and run again.
    NotVerified,
    /// The subject should exist and does not (a digest a verified link names, an object the
    /// acquisition recorded, a log file a verified digest lists). Deletion is the likely
    /// cause; counted with the invalid objects.
    Missing,
    /// The subject was checked and failed: its bytes, signature, place or name are not what
    /// CloudTrail delivered. Treat it as tampered until shown otherwise.
    Invalid,
}

/// What kind of object a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A CloudTrail digest file (under `CloudTrail-Digest/`), standard or backfill.
    Digest,
    /// A CloudTrail log file (under `CloudTrail/`), or a file in a log folder.
    Log,
    /// A CloudTrail Lake query's sign file (`result_sign.json`), which lists and signs the
    /// hashes of the query's result files (`trailproof verify-query-results`).
    QuerySign,
    /// A CloudTrail Lake query result file (`result_N.csv.gz`), or any other file in the
    /// query's export folder.
    QueryResult,
    /// An event of a CloudWatch Logs group, or a proven event looked for in one
    /// (`trailproof crosscheck cloudwatch`).
    CloudWatchEvent,
}

/// Every kind of finding. The verdict follows from the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// The digest's RSA signature verified with a CloudTrail public key valid at its time, it
    /// sits where its own `digestS3Bucket`/`digestS3Object` say it was delivered, and the next
    /// digest's `previousDigestHashValue` and `previousDigestSignature` (when there is one)
    /// match it. Its log list can be trusted. Nothing to do.
    DigestValid,
    /// A digest that should be here is not: a verified digest's `previousDigest*` link names it
    /// (same chain, inside the range), or the source's acquisition records list it and it has
    /// since gone from the copy. The subject is the missing digest's `s3://` location; for a
    /// link, `evidence.named_by` is the digest that names it. Deleted digests hide what their
    /// hours logged; an attacker removes them along with the log files. Look for the object
    /// (S3 versioning keeps a delivered version and a delete marker), and treat the hours it
    /// covered as unproven.
    DigestMissing,
    /// More than one digest in a row is gone: the newer digest's link names a missing digest,
    /// and that one's predecessor (which would follow this digest) is missing too. The AWS CLI
    /// reports such a run as one missing digest (aws-cli issue 7054). The subject is the
    /// surviving older digest, `evidence.from`/`to` the period nothing covers. It does not
    /// judge its subject, but counts as one missing digest. Same next steps as
    /// [`Kind::DigestMissing`], for the whole period.
    DigestSuccessorMissing,
    /// The digest's own `digestS3Bucket`/`digestS3Object` name another place than where it was
    /// read (`evidence.detail` says where). A genuine digest copied over another hour's or
    /// another trail's key to fill a hole, or a copy made with the wrong layout. The AWS CLI
    /// reports it the same way. Compare with the object at the place it names.
    DigestMoved,
    /// The digest is not gzip, not JSON, not the digest shape, or a field is malformed or uses
    /// an algorithm other than `SHA256withRSA`/`SHA-256` (`evidence.detail` says which); also a
    /// backfill digest whose S3 generation-time metadata is missing or unreadable. CloudTrail
    /// never writes such a file: it was edited, truncated or replaced. Its log files show as
    /// [`Kind::LogUnverifiable`] where its list could still be read. Get the object again from
    /// S3 to rule out a damaged copy.
    DigestFormat,
    /// The RSA signature does not verify over the digest's string to sign (end time, location,
    /// SHA-256 of its bytes, previous signature) with the key its fingerprint names, and no
    /// newer digest carries a signature that does. The digest's bytes or its signature
    /// metadata were changed after delivery. The AWS CLI says "signature verification failed"
    /// too. Nothing it lists can be trusted.
    DigestSignatureInvalid,
    /// No public key the run has carries the fingerprint the digest names
    /// (`evidence.fingerprint`), so its signature could not be checked. Either the key set is
    /// incomplete (a pinned key file that does not cover this region or period), or the digest
    /// was signed with a key CloudTrail never published, i.e. forged. Get the region's keys for
    /// the digest's time (`ListPublicKeys`) and run again; if the key still does not appear,
    /// treat the digest as forged.
    DigestKeyUnknown,
    /// The key the digest names is known, but its validity window does not contain the time
    /// the digest was signed (for a backfill digest, `evidence.signing_time` says which time
    /// was relied on). CloudTrail signs with a current key, so the digest was signed outside
    /// CloudTrail's schedule: a forgery with an old key, or backfill metadata rewritten. Treat
    /// it as invalid.
    DigestKeyNotValid,
    /// The digest's signature is not at hand: the evidence has no S3 metadata for it (a plain
    /// `aws s3 sync` copy drops it) and no newer digest carries it in `previousDigestSignature`.
    /// This is normal for the newest digest of each chain segment of a copy. Nothing is wrong
    /// with it, nothing is proven: capture the signature with a HeadObject (see
    /// `--head-signature`), or verify against S3 directly.
    DigestSignatureUnavailable,
    /// The next digest's `previousDigestHashValue` does not match this digest's SHA-256: the
    /// bytes here are not the ones CloudTrail chained (`evidence.expected_sha256` against
    /// `actual_sha256`, `named_by` the next digest). A digest replaced by another one, even one
    /// genuinely signed. The AWS CLI never checks this.
    DigestLinkHashMismatch,
    /// The next digest's `previousDigestSignature` differs from this digest's own signature
    /// (its S3 metadata): the signature metadata was rewritten, or the object swapped for
    /// another. The AWS CLI never checks this. Trust the signature the next digest carries;
    /// find out who rewrote the object.
    DigestLinkSignatureMismatch,
    /// A verified digest's `previousDigest*` link names something that is not an older digest
    /// of the same chain (another account, region or trail, a later time, or not a digest key;
    /// `evidence.detail` says where). CloudTrail never writes such a link, so the chain was
    /// spliced. Examine both digests.
    DigestLinkOutsideChain,
    /// A verified digest's link names its predecessor in another bucket, outside this
    /// evidence: the trail was moved to this bucket (`previousDigestS3Bucket` names the old
    /// one). The subject is the linked digest's location. A note on the chain that judges
    /// nothing; to close the chain, verify the old bucket for the time before.
    DigestLinkOtherBucket,
    /// No digest of the chain links to this one, though the next one is there and has a link:
    /// the link skips it (to another present digest, to itself, to another chain or bucket,
    /// or to something older). A digest placed into the chain that CloudTrail did not chain
    /// there, e.g. one copied in from another period. Compare its content with its neighbours'.
    DigestUnlinked,
    /// The source could not read the digest (I/O error, permissions; `evidence.detail`), or its
    /// content changed between the read that verified it and the one that lists its log files
    /// (those then show as [`Kind::LogUnreferenced`]). Nothing was judged; the run ends with
    /// exit status 2. Fix access, or make a stable copy, and run again.
    DigestUnreadable,
    /// A verified digest starts a new chain (all `previousDigest*` null) after the previous
    /// digest's end: CloudTrail signed that it delivered nothing in between, because logging
    /// was stopped or log file validation was off (`evidence.from`/`to`). The AWS CLI prints
    /// the same line and does not count it invalid. Attackers stop logging to act unseen:
    /// look for `StopLogging`, `UpdateTrail` or `DeleteTrail` calls around the gap.
    ChainGap,
    /// The start of the range is not covered by a verified digest of this chain: the chain
    /// starts later (CloudTrail signed a chain start), its first digest could not be verified,
    /// or the digests that covered the start are gone. The subject is the digest where
    /// coverage begins, `evidence.from`/`to` the uncovered period. Widen the range or look for
    /// the digests before.
    CoverageStart,
    /// The end of the range is not covered: the chain's newest digest ends before it. Usual
    /// when the range reaches into the last hour or two (CloudTrail delivers digests about an
    /// hour late) or the trail stopped; otherwise the newest digests may have been deleted,
    /// which a chain cannot show by itself. Run again later, or check that the trail is still
    /// logging.
    CoverageEnd,
    /// A stretch inside the range that no digest accounts for and no other finding names: the
    /// digests that covered it are gone, or the next one could not be verified (also: backfill
    /// digests of a trail left with no standard digest at all). `evidence.from`/`to` give the
    /// stretch. Look for the digests of that period; its log files are unproven.
    CoverageHole,
    /// The log file's inflated bytes hash to the SHA-256 a verified digest lists for it, and
    /// it is one well-formed gzip stream. Nothing to do.
    LogValid,
    /// A verified digest lists the log file and it is not in the evidence. Deleted after
    /// delivery (the events it held are lost), or left out of the copy. Check S3 (and its
    /// object versions) for it.
    LogMissing,
    /// The log file's inflated bytes do not hash to the value its verified digest lists
    /// (`evidence.expected_sha256` against `actual_sha256`): its records were edited, added or
    /// removed after delivery. The AWS CLI says "hash value doesn't match" too. Its content is
    /// not CloudTrail's; compare with another copy or S3 object versions.
    LogHashMismatch,
    /// The log file is not a gzip stream (empty, not gzip, corrupt deflate data or a CRC or
    /// length mismatch), or it is not a regular file at all (a FIFO, a device; not
    /// read). `evidence.detail` says which. CloudTrail never delivers such a file: it was
    /// replaced or damaged. Get it again.
    LogFormat,
    /// The log file's gzip stream ends early (no complete trailer). Damaged in transfer or cut
    /// on purpose; the AWS CLI v1 lets this pass. Get it again from S3.
    LogTruncated,
    /// Bytes follow the end of the log file's gzip stream (a second gzip member included). The
    /// digest's hash covers only the first member, so anything appended is vouched for by
    /// nobody, yet a reader that inflates every member sees it as more records. Newer AWS CLIs
    /// report the same. Keep the file as it is: the appended bytes are the evidence.
    LogTrailingData,
    /// Inflating the log file went over the fixed size or ratio budget
    /// ([`Limits::LOG`](super::gz::Limits::LOG); `evidence.detail` says where it stopped): a
    /// gzip bomb, which CloudTrail does not deliver, or an unusually large file. Not verified;
    /// look at the file's size before inflating it with another tool.
    LogBudgetExceeded,
    /// A digest that could not be verified (unreadable, malformed, signature unknown or bad)
    /// lists the log file, so its hash cannot be trusted and was not checked. Resolve the
    /// digest's finding (`evidence.named_by`) first.
    LogUnverifiable,
    /// A log file delivered inside the range that no digest lists: injected, delivered while
    /// log file validation was off, or inside a hole whose digests are gone (the reason says
    /// which). The AWS CLI never reports these. Anything reading the whole prefix (a SIEM)
    /// ingests it: check its records against other sources.
    LogUnreferenced,
    /// A verified digest lists the log file in a bucket other than the one verified, so it
    /// was not in this evidence and not checked. Verify that bucket too.
    LogOtherBucket,
    /// The source could not read the log file (I/O error, permissions; `evidence.detail`).
    /// Nothing was judged; the run ends with exit status 2. Fix access and run again.
    LogUnreadable,
    /// In a local copy, the object's path leads outside the evidence directory: a symbolic
    /// link to outside it (or a dangling one), or a key that is no plain relative path (`..`,
    /// a leading `/`), as a digest's `s3Object` may name. It was not followed, so nothing
    /// there was checked. Either object kind: see [`Finding::object`]. A copy arranged so that
    /// content from elsewhere stands in for the evidence, a hostile digest, or a careless copy
    /// (`evidence.detail` says which path). Make a copy with real files and run again.
    PathEscape,
    /// A file in a CloudTrail log folder that no digest can vouch for: its name is not a
    /// CloudTrail log file name (or not UTF-8), or it is a link to a folder (not followed).
    /// Anything reading the prefix may ingest it; CloudTrail never wrote it. Find out who put
    /// it there.
    LogUnrecognised,
    /// The same as [`Kind::LogUnrecognised`], in a CloudTrail digest folder; or a digest named
    /// for a time more than 15 minutes after the clock of a run without an end, which CloudTrail
    /// cannot have delivered yet (it takes no part in any chain).
    DigestUnrecognised,
    /// The CloudTrail Lake sign file's RSA signature over its hash list verified with the
    /// CloudTrail public key its `publicKeyFingerprint` names, valid at its
    /// `queryCompleteTime`. Its hashes can be trusted; its file names, time, Region and
    /// fingerprint are not signed (see SECURITY.md). Nothing to do.
    QuerySignValid,
    /// The sign file is not UTF-8 JSON of the sign-file shape, a field is malformed (a hash
    /// not 64 lowercase hex digits, an unknown field, a field given twice), it names another
    /// algorithm than `SHA-256`/`SHA256withRSA`, it lists no file, or it is not a plain file
    /// (a link out of the folder, a FIFO). CloudTrail never writes such a file. Nothing in the
    /// folder is vouched for; get the sign file again from S3.
    QuerySignFormat,
    /// The sign file's signature does not verify over its hash list with the key it names:
    /// the list (or the signature) was changed, or the file was re-signed with a key that is
    /// not CloudTrail's but carries a CloudTrail key's fingerprint. The AWS CLI says "Invalid
    /// signature in sign file". Nothing in the folder is vouched for.
    QuerySignSignatureInvalid,
    /// No CloudTrail public key the run has carries the sign file's `publicKeyFingerprint`
    /// (`evidence.fingerprint`): the key set does not cover its Region and time, or the sign
    /// file was signed with a key CloudTrail never published (a forgery). Get the Region's keys
    /// for `queryCompleteTime` (ListPublicKeys) and run again; if the key still does not
    /// appear, treat the sign file as forged.
    QuerySignKeyUnknown,
    /// The key the sign file names is known but was not valid at its `queryCompleteTime`
    /// (`evidence.from`): CloudTrail signs with a current key, so the file was signed outside
    /// CloudTrail's schedule, or its time was changed. Treat it as invalid.
    QuerySignKeyNotValid,
    /// The export folder has no `result_sign.json`: nothing in it can be verified. Deleted, or
    /// the wrong folder (the folder of one query: `.../CloudTrail-Lake/Query/YYYY/MM/DD/ID/`).
    QuerySignMissing,
    /// The sign file could not be read (I/O error, permissions, S3 error; the reason says).
    /// Nothing was judged; exit status 2. Fix access and run again.
    QuerySignUnreadable,
    /// The result file's stored (gzip) bytes hash to the SHA-256 a verified sign file lists
    /// for it. Nothing to do.
    QueryResultValid,
    /// The result file's stored bytes do not hash to the SHA-256 the sign file lists for it
    /// (`evidence.expected_sha256` against `actual_sha256`): it was changed, or swapped with
    /// another file. The AWS CLI says "has inconsistent hash value". Its rows are not the
    /// query's; compare with S3 object versions.
    QueryResultHashMismatch,
    /// The sign file lists the result file and it is not in the folder: deleted, renamed, or
    /// left out of the copy. Its rows are lost to this folder; look for it in S3.
    QueryResultMissing,
    /// The sign file lists a name that CloudTrail never gives a result file (not
    /// `result_N.csv.gz`: a path such as `../x` or `a/b`), or lists a name twice. Names are not
    /// signed: the sign file was edited. The file is not read.
    QueryResultName,
    /// Where the result file should be there is something that is not a plain file of the
    /// folder: a link leading out of it, a FIFO, a device. Never read; S3 holds nothing of the
    /// kind, so the copy was altered.
    QueryResultNotAFile,
    /// A file (or folder) in the export folder that the sign file does not list: added after
    /// delivery, or a result file renamed. Anything reading the folder would take it for query
    /// results; find out who put it there.
    QueryResultUnlisted,
    /// The result file could not be read (I/O error, permissions, S3 error). Nothing was
    /// judged; exit status 2. Fix access and run again.
    QueryResultUnreadable,
    /// The result file's hash matches the sign file, but the sign file's signature was not
    /// accepted (see its finding), so nothing vouches for that hash. Resolve the sign file's
    /// finding first.
    QueryResultUnverifiable,
    /// A copy made by `trailproof acquire` holds the version CloudTrail delivered, recovered
    /// from S3 versioning, because the bucket's current version was another one (its
    /// evidence-metadata record says which, and when). The copy's content is judged on its own
    /// (another finding, if it is not valid); this one says the bucket was tampered with.
    /// Either object kind: see [`Finding::object`]. Find out who wrote the current version.
    OverwrittenInBucket,
    /// The digest is in an S3 archive storage class (GLACIER, DEEP_ARCHIVE): S3 answered
    /// `InvalidObjectState`, so it was not read and nothing it lists can be checked through
    /// it. Not a sign of tampering. Restore it (`trailproof acquire ... --restore-days N`, or
    /// `aws s3api restore-object`) and run again once it is restored.
    DigestArchived,
    /// The same as [`Kind::DigestArchived`], for a log file a verified digest lists.
    LogArchived,
    /// As [`Kind::OverwrittenInBucket`], the object having been deleted in the bucket (a delete
    /// marker was current): the copy is the recovered delivered version. Find out who deleted
    /// it.
    DeletedInBucket,
    /// `crosscheck cloudwatch`: an event in the CloudWatch Logs group that no proven log file
    /// has (no proven event with its eventID within the slack of its timestamp), or a message
    /// that is not a CloudTrail record at all. Someone with `logs:PutLogEvents` wrote it; treat
    /// what it says as forged.
    CloudWatchInjected,
    /// `crosscheck cloudwatch`: an event proven in S3 that is not in the group (and is not
    /// over the 256 KB CloudTrail sends to CloudWatch Logs). Deleted (a stream deleted,
    /// retention, `logs:DeleteLogStream`) or never delivered; alerts built on the group never
    /// saw it.
    CloudWatchMissing,
    /// `crosscheck cloudwatch`: an event in the group with the eventID of a proven event but
    /// other content (compared as parsed JSON; the finding names the fields that differ).
    CloudWatchAltered,
    /// `crosscheck cloudwatch`: a proven event, unaltered, in a stream CloudTrail does not
    /// deliver it to (not `ACCOUNT_CloudTrail_REGION` of its log file): copied or moved.
    CloudWatchMoved,
    /// `crosscheck cloudwatch`: an event in the group found only in log files the S3 side
    /// could not prove (see their findings). Nothing shows it forged or genuine.
    CloudWatchNotProven,
    /// `crosscheck cloudwatch`: a proven record that cannot be looked for in the group (no
    /// eventID or eventTime, or JSON with a key given twice), or log files whose records could
    /// not be read for the comparison. Part of the proven events was not compared.
    CloudWatchUncompared,
}

impl Kind {
    /// The verdict every finding of this kind carries: one kind, one verdict, always.
    pub fn verdict(self) -> Verdict {
        use Kind::*;
        match self {
            DigestValid | LogValid | QuerySignValid | QueryResultValid => Verdict::Valid,
            DigestMissing
            | DigestSuccessorMissing
            | LogMissing
            | DeletedInBucket
            | QuerySignMissing
            | QueryResultMissing
            | CloudWatchMissing => Verdict::Missing,
            DigestMoved
            | DigestFormat
            | DigestSignatureInvalid
            | DigestKeyNotValid
            | DigestLinkHashMismatch
            | DigestLinkSignatureMismatch
            | DigestLinkOutsideChain
            | DigestUnlinked
            | LogHashMismatch
            | LogFormat
            | LogTruncated
            | LogTrailingData
            | PathEscape
            | LogUnrecognised
            | DigestUnrecognised
            | OverwrittenInBucket
            | QuerySignFormat
            | QuerySignSignatureInvalid
            | QuerySignKeyNotValid
            | QueryResultHashMismatch
            | QueryResultName
            | QueryResultNotAFile
            | QueryResultUnlisted
            | CloudWatchInjected
            | CloudWatchAltered
            | CloudWatchMoved => Verdict::Invalid,
            DigestKeyUnknown
            | DigestSignatureUnavailable
            | DigestLinkOtherBucket
            | DigestUnreadable
            | ChainGap
            | CoverageStart
            | CoverageEnd
            | CoverageHole
            | LogBudgetExceeded
            | LogUnverifiable
            | LogUnreferenced
            | LogOtherBucket
            | LogUnreadable
            | DigestArchived
            | LogArchived
            | QuerySignKeyUnknown
            | QuerySignUnreadable
            | QueryResultUnreadable
            | QueryResultUnverifiable
            | CloudWatchNotProven
            | CloudWatchUncompared => Verdict::NotVerified,
        }
    }

    /// Whether the finding says its object could not be read (an I/O failure, not the
    /// evidence's fault): a run with one could not do its job (exit status 2), and what it
    /// is about is read again by the next run.
    pub fn unread(self) -> bool {
        use Kind::*;
        matches!(
            self,
            DigestUnreadable | LogUnreadable | QuerySignUnreadable | QueryResultUnreadable
        )
    }

    /// Whether the finding judges its subject itself. Chain notes (gaps, coverage, a missing
    /// neighbour, a link leaving the evidence) sit on a digest without saying it is bad.
    pub fn judges_subject(self) -> bool {
        use Kind::*;
        !matches!(
            self,
            ChainGap
                | CoverageStart
                | CoverageEnd
                | CoverageHole
                | DigestSuccessorMissing
                | DigestLinkOtherBucket
        )
    }

    /// What kind of object findings of this kind are about. [`Kind::PathEscape`],
    /// [`Kind::OverwrittenInBucket`] and [`Kind::DeletedInBucket`] say `Digest` here;
    /// [`Finding::object`] tells from the subject.
    pub fn object(self) -> ObjectKind {
        use Kind::*;
        match self {
            LogValid | LogMissing | LogHashMismatch | LogFormat | LogTruncated
            | LogTrailingData | LogBudgetExceeded | LogUnverifiable | LogUnreferenced
            | LogOtherBucket | LogUnreadable | LogUnrecognised | LogArchived => ObjectKind::Log,
            QuerySignValid
            | QuerySignFormat
            | QuerySignSignatureInvalid
            | QuerySignKeyUnknown
            | QuerySignKeyNotValid
            | QuerySignMissing
            | QuerySignUnreadable => ObjectKind::QuerySign,
            QueryResultValid
            | QueryResultHashMismatch
            | QueryResultMissing
            | QueryResultName
            | QueryResultNotAFile
            | QueryResultUnlisted
            | QueryResultUnreadable
            | QueryResultUnverifiable => ObjectKind::QueryResult,
            CloudWatchInjected | CloudWatchMissing | CloudWatchAltered | CloudWatchMoved
            | CloudWatchNotProven | CloudWatchUncompared => ObjectKind::CloudWatchEvent,
            _ => ObjectKind::Digest,
        }
    }
}

/// Facts behind a finding, for people and for machines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The SHA-256 a digest says the subject has: a log file's listed `hashValue`, or a
    /// digest's `previousDigestHashValue` in the next digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_sha256: Option<Sha256>,
    /// The SHA-256 the subject's inflated bytes actually have (for a log file, of its first
    /// gzip member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_sha256: Option<Sha256>,
    /// The public-key fingerprint the digest names (`digestPublicKeyFingerprint`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// The period the finding is about (a digest's window, a gap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    /// The end of that period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    /// The digest that names the subject (for links and log files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named_by: Option<String>,
    /// A free-text detail for people (an I/O error, the field that failed to parse, where a
    /// moved digest was delivered). Not stable: match on the kind, never on this text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a backfill digest: the times its key was checked against, and their `basis` — the
    /// unsigned `backfill-generation-timestamp` S3 metadata, or without it the bound after the
    /// digest's end. A verdict on a backfill digest always says which it relied on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_time: Option<SigningTime>,
}

/// One checked subject and its outcome. An object has one finding that judges it (its worst,
/// see [`merge_by_object`]); the other reasons it is not valid are in `also`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// `s3://bucket/key` of the object the finding is about.
    pub subject: String,
    /// What was found.
    pub kind: Kind,
    /// `kind.verdict()` in every finding this crate makes ([`Finding::new`]); stored so that
    /// serialised findings carry it.
    pub verdict: Verdict,
    /// One line for people, in the AWS CLI's words where it has them ("not found",
    /// "hash value doesn't match"). Not stable: match on `kind`.
    pub reason: String,
    /// The facts behind the finding; left out of JSON when empty.
    #[serde(default, skip_serializing_if = "is_empty_evidence")]
    pub evidence: Evidence,
    /// The object's other findings that judge it, less bad or equal, in the order found;
    /// see [`merge_by_object`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Reason>,
    /// On S3, for an object that is invalid, missing or moved: what its other versions hold
    /// (the version CloudTrail delivered, if one is still in the bucket). Left out of JSON when
    /// nothing was found worth saying (an unversioned bucket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<Box<VersionSearch>>,
    /// On S3, what the GetObject that read the object said of its custody (version id, storage
    /// class, Object Lock), when it said anything beyond the defaults. S3's word, not proof.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custody: Option<Box<Custody>>,
}

/// A further reason an object is not valid, besides its finding's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// As [`Finding::kind`].
    pub kind: Kind,
    /// As [`Finding::verdict`]: never `valid`.
    pub verdict: Verdict,
    /// As [`Finding::reason`].
    pub reason: String,
    /// As [`Finding::evidence`].
    #[serde(default, skip_serializing_if = "is_empty_evidence")]
    pub evidence: Evidence,
}

fn is_empty_evidence(e: &Evidence) -> bool {
    *e == Evidence::default()
}

impl Finding {
    /// A finding of `kind` on `subject` (an `s3://bucket/key`), its verdict taken from the kind,
    /// with no evidence and no further reasons.
    pub fn new(subject: impl Into<String>, kind: Kind, reason: impl Into<String>) -> Self {
        Finding {
            subject: subject.into(),
            kind,
            verdict: kind.verdict(),
            reason: reason.into(),
            evidence: Evidence::default(),
            also: Vec::new(),
            versions: None,
            custody: None,
        }
    }

    /// The same finding with `evidence` in place of its own.
    pub fn with(mut self, evidence: Evidence) -> Self {
        self.evidence = evidence;
        self
    }

    /// What kind of object the finding is about. A path escape, and an object recovered from
    /// versioning, may be about either: its subject's key tells (a log file symlinked out of
    /// the copy is a log file).
    pub fn object(&self) -> ObjectKind {
        if !matches!(
            self.kind,
            Kind::PathEscape | Kind::OverwrittenInBucket | Kind::DeletedInBucket
        ) {
            return self.kind.object();
        }
        let key = self
            .subject
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .map(|(_, key)| key);
        match key.map(|k| (super::layout::parse_key(k), super::layout::folders(k))) {
            Some((Ok(super::layout::CloudTrailKey::Log(_)), _)) => ObjectKind::Log,
            // Not a CloudTrail key (a link to a folder): the folder it is in tells.
            Some((Err(_), Some(f))) if f.ty == Some(super::layout::ObjectType::Log) => {
                ObjectKind::Log
            }
            _ => ObjectKind::Digest,
        }
    }
}

/// One finding per judged object: an object's findings that judge it become one, the worst
/// (the first of the worst, in order) carrying the others' reasons in `also`; a `valid` finding
/// gives way to any other. Findings that do not judge their subject (gaps, coverage, a missing
/// neighbour) stay as they are. Order is kept: each object where its first finding was.
pub fn merge_by_object(findings: Vec<Finding>) -> Vec<Finding> {
    use std::collections::HashMap;
    let mut first: HashMap<(ObjectKind, String), usize> = HashMap::new();
    let mut out: Vec<Option<Finding>> = Vec::with_capacity(findings.len());
    for f in findings {
        if !f.kind.judges_subject() {
            out.push(Some(f));
            continue;
        }
        let key = (f.object(), f.subject.clone());
        let Some(slot) = first
            .get(&key)
            .and_then(|&i| out.get_mut(i))
            .and_then(Option::as_mut)
        else {
            first.insert(key, out.len());
            out.push(Some(f));
            continue;
        };
        if f.verdict > slot.verdict {
            let mut worse = f;
            let kept = std::mem::replace(slot, Finding::new("", Kind::DigestValid, ""));
            worse.also = kept.also;
            worse.custody = worse.custody.or(kept.custody);
            if kept.verdict != Verdict::Valid {
                worse.also.insert(
                    0,
                    Reason {
                        kind: kept.kind,
                        verdict: kept.verdict,
                        reason: kept.reason,
                        evidence: kept.evidence,
                    },
                );
            }
            *slot = worse;
        } else if f.verdict != Verdict::Valid
            && !(f.kind == slot.kind && f.reason == slot.reason)
            && !slot
                .also
                .iter()
                .any(|r| r.kind == f.kind && r.reason == f.reason)
        {
            slot.also.push(Reason {
                kind: f.kind,
                verdict: f.verdict,
                reason: f.reason,
                evidence: f.evidence,
            });
        }
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_broken_digest_is_one_invalid_line_not_valid_and_invalid() {
        let merged = merge_by_object(vec![
            Finding::new("s3://b/d", Kind::DigestValid, "valid"),
            Finding::new("s3://b/d", Kind::ChainGap, "gap"),
            Finding::new("s3://b/l", Kind::LogValid, "valid"),
            Finding::new("s3://b/d", Kind::DigestLinkOutsideChain, "outside"),
            Finding::new("s3://b/l", Kind::LogValid, "valid"),
            Finding::new("s3://b/d", Kind::DigestKeyUnknown, "no key"),
        ]);
        let got: Vec<(&str, Kind, Vec<Kind>)> = merged
            .iter()
            .map(|f| {
                (
                    f.subject.as_str(),
                    f.kind,
                    f.also.iter().map(|r| r.kind).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "s3://b/d",
                    Kind::DigestLinkOutsideChain,
                    vec![Kind::DigestKeyUnknown]
                ),
                ("s3://b/d", Kind::ChainGap, vec![]),
                ("s3://b/l", Kind::LogValid, vec![]),
            ]
        );
    }
}
