//! trailproof: integrity validation and forensics for AWS CloudTrail logs.
#![forbid(unsafe_code)]

pub mod core;
pub mod engine;
pub mod report;
pub mod source;
