//! trailproof: integrity validation and forensics for AWS CloudTrail logs.
#![forbid(unsafe_code)]

pub mod fixture;
pub mod core;
