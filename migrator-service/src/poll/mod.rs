//! Polling the upstream: [`upstream`] is the HTTP client; [`submission`]
//! decodes a page and its elements; [`batch`] writes one page in one
//! transaction with its audits and watermark; [`reprocess`] retries failed
//! submissions from their raw payload; [`refill`] fills a column a
//! migration added from the archived submissions; [`poller`] is each source's job
//! (drain, wait, back off) and its live state. Calls go down into
//! [`crate::repository`].

pub mod batch;
pub mod poller;
pub mod refill;
pub mod reprocess;
pub mod submission;
pub mod upstream;
