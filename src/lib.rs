//! trailproof: integrity validation and forensics for AWS CloudTrail logs.
#![forbid(unsafe_code)]

pub mod cli;
pub mod core;
pub mod engine;
pub mod fixture;
pub mod report;
pub mod source;
