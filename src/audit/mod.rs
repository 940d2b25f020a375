//! Decision records, client address minimization, and the log sink.

pub mod consents;
pub mod ip;
pub mod record;
pub mod sink;

pub use ip::{IpMode, Minimizer, Secret};
pub use record::Decision;
pub use sink::LogSink;
